"""The retail customer-service graph: user, agent, read tools, write tools.

The agent node is speculative: while the agent's model thinks, the speculator
guesses its next tool call, and a branch runs that call if it is a read (the
write tools are `unsafe` and never run on a branch). When the agent asks for
the same call, the main run adopts the branch's result, so the tool's
latency is hidden behind the model's. Tool-call ids are derived from the call
and the conversation's length, so a guessed call and the real one agree on
their ids and the adopted tool messages are exactly the sequential ones.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

from langgraph_speculative import Guess, SpeculationPolicy, speculate

from .._common import ScriptedChatModel, chat_model
from ._db import READ_TOOLS, WRITE_TOOLS, RetailDB, data_text
from ._speculator import learned

__all__ = ("ReplayAgent", "ReplayUser", "RetailState", "make_graph", "stable_id")

STOP = "###STOP###"


class RetailState(TypedDict):
    """The conversation, and how many writes the database has taken."""

    messages: Annotated[list[AnyMessage], add_messages]
    db_version: int


def stable_id(name: str, args: dict[str, Any], position: int) -> str:
    """A tool-call id from the call and where it occurs (so guesses can name it too)."""
    blob = json.dumps([name, args, position], sort_keys=True)
    return "call_" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _with_stable_ids(message: AIMessage, position: int) -> AIMessage:
    calls = [{**c, "id": stable_id(c["name"], c["args"], position)} for c in message.tool_calls]
    return message.model_copy(update={"tool_calls": calls}) if calls else message


def _tools(db: RetailDB, names: Sequence[str], latency: float) -> list[BaseTool]:
    tools: list[BaseTool] = []
    for name in names:
        method = getattr(db, name)
        base = inspect.unwrap(method)

        @functools.wraps(base)
        def call(*a: Any, _m: Callable[..., str] = method, **kw: Any) -> str:
            time.sleep(latency)
            return _m(*a, **kw)

        @functools.wraps(base)
        async def acall(*a: Any, _m: Callable[..., str] = method, **kw: Any) -> str:
            await asyncio.sleep(latency)
            return _m(*a, **kw)

        tools.append(
            StructuredTool.from_function(
                func=call, coroutine=acall, name=name, description=method.__doc__ or name
            )
        )
    return tools


def _model(spec: Any) -> BaseChatModel:
    """A chat model from a spec string (`_common.parse_chat_spec`, as every ready-made graph) or the
    model object itself."""
    return chat_model(spec)  # type: ignore[no-any-return]


def history_of(messages: Sequence[BaseMessage]) -> tuple[list[dict[str, Any]], str]:
    """Earlier tool calls with their outputs, and what the customer has said."""
    outputs = {m.tool_call_id: str(m.content) for m in messages if isinstance(m, ToolMessage)}
    calls = [
        {"name": c["name"], "kwargs": c["args"], "output": outputs.get(c["id"] or "", "")}
        for m in messages
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    ]
    said = " ".join(str(m.content) for m in messages if isinstance(m, HumanMessage))
    return calls, said


class ReplayAgent(ScriptedChatModel):
    """An offline agent that makes a task's ground-truth calls in order, then answers.

    Deterministic, with real latency (`delay` seconds per turn): it stands in
    for a tool-calling chat model in tests and the offline demo.
    """

    actions: list[dict[str, Any]]
    delay: float = 0.2

    def bind_tools(self, tools: Any, **kwargs: Any) -> ReplayAgent:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        done = sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))
        if done < len(self.actions):
            a = self.actions[done]
            return AIMessage(content="", tool_calls=[{"name": a["name"], "args": a["kwargs"], "id": "x"}])
        return AIMessage(content="Everything you asked for is done. Is there anything else?")


class ReplayUser(ScriptedChatModel):
    """An offline customer: states the request, then stops once the agent answers."""

    instruction: str

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        if len(messages) <= 2:
            return AIMessage(content=f"Hi! {self.instruction}")
        return AIMessage(content=f"Thanks, that's all. {STOP}")


def _user_prompt(instruction: str) -> str:
    return (
        "You are a customer talking to a retail customer-service agent. Your goal and details:\n"
        f"{instruction}\n"
        "Write one short message at a time, as the customer. Reveal details only when asked. "
        f"When your goal is met, or cannot be met, reply with {STOP} alone."
    )


def make_graph(
    *,
    task: dict[str, Any],
    agent_model: Any = "replay",
    user_model: Any = "replay",
    speculator: Any = "offline",
    k: int = 3,
    tool_latency: float = 0.5,
    typing_wpm: float | None = None,
    db: RetailDB | None = None,
    replay_delay: float = 0.2,
    user_delay: float = 0.0,
    user_turns: bool = True,
    speculative: bool = True,
) -> StateGraph:  # type: ignore[type-arg]
    """The retail graph for one tau-bench `task` (user_id, instruction, actions).

    `agent_model` / `user_model`: a chat model, a string (`openai:gpt-4o`,
    resolved at run time), or "replay" (offline: the agent makes the task's
    ground-truth calls; the customer states the instruction). `speculator`:
    "offline" (`CallSpeculator`), a chat model string, or a function from the
    agent's input state to guesses. `typing_wpm`: the customer's typing speed
    (sleeps for the time it takes to type each message); `replay_delay`: the
    replay agent's seconds per turn; `user_delay`: the replay customer's.
    `user_turns`: also speculate while the customer types (their message,
    then the agent's next call on that branch). The database is
    `builder.retail_db`.
    """
    db = db if db is not None else RetailDB()
    agent = (
        ReplayAgent(actions=task["actions"], delay=replay_delay)
        if agent_model == "replay"
        else _model(agent_model)
    )
    user = (
        ReplayUser(instruction=task["instruction"], delay=user_delay)
        if user_model == "replay"
        else _model(user_model)
    )
    reads, writes = _tools(db, READ_TOOLS, tool_latency), _tools(db, WRITE_TOOLS, tool_latency)
    bound = agent.bind_tools(reads + writes)
    policy = data_text("policy.md")
    read_node, write_node = ToolNode(reads), ToolNode(writes)

    async def user_turn(state: RetailState) -> dict[str, Any]:
        flipped = [SystemMessage(_user_prompt(task["instruction"]))] + [
            HumanMessage(str(m.content)) if isinstance(m, AIMessage) else AIMessage(str(m.content))
            for m in state["messages"]
            if isinstance(m, (AIMessage, HumanMessage)) and (m.content or not isinstance(m, AIMessage))
        ]
        reply = await user.ainvoke(flipped)
        text = str(reply.content)
        if typing_wpm:
            await asyncio.sleep(len(text.split()) / typing_wpm * 60)
        return {"messages": [HumanMessage(text)]}

    async def agent_turn(state: RetailState) -> dict[str, Any]:
        reply = await bound.ainvoke([SystemMessage(policy), *state["messages"]])
        return {"messages": [_with_stable_ids(reply, len(state["messages"]))]}

    async def write_turn(state: RetailState, config: RunnableConfig) -> dict[str, Any]:
        before = db.writes
        out = await write_node.ainvoke(state, config)
        return {**out, "db_version": state["db_version"] + (db.writes - before)}

    def after_agent(state: RetailState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "write_tools" if last.tool_calls[0]["name"] in WRITE_TOOLS else "read_tools"
        return "user"

    def after_user(state: RetailState) -> str:
        return END if STOP in str(state["messages"][-1].content) else "agent"

    builder = StateGraph(RetailState)
    builder.add_node("user", user_turn)
    builder.add_node("agent", agent_turn)
    builder.add_node("read_tools", read_node)
    builder.add_node("write_tools", write_turn)
    builder.add_edge(START, "user")
    builder.add_conditional_edges("user", after_user, ["agent", END])
    builder.add_conditional_edges("agent", after_agent, ["read_tools", "write_tools", "user"])
    builder.add_edge("read_tools", "agent")
    builder.add_edge("write_tools", "agent")
    if speculative:
        guess = _speculator(speculator, k)
        speculators: dict[str, Any] = {"agent": guess}
        matches: dict[str, Any] = {"agent": _same_calls}
        if user_turns:
            # While the customer types: guess their message, and (depth 2) the agent's next call
            # on that branch, so reads run before the message lands. Any guessed message counts
            # as a hit: the agent's early call is keyed by its full input (so it is adopted only
            # if the text was right), a read only by its call and the database version.
            speculators["user"] = _user_guesser()
            matches["user"] = _one_message
        builder = speculate(
            builder,
            speculators,
            policy=SpeculationPolicy(k=k, depth=2 if user_turns else 1, stream_events=True),
            unsafe={"write_tools"},
            keys={"read_tools": _read_key},
            read_only_tools=set(READ_TOOLS),
            matches=matches,
        )
    builder.retail_db = db  # type: ignore[attr-defined]
    return builder


def _user_guesser() -> Callable[[RetailState], list[Guess]]:
    """The customer's most common reply in tau-bench's recorded conversations."""
    reply = learned().user_reply

    def guess(state: RetailState) -> list[Guess]:
        return [Guess({"messages": [HumanMessage(reply)]})] if state["messages"] else []

    return guess


def _one_message(guess: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Both are one customer message (the text is checked by the keys downstream)."""
    return [type(m) for m in guess.get("messages", [])] == [type(m) for m in actual.get("messages", [])]


def _read_key(state: RetailState) -> str:
    """A read's result depends on its calls (with their ids) and the database version only."""
    last = state["messages"][-1]
    calls = [(c["name"], c["args"], c["id"]) for c in getattr(last, "tool_calls", [])]
    return json.dumps([calls, state["db_version"]], sort_keys=True)


def _same_calls(guess: dict[str, Any], actual: dict[str, Any]) -> bool:
    def calls(update: dict[str, Any]) -> list[Any]:
        return [
            (c["name"], c["args"], c["id"])
            for m in update.get("messages", [])
            for c in getattr(m, "tool_calls", [])
        ]

    return bool(calls(guess)) and calls(guess) == calls(actual)


def _speculator(spec: Any, k: int) -> Callable[[RetailState], list[Guess] | Awaitable[list[Guess]]]:
    if callable(spec) and not isinstance(spec, (str, BaseChatModel)):
        return spec
    if spec == "offline":
        speculator = learned()

        def offline(state: RetailState) -> list[Guess]:
            calls, said = history_of(state["messages"])
            return [_guess_call(c, len(state["messages"])) for c in speculator.guess(calls, k, said)]

        return offline
    if isinstance(spec, (str, BaseChatModel)):
        model = _model(spec)

        async def llm(state: RetailState) -> list[Guess]:
            calls, said = history_of(state["messages"])
            position = len(state["messages"])
            reply = await model.ainvoke(_speculator_prompt(calls, said, k))
            return [_guess_call(c, position) for c in parse_calls(str(reply.content))[:k]]

        return llm
    raise ValueError(
        f"unknown retail speculator {spec!r}; use 'offline', a chat model ('openai:gpt-5-nano') "
        "or a function state -> guesses"
    )


def _guess_call(call: dict[str, Any], position: int) -> Guess:
    """The agent's update if its next message is this one tool call."""
    tool_call = {
        "name": call["name"],
        "args": call["kwargs"],
        "id": stable_id(call["name"], call["kwargs"], position),
    }
    return Guess({"messages": [AIMessage(content="", tool_calls=[tool_call])]})


def _speculator_prompt(calls: list[dict[str, Any]], said: str, k: int) -> str:
    done = "\n".join(f"{c['name']}({json.dumps(c['kwargs'])}) -> {c['output'][:300]}" for c in calls)
    return (
        "A retail customer-service agent is helping a customer. Tools: "
        + ", ".join(READ_TOOLS + WRITE_TOOLS)
        + f".\nThe customer said: {said or '(nothing yet)'}\nCalls so far:\n{done or '(none)'}\n"
        f"Predict the agent's next tool call: the {k} most likely, best first, one JSON object per line, "
        'like {"name": "get_order_details", "arguments": {"order_id": "#W1234567"}}.'
    )


def parse_calls(text: str) -> list[dict[str, Any]]:
    """Tool calls from a speculator model's reply: one JSON object per line; junk lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip().strip(",")
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        name, args = data.get("name"), data.get("arguments", data.get("args", {}))
        if name in READ_TOOLS + WRITE_TOOLS and isinstance(args, dict):
            out.append({"name": name, "kwargs": args})
    return out
