"""A busy process sheds speculation: whole runs, single calls, single branches, never a result.

The load the process budget reads is checked with a fake clock; shedding itself with real runs
on a real checkpointer, sync and async (the property over random apps and random shedding points
is `test_lossless::test_lossless_when_a_busy_process_sheds_at_random_points`).
"""

from __future__ import annotations

import asyncio
import operator
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, SpeculativeNode, _budget, set_process_budget, speculate
from langgraph_speculative._budget import ProcessBudget, process_budget


class S(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


@pytest.fixture
def budget() -> Iterator[ProcessBudget]:
    """The process budget, its settings restored and its counts checked afterwards."""
    b = process_budget()
    limit, busy = b.limit, b.busy
    yield b
    set_process_budget(limit, busy=busy)
    assert b.active_runs == 0 and b.inflight == 0, (b.active_runs, b.inflight)


def _builder(asynchronous: bool, on_a: Any = None, speculative_node: bool = False) -> StateGraph:  # type: ignore[type-arg]
    def step(tag: str) -> Any:
        def actor(s: S) -> dict[str, Any]:
            if tag == "a" and on_a is not None:
                on_a()
            time.sleep(0.03)
            return {"x": s["x"] + 1, "log": [tag]}

        async def aactor(s: S) -> dict[str, Any]:
            if tag == "a" and on_a is not None:
                on_a()
            await asyncio.sleep(0.03)
            return {"x": s["x"] + 1, "log": [tag]}

        return aactor if asynchronous else actor

    b = StateGraph(S)
    for tag in "abcd":
        if tag == "c" and speculative_node:
            b.add_node(tag, SpeculativeNode(step(tag), speculator=_right("c")))
        else:
            b.add_node(tag, step(tag))
    b.add_edge(START, "a")
    for x, y in zip("abc", "bcd"):
        b.add_edge(x, y)
    b.add_edge("d", END)
    return b


def _plain(asynchronous: bool) -> Any:
    return _builder(asynchronous).compile(checkpointer=InMemorySaver())


def _right(tag: str) -> Any:
    return lambda s: [{"x": s["x"] + 1, "log": [tag]}]


def _graph(asynchronous: bool, speculated: str = "ab", **kw: Any) -> Any:
    builder = _builder(asynchronous, **kw)
    return speculate(builder, {t: _right(t) for t in speculated}, policy=SpeculationPolicy(k=1)).compile(
        checkpointer=InMemorySaver()
    )


def _invoke(graph: Any, asynchronous: bool) -> tuple[Any, list[Any]]:
    cfg: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
    if asynchronous:
        out = asyncio.run(graph.ainvoke({"x": 0, "log": []}, cfg))
    else:
        out = graph.invoke({"x": 0, "log": []}, cfg)
    history = [(s.values, s.next, s.metadata["step"]) for s in graph.get_state_history(cfg)]
    return out, history


PLAIN = {"x": 4, "log": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_run_that_starts_on_a_busy_process_runs_as_the_plain_graph(
    budget: ProcessBudget, asynchronous: bool
) -> None:
    plain_out, plain_history = _invoke(_plain(asynchronous), asynchronous)
    graph = _graph(asynchronous, speculative_node=True)
    set_process_budget(busy=1e-9)
    budget.shed_run()  # another run is active
    try:
        time.sleep(0.01)  # a load sample is due
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a SpeculativeNode of a shed run does not warn
            out, history = _invoke(graph, asynchronous)
    finally:
        budget.run_ended()
    assert out == plain_out == PLAIN
    assert history == plain_history
    report = graph.last_report
    assert report.shed_runs == 1 and report.runs == 1
    assert report.calls == report.shed == 3 and not report.branches  # a, b, c: every call counted
    assert [s["node"] for s in report.spans] == ["a", "b", "c", "d"]
    assert [e["event"] for e in report.events] == ["shed_run"]
    assert graph.report.shed_runs == 1 and graph.report.summary()["shed_runs"] == 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_run_already_speculating_sheds_its_calls_when_the_process_gets_busy(
    budget: ProcessBudget, asynchronous: bool
) -> None:
    def busy_from_now() -> None:  # on the main run's first call: another run arrives, the process is busy
        if budget.active_runs == 1:
            set_process_budget(busy=1e-9)
            budget.shed_run()

    graph = _graph(asynchronous, speculated="bc", on_a=busy_from_now)  # a: nothing speculated yet
    try:
        time.sleep(0.01)
        out, history = _invoke(graph, asynchronous)
    finally:
        budget.run_ended()
    plain_out, plain_history = _invoke(_plain(asynchronous), asynchronous)
    assert out == plain_out == PLAIN and history == plain_history
    report = graph.last_report
    assert report.shed_runs == 0
    assert report.nodes["b"].shed == 1 and report.nodes["b"].calls == 1  # b: shed outright
    assert report.adopted == 0 and not report.branches
    assert report.summary()["shed"] == report.shed >= 1


def test_a_quiet_process_with_other_runs_still_speculates(budget: ProcessBudget) -> None:
    set_process_budget(busy=float("inf"))
    budget.shed_run()
    try:
        out, _ = _invoke(_graph(True), True)
    finally:
        budget.run_ended()
    assert out == PLAIN


class _Clock:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 10.0

    def run(self, seconds: float, cores: float) -> None:
        self.wall += seconds
        self.cpu += seconds * cores


def _sampled(monkeypatch: pytest.MonkeyPatch) -> tuple[ProcessBudget, _Clock]:
    clock = _Clock()
    monkeypatch.setattr(_budget.time, "monotonic", lambda: clock.wall)
    monkeypatch.setattr(_budget.time, "process_time", lambda: clock.cpu)
    return ProcessBudget(limit=8, busy=0.5), clock


def test_the_load_rises_with_a_burst_of_work_and_falls_in_a_quiet_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, clock = _sampled(monkeypatch)
    clock.run(1.0, 0.0)  # a quiet second
    assert b._sample() == pytest.approx(0.0)
    for _ in range(10):  # 60 ms of a full core, read every 6 ms
        clock.run(0.006, 1.0)
        b._sample()
    assert 0.6 < b._sample() < 0.8  # about 1 - e^-1.2 of a core
    for _ in range(10):
        clock.run(0.006, 1.0)
        b._sample()
    assert b._sample() > 0.85
    clock.run(0.3, 0.0)  # one long quiet spell, read once
    assert b._sample() < 0.01


def test_the_load_is_not_reread_within_5_ms_and_a_long_window_counts_as_its_average(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, clock = _sampled(monkeypatch)
    clock.run(0.4, 0.75)  # one long window: its average
    assert b._sample() == pytest.approx(0.75, abs=0.01)
    clock.run(0.002, 0.0)
    assert b._sample() == pytest.approx(0.75, abs=0.01)  # not re-read
    clock.run(0.004, 0.0)
    assert b._sample() < 0.75  # re-read after 6 ms


def test_shedding_needs_another_active_run(monkeypatch: pytest.MonkeyPatch) -> None:
    b, clock = _sampled(monkeypatch)
    clock.run(0.5, 1.0)  # a saturated process
    assert b.shed_run() is False  # the only run: nothing to make room for
    assert b.shedding() is False
    assert b.shed_run() is True  # a second run while busy
    assert b.shedding() is True and b.acquire() == "busy"
    b.run_ended()
    b.run_ended()
    assert b.active_runs == 0
    clock.run(0.5, 0.1)
    assert b.shed_run() is False and b.shed_run() is False  # quiet: both speculate
    assert b.acquire() is None and b.inflight == 1


def test_set_process_budget_names_a_bad_value() -> None:
    with pytest.raises(ValueError, match="limit=-1"):
        set_process_budget(-1)
    with pytest.raises(ValueError, match="busy=0"):
        set_process_budget(busy=0)


def test_runs_arriving_in_a_burst_shed_before_the_average_catches_up(monkeypatch: pytest.MonkeyPatch) -> None:
    b, clock = _sampled(monkeypatch)
    clock.run(1.0, 0.0)
    assert b.shed_run() is False  # a quiet process
    b._sample()
    for _ in range(5):  # 30 ms of a full core: many runs starting at once
        clock.run(0.006, 1.0)
        b._sample()
    assert b._sample() < 0.6  # the 50 ms average has not caught up
    assert b.shedding() is False  # calls of running runs still speculate
    assert b.shed_run() is True  # but a run arriving now does not
    b.run_ended()
    b.run_ended()


@pytest.mark.parametrize("shed", [False, True])
def test_an_async_consumer_that_stops_early_closes_the_run_cleanly(budget: ProcessBudget, shed: bool) -> None:
    errors: list[Any] = []
    graph = _graph(True)
    if shed:
        set_process_budget(busy=1e-9)
        budget.shed_run()
        time.sleep(0.01)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        stream = graph.astream({"x": 0, "log": []}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        async for _ in stream:
            break  # the stream is left to the loop to close (at its end), as most consumers do

    try:
        asyncio.run(main())
    finally:
        if shed:
            budget.run_ended()
    assert errors == []
    assert graph.last_report.shed_runs == int(shed)
