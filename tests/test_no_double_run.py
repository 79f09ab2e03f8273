"""After a right guess nothing runs twice (issue 29): the adopted branch and the main run are
one, so what the branch would launch next is what the main run is about to run: one call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, speculate

TARGETS = ("billing", "shipping", "returns")


class S(TypedDict, total=False):
    text: str
    route: str
    answer: str
    final: str


def _router_graph(calls: Counter[str], lock: threading.Lock, asynchronous: bool) -> StateGraph:
    def count(name: str) -> None:
        with lock:
            calls[name] += 1

    def pick(state: S) -> str:
        return TARGETS[sum(map(ord, state["text"])) % 3]

    async def arouter(state: S) -> dict[str, Any]:
        count("router")
        await asyncio.sleep(0.06)
        return {"route": pick(state)}

    def router(state: S) -> dict[str, Any]:
        count("router")
        time.sleep(0.06)
        return {"route": pick(state)}

    def target(name: str) -> Any:
        async def arun(state: S) -> dict[str, Any]:
            count(name)
            await asyncio.sleep(0.06)
            return {"answer": f"{name}: {state['text']}"}

        def run(state: S) -> dict[str, Any]:
            count(name)
            time.sleep(0.06)
            return {"answer": f"{name}: {state['text']}"}

        return arun if asynchronous else run

    async def afinal(state: S) -> dict[str, Any]:
        count("final")
        await asyncio.sleep(0.02)
        return {"final": state["answer"].upper()}

    def final(state: S) -> dict[str, Any]:
        count("final")
        time.sleep(0.02)
        return {"final": state["answer"].upper()}

    builder = StateGraph(S)
    builder.add_node("router", arouter if asynchronous else router)
    for name in TARGETS:
        builder.add_node(name, target(name))
        builder.add_edge(name, "final")
    builder.add_node("final", afinal if asynchronous else final)
    builder.add_edge(START, "router")
    builder.add_conditional_edges("router", lambda s: s["route"], list(TARGETS))
    builder.add_edge("final", END)
    return builder


def _guess_all(state: S) -> list[dict[str, Any]]:
    return [{"route": t} for t in TARGETS]  # k=3: the right one is always among them


@pytest.mark.parametrize("asynchronous", [False, True])
def test_at_a_full_hit_rate_downstream_nodes_run_as_often_as_plain(asynchronous: bool) -> None:
    plain_calls: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    plain = _router_graph(plain_calls, lock, asynchronous).compile(checkpointer=InMemorySaver())
    graph = speculate(
        _router_graph(calls, lock, asynchronous), {"router": _guess_all}, policy=SpeculationPolicy(k=3)
    ).compile(checkpointer=InMemorySaver())
    texts = [f"question {i}" for i in range(8)]
    for i, text in enumerate(texts):
        cfg: Any = {"configurable": {"thread_id": f"t{i}"}}
        if asynchronous:
            want = asyncio.run(plain.ainvoke({"text": text}, cfg))
            got = asyncio.run(graph.ainvoke({"text": text}, cfg))
        else:
            want = plain.invoke({"text": text}, cfg)
            got = graph.invoke({"text": text}, cfg)
        assert got == want
        report = graph.last_report
        assert report is not None and report.hits == 1
    assert calls["final"] == plain_calls["final"] == len(texts)  # never twice
    assert graph.report.node("final").wasted == 0
