"""Faults and load: nothing user code raises, mutates or floods can hang or change a run.

Each fault is injected into one user hook (speculator, early call, key, match), sync and async;
the run must return what the plain run returns (or raise what it raises), within a bound that
only a hang would exceed.
"""

from __future__ import annotations

import asyncio
import operator
import random
import threading
import time
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, speculate, speculation_info

from .conftest import amake_saver
from .leftovers import leftover_work

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class S(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


class Boom(BaseException):
    """A BaseException that is neither KeyboardInterrupt nor SystemExit."""


FAULTS = [KeyboardInterrupt, SystemExit, Boom, RuntimeError, GeneratorExit]
HOOKS = ["speculator", "early_call", "key", "match"]


def _graph(hook: str, fault: type[BaseException], asynchronous: bool) -> Any:
    def step(tag: str) -> Any:
        def actor(s: S) -> dict[str, Any]:
            if hook == "early_call" and tag == "b" and speculation_info() is not None:
                raise fault("early call fails")
            time.sleep(0.05)
            return {"x": s["x"] + 1, "log": [tag]}

        async def aactor(s: S) -> dict[str, Any]:
            if hook == "early_call" and tag == "b" and speculation_info() is not None:
                raise fault("early call fails")
            await asyncio.sleep(0.05)
            return {"x": s["x"] + 1, "log": [tag]}

        return aactor if asynchronous else actor

    b = StateGraph(S)
    for tag in "abc":
        b.add_node(tag, step(tag))
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", END)
    return b


def _speculators(hook: str, fault: type[BaseException]) -> dict[str, Any]:
    def guess(s: S) -> Any:
        if hook == "speculator":
            raise fault("speculator fails")
        return [{"x": s["x"] + 1, "log": ["a"]}]

    def guess_b(s: S) -> Any:
        return [{"x": s["x"] + 1, "log": ["b"]}]

    return {"a": guess, "b": guess_b}


def _run_bounded(fn: Any, seconds: float = 20.0) -> Any:
    """Run `fn` in a thread; a hang fails the test instead of stalling the suite."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # reported below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the run hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.__name__ for f in FAULTS])
@pytest.mark.parametrize("hook", HOOKS)
def test_no_exception_from_a_user_hook_changes_or_hangs_a_run(
    hook: str, fault: type[BaseException], asynchronous: bool
) -> None:
    def key(s: S) -> Any:
        raise fault("key fails")

    def match(guess: Any, actual: Any) -> bool:
        raise fault("match fails")

    plain = _graph(hook, fault, asynchronous).compile(checkpointer=InMemorySaver())
    graph = speculate(
        _graph(hook, fault, asynchronous),
        _speculators(hook, fault),
        keys={"b": key} if hook == "key" else None,
        matches={"a": match} if hook == "match" else None,
    ).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    start = {"x": 0, "log": []}
    if asynchronous:
        want = asyncio.run(plain.ainvoke(start, cfg))
        got = _run_bounded(lambda: asyncio.run(graph.ainvoke(start, cfg)))
    else:
        want = plain.invoke(start, cfg)
        got = _run_bounded(lambda: graph.invoke(start, cfg))
    assert got == want
    assert [s.values for s in graph.get_state_history(cfg)] == [
        s.values for s in plain.get_state_history(cfg)
    ]
    events = {e["event"] for e in graph.last_report.events}
    expected = {"speculator": "speculator_error", "key": "key_error", "match": "match_error"}.get(hook)
    if expected:
        assert expected in events, events
    assert leftover_work() == []


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_speculator_or_key_that_mutates_its_input_changes_nothing(asynchronous: bool) -> None:
    def actor(s: S) -> dict[str, Any]:
        time.sleep(0.05)
        return {"x": s["x"] + 1, "log": ["n"]}

    def build() -> Any:
        b = StateGraph(S)
        b.add_node("a", actor)
        b.add_node("b", actor)
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", END)
        return b

    def vandal(s: Any) -> Any:
        s["log"].append("MUTATED")
        s["x"] = -100
        return [{"x": 1, "log": ["n"]}]

    def vandal_key(s: Any) -> Any:
        s["log"].append("KEY MUTATED")
        return s["x"]

    plain = build().compile(checkpointer=InMemorySaver())
    graph = speculate(build(), {"a": vandal, "b": vandal}, keys={"b": vandal_key}).compile(
        checkpointer=InMemorySaver()
    )
    cfg = {"configurable": {"thread_id": "t"}}
    run = (
        (lambda g: asyncio.run(g.ainvoke({"x": 0, "log": []}, cfg)))
        if asynchronous
        else (lambda g: g.invoke({"x": 0, "log": []}, cfg))
    )
    assert run(graph) == run(plain) == {"x": 2, "log": ["n", "n"]}
    assert [s.values for s in graph.get_state_history(cfg)] == [
        s.values for s in plain.get_state_history(cfg)
    ]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_max_inflight_is_a_hard_bound_even_for_k_1000(asynchronous: bool) -> None:
    started = {"n": 0, "peak": 0, "now": 0}
    lock = threading.Lock()

    def actor(s: S) -> dict[str, Any]:
        with lock:
            started["now"] += 1
            started["peak"] = max(started["peak"], started["now"])
        try:
            time.sleep(0.02)
            return {"x": s["x"] + 1, "log": ["n"]}
        finally:
            with lock:
                started["now"] -= 1

    def build() -> Any:
        b = StateGraph(S)
        for name in "abc":
            b.add_node(name, actor)
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "c")
        b.add_edge("c", END)
        return b

    def thousand(s: S) -> Any:
        return [{"x": s["x"] + i, "log": ["n"]} for i in range(1000)]

    policy = SpeculationPolicy(k=1000, max_inflight=2)
    graph = speculate(build(), {"a": thousand, "b": thousand}, policy=policy).compile(
        checkpointer=InMemorySaver()
    )
    cfg = {"configurable": {"thread_id": "t"}}
    out = _run_bounded(
        (lambda: asyncio.run(graph.ainvoke({"x": 0, "log": []}, cfg)))
        if asynchronous
        else (lambda: graph.invoke({"x": 0, "log": []}, cfg))
    )
    assert out == {"x": 3, "log": ["n", "n", "n"]}
    report = graph.last_report
    assert report.peak_inflight <= 2
    assert started["peak"] <= 3  # the main run's own call, and at most two speculative ones
    assert "budget" in {e["event"] for e in report.events}
    assert sum(s.guesses for s in report.nodes.values()) <= 4  # a check each, not a branch each


@pytest.mark.parametrize("kind", ["sqlite_aio", "postgres_aio"])
def test_cancelling_runs_at_random_points_leaves_only_main_threads(kind: str, tmp_path: Any) -> None:
    """Nothing of a branch ever reaches the user's saver, whenever the run is cancelled, and the
    cancelled thread resumes to the plain result."""

    async def actor(s: S) -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {"x": s["x"] + 1, "log": ["n"]}

    def build() -> Any:
        b = StateGraph(S)
        for name in "abcd":
            b.add_node(name, actor)
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "c")
        b.add_edge("c", "d")
        b.add_edge("d", END)
        return b

    def guess(s: S) -> Any:
        return [{"x": s["x"] + 1, "log": ["n"]}, {"x": 99, "log": ["?"]}]

    async def main() -> None:
        rng = random.Random(7)
        async with amake_saver(kind, tmp_path) as saver:
            graph = speculate(build(), {n: guess for n in "abc"}).compile(checkpointer=saver)
            threads = []
            for _ in range(8):
                cfg: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
                threads.append(cfg["configurable"]["thread_id"])
                task = asyncio.create_task(graph.ainvoke({"x": 0, "log": []}, cfg))
                await asyncio.sleep(rng.uniform(0.0, 0.12))
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                # cancelled before its first checkpoint, a thread has nothing to resume (plain too)
                again = None if await saver.aget_tuple(cfg) is not None else {"x": 0, "log": []}
                assert await graph.ainvoke(again, cfg) == {"x": 4, "log": ["n"] * 4}
            left = {c.config["configurable"]["thread_id"] async for c in saver.alist(None)}
            assert left == set(threads)

    asyncio.run(main())


class _SlowSaver(InMemorySaver):
    """A checkpointer whose writes take a while (a busy database)."""

    def put(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.03)
        return super().put(*args, **kwargs)

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.03)
        return await super().aput(*args, **kwargs)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_slow_checkpointer_delays_forks_but_never_fails_them(asynchronous: bool) -> None:
    def actor(s: S) -> dict[str, Any]:
        time.sleep(0.1)
        return {"x": s["x"] + 1, "log": ["n"]}

    def build() -> Any:
        b = StateGraph(S)
        for name in "abc":
            b.add_node(name, actor)
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "c")
        b.add_edge("c", END)
        return b

    guess = lambda s: [{"x": s["x"] + 1, "log": ["n"]}]  # noqa: E731
    graph = speculate(build(), {"a": guess, "b": guess}).compile(checkpointer=_SlowSaver())
    cfg = {"configurable": {"thread_id": "t"}}
    start = {"x": 0, "log": []}
    out = asyncio.run(graph.ainvoke(start, cfg)) if asynchronous else graph.invoke(start, cfg)
    assert out == {"x": 3, "log": ["n"] * 3}
    events = [e["event"] for e in graph.last_report.events]
    assert "branch_error" not in events and graph.last_report.adopted >= 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_work_cancelled_before_it_starts_gives_its_budget_slot_back(
    monkeypatch: pytest.MonkeyPatch, asynchronous: bool
) -> None:
    """A branch or early call whose task is cancelled before its first step (the run moved on
    at once) never runs its own code: its slot of the process budget must still come back."""
    from langgraph_speculative._budget import process_budget
    from langgraph_speculative._session import Session

    spawn = Session.spawn

    def cancelled_at_once(self: Session, coro: Any, **kw: Any) -> Any:
        task = spawn(self, coro, **kw)
        if getattr(coro, "__name__", "") in ("run_branch", "_early_call"):
            task.cancel()
        return task

    monkeypatch.setattr(Session, "spawn", cancelled_at_once)
    budget = process_budget()
    before = budget.inflight
    plain = _graph("speculator", RuntimeError, asynchronous).compile(checkpointer=InMemorySaver())
    graph = speculate(
        _graph("speculator", RuntimeError, asynchronous), _speculators("none", RuntimeError)
    ).compile(checkpointer=InMemorySaver())
    start = {"x": 0, "log": []}
    for _ in range(3):
        cfg: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
        if asynchronous:
            got, want = asyncio.run(graph.ainvoke(start, cfg)), asyncio.run(plain.ainvoke(start, cfg))
        else:
            got, want = graph.invoke(start, cfg), plain.invoke(start, cfg)
        assert got == want
        assert graph.last_report.nodes["a"].guesses >= 1  # branches were started (and cancelled)
    assert budget.inflight == before


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_adopted_call_that_fails_is_made_again_by_the_main_run(asynchronous: bool) -> None:
    """b fails only on a branch, and only after the main run has adopted it (still running): the
    main run then calls b itself and the run ends as the plain one does."""

    def a(s: S) -> dict[str, Any]:
        time.sleep(0.05)
        return {"x": s["x"] + 1, "log": ["a"]}

    def b(s: S) -> dict[str, Any]:
        if speculation_info() is not None:
            time.sleep(0.3)  # still running when the main run arrives and adopts it
            raise RuntimeError("the early call failed")
        time.sleep(0.05)
        return {"x": s["x"] * 10, "log": ["b"]}

    def build() -> Any:
        g = StateGraph(S)
        g.add_node("a", a)
        g.add_node("b", b)
        g.add_edge(START, "a")
        g.add_edge("a", "b")
        g.add_edge("b", END)
        return g

    plain = build().compile()
    graph = speculate(build(), {"a": lambda s: [{"x": s["x"] + 1, "log": ["a"]}]}).compile()
    start = {"x": 1, "log": []}
    run = (lambda g: asyncio.run(g.ainvoke(start))) if asynchronous else (lambda g: g.invoke(start))
    assert run(graph) == run(plain) == {"x": 20, "log": ["a", "b"]}
    events = [e["event"] for e in graph.last_report.events]
    assert "adopted" in events and "adopted_failed" in events


# ------------------------------------------------------------------ build-time checks


def _chain() -> Any:
    b = StateGraph(S)
    b.add_node("n1", lambda s: {"x": 1})
    b.add_edge(START, "n1")
    b.add_edge("n1", END)
    return b


def test_build_time_checks_name_the_fix() -> None:
    ok = speculate(_chain(), {"n1": lambda s: []}, unsafe=None)  # None means no unsafe node
    assert ok is not None
    with pytest.raises(
        TypeError, match=r"speculators=\.\.\.\) must map node names.*list.*\{'node_name': fn\}"
    ):
        speculate(_chain(), ["n1"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"speculator for node 'n1' takes \(state, extra\)"):
        speculate(_chain(), {"n1": lambda state, extra: []})
    with pytest.raises(TypeError, match=r"speculator for node 'n1' takes \(\)"):
        speculate(_chain(), {"n1": lambda: []})
    with pytest.raises(TypeError, match=r"match\(guess, actual\)"):
        speculate(_chain(), {"n1": lambda s: []}, matches={"n1": lambda g: True})
    with pytest.raises(TypeError, match=r"unsafe must be a set of node names"):
        speculate(_chain(), {"n1": lambda s: []}, unsafe=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'n2'.*not a node.*\['n1'\]"):
        speculate(_chain(), {"n2": lambda s: []})
    speculate(_chain(), {"n1": lambda state, config=None: []})  # optional and injected parameters are fine
    speculate(_chain(), {"n1": lambda state, *, runtime: []})


def test_the_checkpoint_a_run_loaded_is_recorded_as_it_was_loaded() -> None:
    """LangGraph's loop runs on the very checkpoint object it loaded and bumps its versions in
    place as the run goes; branches fork from the recorder's record, which must not move."""
    import copy

    from langgraph_speculative._tee import RecordingSaver

    plain = _graph("none", RuntimeError, False).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t"}}
    plain.invoke({"x": 0, "log": []}, cfg)
    recorder = RecordingSaver(plain.checkpointer)
    tup = recorder.get_tuple(cfg)
    assert tup is not None
    loaded = copy.deepcopy(tup.checkpoint)
    tup.checkpoint["channel_versions"]["x"] = "99.bumped"  # what the loop does to its own
    tup.checkpoint["versions_seen"].setdefault("a", {})["x"] = "99.bumped"
    saved = recorder._saved[tup.checkpoint["id"]]
    assert saved.checkpoint["channel_versions"] == loaded["channel_versions"]
    assert saved.checkpoint["versions_seen"] == loaded["versions_seen"]
