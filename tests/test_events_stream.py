"""`astream_events` and `astream_log` of a speculative graph (LangGraph Server uses them for
`stream_mode="events"`): LangGraph then runs every node through `astream`, not `ainvoke`, and
the speculative node wrapper must run there as it does in `ainvoke`; and, as in the other
streams, nothing of a branch or a speculator shows."""

from __future__ import annotations

import asyncio
import warnings
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_speculative import SpeculationPolicy, speculate


class S(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    country: str
    fact: str


async def plan(state: S) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"country": "japan"}


async def lookup(state: S) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"fact": f"capital of {state['country']}"}


async def answer(state: S) -> dict[str, Any]:
    return {"messages": [AIMessage(content=state["fact"], id="a")]}


def _builder() -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    b.add_node("plan", plan)
    b.add_node("lookup", lookup)
    b.add_node("answer", answer)
    b.add_edge(START, "plan")
    b.add_edge("plan", "lookup")
    b.add_edge("lookup", "answer")
    b.add_edge("answer", END)
    return b


def _graphs() -> tuple[Any, Any]:
    plain = _builder().compile(checkpointer=InMemorySaver())
    fast = speculate(_builder(), {"plan": lambda s: [{"country": "japan"}]}, policy=SpeculationPolicy(k=1))
    return plain, fast.compile(checkpointer=InMemorySaver())


INPUT = {"messages": [HumanMessage("Japan?", id="q")]}


async def _assert_adopts_as_ainvoke(fast: Any) -> None:
    """The last run hit and adopted the lookup (at least), as an `ainvoke` of the same graph does
    (the answer takes no time: whether the branch got to it first is a race)."""
    report = fast.last_report
    await fast.ainvoke(INPUT, {"configurable": {"thread_id": "twin"}})
    twin = fast.last_report
    assert report is not None and twin is not None and report is not twin
    assert report.hits == twin.hits == 1 and report.adopted >= 1 and twin.adopted >= 1
    assert report.node("lookup").adopted == twin.node("lookup").adopted == 1


def _outline(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["event"], e["name"], len(e.get("parent_ids", []))) for e in events]


async def test_astream_events_v2_as_plain() -> None:
    """The same events as the plain graph's: the main run's only, no branch, no speculator."""
    plain, fast = _graphs()
    runs = {}
    for label, graph in (("plain", plain), ("fast", fast)):
        config = {"configurable": {"thread_id": label}}
        events = [e async for e in graph.astream_events(INPUT, config, version="v2")]
        runs[label] = (events, await graph.aget_state(config))
        assert not [e for e in events if "speculative" in (e.get("tags") or [])]
    assert _outline(runs["fast"][0]) == _outline(runs["plain"][0])
    assert runs["fast"][0][-1]["data"]["output"] == runs["plain"][0][-1]["data"]["output"]
    assert runs["fast"][1].values == runs["plain"][1].values
    await _assert_adopts_as_ainvoke(fast)


async def test_astream_log_as_plain() -> None:
    plain, fast = _graphs()
    finals = []
    for label, graph in (("plain", plain), ("fast", fast)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astream_log is deprecated, still served
            chunks = [c async for c in graph.astream_log(INPUT, {"configurable": {"thread_id": label}})]
        state = chunks[0]
        for c in chunks[1:]:
            state = state + c
        finals.append(state.state)
        assert not [k for k in state.state["logs"] if "speculat" in k]
    assert finals[0]["final_output"] == finals[1]["final_output"]
    assert sorted(finals[0]["logs"]) == sorted(finals[1]["logs"])
    await _assert_adopts_as_ainvoke(fast)


def test_sync_stream_with_a_stream_handler() -> None:
    """The sync twin: a node run through `stream` (LangGraph does so under a stream handler)."""

    def splan(state: S) -> dict[str, Any]:
        return {"country": "japan"}

    def slookup(state: S) -> dict[str, Any]:
        return {"fact": f"capital of {state['country']}"}

    b = StateGraph(S)
    b.add_node("plan", splan)
    b.add_node("lookup", slookup)
    b.add_edge(START, "plan")
    b.add_edge("plan", "lookup")
    b.add_edge("lookup", END)
    graph = speculate(b, {"plan": lambda s: [{"country": "japan"}]}).compile()
    node = graph.nodes["plan"].bound
    assert list(node.stream(INPUT)) == [{"country": "japan"}]  # outside a run: the actor itself
    out = graph.invoke(INPUT)
    assert out["fact"] == "capital of japan"
