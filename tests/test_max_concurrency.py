"""`max_concurrency` bounds speculative calls too (issue 26 item 6): a user who set it to respect
a provider's rate limit never has more calls at once, and the main run keeps its room."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from langgraph_speculative import speculate


class S(TypedDict, total=False):
    topic: str
    plan: list[str]
    notes: Annotated[list[str], operator.add]
    summary: str


class Gauge:
    """Calls of user code in flight at once (main run and speculation alike), and the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: Any) -> None:
        with self.lock:
            self.now -= 1


def _graph(gauge: Gauge, asynchronous: bool) -> StateGraph:
    def plan(state: S) -> dict[str, Any]:
        with gauge:
            time.sleep(0.1)
        return {"plan": [f"{state['topic']}-{i}" for i in range(6)]}

    def fan(state: S) -> list[Send]:
        return [Send("research", {"topic": p}) for p in state["plan"]]

    def research_sync(state: S) -> dict[str, Any]:
        with gauge:
            time.sleep(0.05)
        return {"notes": [f"note on {state['topic']}"]}

    async def research_async(state: S) -> dict[str, Any]:
        with gauge:
            await asyncio.sleep(0.05)
        return {"notes": [f"note on {state['topic']}"]}

    def summarize(state: S) -> dict[str, Any]:
        with gauge:
            time.sleep(0.02)
        return {"summary": " | ".join(sorted(state["notes"]))}

    builder = StateGraph(S)
    builder.add_node("plan", plan)
    builder.add_node("research", research_async if asynchronous else research_sync)
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan, ["research"])
    builder.add_edge("research", "summarize")
    builder.add_edge("summarize", END)
    return builder


def _guess(state: S) -> list[dict[str, Any]]:
    return [{"plan": [f"{state['topic']}-{i}" for i in range(6)]}]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("limit", [1, 3])
def test_speculation_never_exceeds_max_concurrency(asynchronous: bool, limit: int) -> None:
    plain_gauge, gauge = Gauge(), Gauge()
    plain = _graph(plain_gauge, asynchronous).compile(checkpointer=InMemorySaver())
    graph = speculate(_graph(gauge, asynchronous), {"plan": _guess}).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t"}, "max_concurrency": limit}
    if asynchronous:
        want = asyncio.run(plain.ainvoke({"topic": "tea"}, cfg))
        got = asyncio.run(graph.ainvoke({"topic": "tea"}, cfg))
    else:
        want = plain.invoke({"topic": "tea"}, cfg)
        got = graph.invoke({"topic": "tea"}, cfg)
    assert got == want
    assert plain_gauge.peak <= limit
    assert gauge.peak <= limit, f"{gauge.peak} calls at once at max_concurrency={limit}"
    report = graph.last_report
    assert report is not None
    if limit > 1:  # room left beside the main run's call: speculation still pays
        assert report.node("research").adopted > 0


def test_without_max_concurrency_speculation_runs_beside_the_main_run() -> None:
    gauge = Gauge()
    graph = speculate(_graph(gauge, False), {"plan": _guess}).compile(checkpointer=InMemorySaver())
    graph.invoke({"topic": "tea"}, {"configurable": {"thread_id": "t"}})
    assert gauge.peak > 1
    assert graph.last_report is not None and graph.last_report.node("research").adopted == 6
