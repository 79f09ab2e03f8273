"""What a user streams from a speculative graph is what the plain graph streams.

Branches run beside the main run with its callbacks (so LangSmith sees them), but
nothing a branch does may reach the main run's `messages` stream: tokens of an
actor launched early on a wrong guess are speculative work, not the agent's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_speculative import speculate


class Echo(BaseChatModel):
    """Answers `echo <last message>`, word by word, after a short think."""

    def _reply(self, messages: list[BaseMessage]) -> list[str]:
        time.sleep(0.05)
        return f"echo {messages[-1].content}".split(" ")

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(" ".join(self._reply(messages))))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        words = self._reply(messages)
        for i, word in enumerate(words):
            text = word if i == 0 else f" {word}"
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    @property
    def _llm_type(self) -> str:
        return "echo"


class M(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def ask(state: M) -> dict[str, Any]:
    time.sleep(0.15)
    return {"messages": [AIMessage("what is six times seven", id="ask")]}


SEEN: list[str] = []


def answer(state: M) -> dict[str, Any]:
    SEEN.append(str(state["messages"][-1].content))
    return {"messages": [Echo().invoke(state["messages"])]}


def tail(state: M) -> dict[str, Any]:
    return {
        "messages": [
            AIMessage(f"tail saw {state['messages'][-1].content}", id=f"tail{len(state['messages'])}")
        ]
    }


def _builder() -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(M)
    for name, fn in (("ask", ask), ("answer", answer), ("tail", tail)):
        b.add_node(name, fn)
    b.add_edge(START, "ask")
    b.add_edge("ask", "answer")
    b.add_edge("answer", "tail")
    b.add_edge("tail", END)
    return b


def wrong(state: M) -> list[dict[str, Any]]:
    return [{"messages": [AIMessage("a wrong guess", id="ask")]}]


def chatty(state: M) -> list[dict[str, Any]]:
    """A speculator that asks a chat model first (its tokens are not the agent's either)."""
    Echo().invoke(state["messages"])
    return wrong(state)


def right(state: M) -> list[dict[str, Any]]:
    return [{"messages": [AIMessage("what is six times seven", id="ask")]}]


def _texts(chunks: list[Any]) -> dict[str, str]:
    """Streamed text per node, chunks joined in order."""
    out: dict[str, str] = {}
    for msg, meta in chunks:
        node = meta["langgraph_node"]
        out[node] = out.get(node, "") + str(msg.content)
    return out


INPUT = {"messages": [("user", "hi")]}


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("speculator", [wrong, chatty])
def test_a_wrong_branch_streams_nothing(asynchronous: bool, subgraphs: bool, speculator: Any) -> None:
    plain = _builder().compile(checkpointer=InMemorySaver())
    spec: Any = speculate(_builder(), {"ask": speculator}).compile(checkpointer=InMemorySaver())

    def run(graph: Any, tid: str) -> list[Any]:
        cfg = {"configurable": {"thread_id": tid}}
        if asynchronous:

            async def collect() -> list[Any]:
                return [
                    c async for c in graph.astream(INPUT, cfg, stream_mode="messages", subgraphs=subgraphs)
                ]

            chunks = asyncio.run(collect())
        else:
            chunks = list(graph.stream(INPUT, cfg, stream_mode="messages", subgraphs=subgraphs))
        return [c[1] for c in chunks] if subgraphs else chunks

    expected = run(plain, "p")
    SEEN.clear()
    got = run(spec, "s")
    report = spec.last_report
    assert report is not None and report.node("ask").misses == 1
    assert "a wrong guess" in SEEN  # the branch did run the chat model on the wrong guess
    assert [str(m.content) for m, _ in got] == [str(m.content) for m, _ in expected]
    assert "wrong" not in " ".join(_texts(got).values())


def test_an_adopted_call_streams_its_message_once() -> None:
    """An adopted actor ran on a branch: its message reaches the stream whole, when adopted."""
    plain: Any = _builder().compile(checkpointer=InMemorySaver())
    spec: Any = speculate(_builder(), {"ask": right, "answer": wrong}).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t"}}
    expected = _texts(list(plain.stream(INPUT, cfg, stream_mode="messages")))
    got = _texts(list(spec.stream(INPUT, cfg, stream_mode="messages")))
    report = spec.last_report
    assert report is not None and report.node("answer").adopted == 1
    assert got == expected
