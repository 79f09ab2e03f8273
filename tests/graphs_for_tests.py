"""Random graphs, actors and speculators for the lossless tests."""

from __future__ import annotations

import asyncio
import operator
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

BEHAVIOURS = ("right", "wrong", "partly", "raise", "hang", "junk", "unknown_key")


def last(a: int, b: int) -> int:
    """Keep the newest value; parallel writes apply in LangGraph's task order."""
    return b


class State(TypedDict):
    v: Annotated[int, last]
    log: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]


@dataclass
class Spec:
    """A random graph: its layout, node latencies, speculators, unsafe nodes."""

    kind: str  # chain | cond | loop | fanout
    n: int
    latency_ms: list[int]
    behaviour: dict[int, str]
    unsafe: set[int]
    asynchronous: bool
    depth: int = 1
    k: int = 3
    counters: Counter[str] = field(default_factory=Counter)


def update_for(i: int, state: dict[str, Any]) -> dict[str, Any]:
    """The deterministic update node i makes."""
    v = (state["v"] * 31 + i + 7) % 101
    out: dict[str, Any] = {"v": v, "log": [f"n{i}:{v}"]}
    if i % 2 == 0:
        out["messages"] = [AIMessage(content=f"n{i} says {v}")]
    return out


def make_actor(spec: Spec, i: int) -> Any:
    delay = spec.latency_ms[i] / 1000

    def count() -> None:
        if i in spec.unsafe:
            spec.counters[f"n{i}"] += 1

    if spec.asynchronous:

        async def anode(state: State) -> dict[str, Any]:
            await asyncio.sleep(delay)
            count()
            return update_for(i, state)

        anode.__name__ = f"n{i}"
        return anode

    def node(state: State) -> dict[str, Any]:
        time.sleep(delay)
        count()
        return update_for(i, state)

    node.__name__ = f"n{i}"
    return node


def make_speculator(spec: Spec, i: int) -> Any:
    behaviour = spec.behaviour[i]

    def guesses(state: dict[str, Any]) -> Any:
        right = update_for(i, state)
        wrong = {"v": (state["v"] + 50) % 101, "log": [f"wrong{i}"]}
        if behaviour == "right":
            return [right, wrong]
        if behaviour == "wrong":
            return [wrong, {"v": -1}]
        if behaviour == "partly":
            return [wrong, {**right, "v": right["v"] + 1000}, right]
        if behaviour == "junk":
            return 42
        if behaviour == "unknown_key":
            return [{"nope": 1}, right]
        raise RuntimeError(f"speculator {i} broke")

    if spec.asynchronous:

        async def aspec(state: State) -> Any:
            if behaviour == "hang":
                await asyncio.sleep(30)
            await asyncio.sleep(0.001)
            return guesses(state)

        return aspec

    def sspec(state: State) -> Any:
        if behaviour == "hang":
            time.sleep(0.2)  # sync code cannot be interrupted: a bounded hang
        return guesses(state)

    return sspec


def build(spec: Spec) -> StateGraph:  # type: ignore[type-arg]
    """The graph `spec` describes (uncompiled)."""
    b = StateGraph(State)
    for i in range(spec.n):
        b.add_node(f"n{i}", make_actor(spec, i))
    names = [f"n{i}" for i in range(spec.n)]
    b.add_edge(START, names[0])
    if spec.kind == "chain":
        for a, c in zip(names, names[1:]):
            b.add_edge(a, c)
        b.add_edge(names[-1], END)
    elif spec.kind == "cond":
        for j, a in enumerate(names[:-1]):
            nxt, skip = names[j + 1], names[min(j + 2, len(names) - 1)]
            b.add_conditional_edges(a, lambda s, nxt=nxt, skip=skip: nxt if s["v"] % 3 else skip, [nxt, skip])
        b.add_edge(names[-1], END)
    elif spec.kind == "loop":
        for a, c in zip(names, names[1:]):
            b.add_edge(a, c)
        b.add_conditional_edges(
            names[-1], lambda s: names[0] if len(s["log"]) < 2 * spec.n else END, [names[0], END]
        )
    else:  # fanout: n0 -> (n1 .. n_{m}) -> n_last
        mids = names[1:-1] or [names[-1]]
        for m in mids:
            b.add_edge(names[0], m)
        if len(names) > 2:
            b.add_edge(mids, names[-1])
        b.add_edge(names[-1], END)
    return b


def strip_ids(value: Any) -> Any:
    """State with message ids removed (add_messages fills them with random uuids)."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_ids(v) for v in value]
    if hasattr(value, "model_dump"):
        d = value.model_dump()
        d.pop("id", None)
        return (type(value).__name__, d)
    return value
