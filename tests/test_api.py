"""Public API: build-time errors, run-time junk, streaming, reports, lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_speculative import Guess, SpeculationPolicy, SpeculationReport, SpeculativeNode, speculate

from . import oracle
from .leftovers import leftover_work


class S(TypedDict):
    n: int


def _chain(actor: Any, names: tuple[str, ...] = ("a", "b", "c")) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    prev = START
    for name in names:
        b.add_node(name, actor)
        b.add_edge(prev, name)
        prev = name
    b.add_edge(prev, END)
    return b


def inc(state: S) -> dict[str, int]:
    time.sleep(0.1)  # slow enough that an instant speculator wins the race even on a loaded machine
    return {"n": state["n"] + 1}


async def ainc(state: S) -> dict[str, int]:
    await asyncio.sleep(0.02)
    return {"n": state["n"] + 1}


def right(state: S) -> list[Guess]:
    return [Guess({"n": state["n"] + 1}, confidence=0.9), Guess({"n": -5}, confidence=0.1)]


# ----------------------------------------------------------------- build time


def test_unknown_node_names_the_graph_nodes() -> None:
    with pytest.raises(ValueError, match=r"'nope'.*not a node.*\['a', 'b', 'c'\]"):
        speculate(_chain(inc), {"nope": right})
    with pytest.raises(ValueError, match=r"unsafe.*'zzz'"):
        speculate(_chain(inc), {"a": right}, unsafe={"zzz"})


def test_non_callable_speculator_and_bad_policy() -> None:
    with pytest.raises(TypeError, match=r"speculator for node 'a'.*not a function"):
        speculate(_chain(inc), {"a": 42})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="SpeculationPolicy"):
        speculate(_chain(inc), {"a": right}, policy={"k": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"k=0"):
        SpeculationPolicy(k=0)
    with pytest.raises(ValueError, match=r"min_confidence=2"):
        SpeculationPolicy(min_confidence=2)
    with pytest.raises(ValueError, match="speculator_timeout"):
        SpeculationPolicy(speculator_timeout=-1)
    with pytest.raises(TypeError, match="positional"):
        SpeculationPolicy(3)  # type: ignore[misc]
    with pytest.raises(TypeError, match="action must be a function"):
        SpeculativeNode("not a function", speculator=right)  # type: ignore[arg-type]


def test_a_graph_is_required_and_nodes_are_not_both_unsafe_and_speculative() -> None:
    with pytest.raises(TypeError, match="takes a StateGraph"):
        speculate(lambda s: s, {"a": right})  # type: ignore[call-overload]
    compiled = speculate(_chain(inc).compile(), {"a": right})  # a compiled graph comes back compiled
    assert compiled.invoke({"n": 0}) == {"n": 3}
    with pytest.raises(ValueError, match="both speculative and unsafe"):
        speculate(_chain(inc), {"a": right}, unsafe={"a"})


def test_speculate_does_not_change_the_builder() -> None:
    builder = _chain(inc)
    speculate(builder, {"a": right})
    assert not isinstance(builder.nodes["a"].runnable, SpeculativeNode)


# ----------------------------------------------------------------- run time


@pytest.mark.parametrize(
    "junk, problem",
    [
        (42, "returned int"),
        (["x"], "not an update dict"),
        ([{"zz": 1}], "unknown keys"),
        ([Guess({"n": 1}, confidence=7)], "confidence"),
        # every shape a guess can take is checked the same way, a Command's update included
        ([Command(update={"zz": 1})], "unknown keys"),
        ([[Command(update={"n": 1}), Command(update={"zz": 1})]], "unknown keys"),
        ([Command(update={"n": 1}, goto="nope")], "not a node"),
        ([Command(resume=1)], "resume"),
        ([Command(graph=Command.PARENT, update={"n": 1})], "another graph"),
    ],
)
def test_junk_from_the_speculator_is_an_event_not_an_error(junk: Any, problem: str) -> None:
    graph = speculate(_chain(inc), {"a": lambda s: junk}).compile()
    assert graph.invoke({"n": 0}) == {"n": 3}
    events = [e for e in graph.last_report.events if e["event"] == "invalid_guess"]
    assert events and problem in " ".join(events[0]["problems"])
    oracle.assert_report_sound(graph.last_report)
    assert graph.last_report.node("a").speculator_errors == 1


def test_raising_and_hanging_speculators_cost_nothing() -> None:
    def boom(state: S) -> Any:
        raise RuntimeError("speculator down")

    async def hang(state: S) -> Any:
        await asyncio.sleep(60)

    graph = speculate(
        _chain(ainc), {"a": boom, "b": hang}, policy=SpeculationPolicy(speculator_timeout=0.05)
    ).compile()
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(out=asyncio.run(graph.ainvoke({"n": 0}))))
    worker.start()
    worker.join(20)  # a hang, not a slow run, would exceed this
    assert not worker.is_alive() and result["out"] == {"n": 3}
    kinds = {e["event"] for e in graph.last_report.events}
    assert {"speculator_error"} <= kinds
    assert "speculator_timeout" in kinds or "speculator_late" in kinds
    oracle.assert_report_sound(graph.last_report)


def _latched_chain() -> StateGraph:  # type: ignore[type-arg]
    """a -> b -> c where each call waits (at most 5 s) until the next one has started: on a
    speculative run the next one starts early on a branch, so adoption never hangs on a race."""
    started = {name: threading.Event() for name in "abc"}

    def step(name: str, waits: str | None) -> Any:
        def actor(state: S) -> dict[str, int]:
            started[name].set()
            if waits:
                started[waits].wait(5)
            time.sleep(0.02)
            return {"n": state["n"] + 1}

        return actor

    b = StateGraph(S)
    for name, waits in (("a", "b"), ("b", "c"), ("c", None)):
        b.add_node(name, step(name, waits))
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", END)
    return b


def test_report_and_custom_stream_events() -> None:
    graph = speculate(
        _latched_chain(), {"a": right, "b": right}, policy=SpeculationPolicy(stream_events=True)
    ).compile(checkpointer=InMemorySaver())
    chunks = list(
        graph.stream({"n": 0}, {"configurable": {"thread_id": "1"}}, stream_mode=["values", "custom"])
    )
    custom = [c for mode, c in chunks if mode == "custom"]
    values = [c for mode, c in chunks if mode == "values"]
    assert values[-1] == {"n": 3}
    assert {"guesses", "hit", "adopted"} <= {c["event"] for c in custom}
    assert all(c["type"] == "speculation" for c in custom)
    report = graph.last_report
    assert isinstance(report, SpeculationReport)
    assert report.hits == 2 and report.adopted == 2  # b, and c (no speculator, launched on b's branch)
    summary = report.summary()
    assert summary["nodes"]["a"]["hits"] == 1
    assert graph.report.hits >= 2


def test_disabled_policy_runs_like_a_plain_graph() -> None:
    graph = speculate(_chain(inc), {"a": right}, policy=SpeculationPolicy(enabled=False)).compile()
    assert graph.invoke({"n": 0}) == {"n": 3}
    assert "no node of this graph has a speculator" in graph.last_report.refused  # no session was opened
    assert not any(isinstance(n.bound, SpeculativeNode) for n in graph.nodes.values())  # no wrapper either


def test_min_confidence_drops_guesses() -> None:
    graph = speculate(_chain(inc), {"a": right}, policy=SpeculationPolicy(min_confidence=0.5)).compile()
    graph.invoke({"n": 0})
    assert graph.last_report.node("a").guesses == 1


def slow_inc(state: S) -> dict[str, int]:
    time.sleep(0.25)  # leaves the speculator ample time, so the hit counts below do not race
    return {"n": state["n"] + 1}


def slower_inc(state: S) -> dict[str, int]:
    time.sleep(0.6)  # b's early call (launched just after a started) is still running when adopted
    return {"n": state["n"] + 1}


def test_speculative_node_added_directly() -> None:
    builder = StateGraph(S)
    builder.add_node("a", SpeculativeNode(slow_inc, speculator=right, policy=SpeculationPolicy(k=2)))
    builder.add_node("b", SpeculativeNode(slower_inc, speculator=right))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = speculate(builder).compile()
    assert graph.invoke({"n": 0}) == {"n": 2}
    assert graph.last_report.hits == 2 and graph.last_report.adopted == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert builder.compile().invoke({"n": 0}) == {"n": 2}
    assert any("speculate(builder)" in str(w.message) for w in caught)


def test_custom_key_and_match() -> None:
    class T(TypedDict):
        n: int
        noise: str

    def actor(state: T) -> dict[str, Any]:
        time.sleep(0.15)
        return {"n": state["n"] + 1, "noise": "x" * state["n"]}

    builder = StateGraph(T)
    for name in "ab":
        builder.add_node(name, actor)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = speculate(
        builder,
        {"a": lambda s: [{"n": s["n"] + 1, "noise": "?"}], "b": lambda s: []},
        keys={"b": lambda s: s["n"]},
        matches={"a": lambda g, actual: g["n"] == actual["n"]},
    ).compile()
    out = graph.invoke({"n": 0, "noise": ""})
    assert out == {"n": 2, "noise": "x"}
    assert graph.last_report.hits == 1 and graph.last_report.adopted == 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_adopted_call_speculates_from_the_main_runs_input(asynchronous: bool) -> None:
    """b is keyed on `n` alone, so it is adopted from a branch whose `note` was guessed wrong; its
    own speculation must fork the main run's state, or c, launched early there, could never match."""

    class T(TypedDict):
        n: int
        note: str

    def step(seconds: float, **extra: str) -> Any:
        def actor(state: T) -> dict[str, Any]:
            time.sleep(seconds)
            return {"n": state["n"] + 1, **extra}

        return actor

    builder = StateGraph(T)
    builder.add_node("a", step(0.15, note="real"))
    builder.add_node("b", step(0.3))  # still running when the main run adopts it
    builder.add_node("c", step(0.15))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    graph = speculate(
        builder,
        {
            "a": lambda s: [{"n": s["n"] + 1, "note": "guessed"}],
            "b": lambda s: [{"n": s["n"] + 1}],
            "c": lambda s: [],
        },
        keys={"b": lambda s: s["n"]},
        matches={"a": lambda g, actual: g["n"] == actual["n"]},
        policy=SpeculationPolicy(speculator_timeout=5.0),
    ).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t"}}
    out = (
        asyncio.run(graph.ainvoke({"n": 0, "note": ""}, cfg))
        if asynchronous
        else graph.invoke({"n": 0, "note": ""}, cfg)
    )
    assert out == {"n": 3, "note": "real"}
    report = graph.last_report
    assert report.node("b").adopted == 1
    assert report.node("c").adopted == 1 and report.node("c").wasted == 0


# ----------------------------------------------------------------- lifecycle


def test_no_work_outlives_invoke_even_when_it_raises() -> None:
    def fails(state: S) -> Any:
        time.sleep(0.01)
        raise ValueError("actor failed")

    builder = _chain(inc, ("a", "b"))
    builder.add_node("c", fails)
    builder.add_edge("b", "c")
    graph = speculate(builder, {"a": right, "b": right}).compile()
    with pytest.raises(ValueError, match="actor failed"):
        graph.invoke({"n": 0})
    assert leftover_work() == []
    graph2 = speculate(_chain(inc), {"a": right, "b": right}).compile()
    graph2.invoke({"n": 0})
    assert leftover_work() == []


def test_losing_branches_are_cancelled_and_nothing_outlives_ainvoke() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def slow(state: S) -> dict[str, int]:
        started.append(state["n"])
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            cancelled.append(state["n"])
            raise
        return {"n": state["n"] + 1}

    def wrong(state: S) -> list[dict[str, int]]:
        return [{"n": 100}, {"n": 200}]

    graph = speculate(_chain(slow), {"a": wrong, "b": wrong, "c": wrong}).compile()

    async def main() -> None:
        assert await graph.ainvoke({"n": 0}) == {"n": 3}
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(main())
    assert sorted(set(cancelled)) == [100, 200]  # early calls on wrong guesses were cancelled
    assert graph.last_report.wasted >= 4


@pytest.mark.parametrize("asynchronous", [False, True])
def test_losing_branches_leave_the_saver_and_the_session(asynchronous: bool) -> None:
    """A lost branch's thread is deleted and the run keeps only its (thread, outcome)."""
    saver = InMemorySaver()
    graph: Any = speculate(_chain(inc), {n: lambda s: [{"n": -1}, {"n": -2}] for n in "abc"}).compile(
        checkpointer=saver
    )
    cfg: Any = {"configurable": {"thread_id": "main"}}
    assert (asyncio.run(graph.ainvoke({"n": 0}, cfg)) if asynchronous else graph.invoke({"n": 0}, cfg)) == {
        "n": 3
    }
    report = graph.last_report
    outcomes = graph.last_report.branches
    assert report.misses == 3 and len(outcomes) == sum(s.guesses for s in report.nodes.values()) == 6
    assert {outcome for _, outcome in outcomes} == {"miss"}
    assert set(saver.storage) == {"main"}


def test_cancelling_the_run_cancels_every_speculative_task() -> None:
    async def slow(state: S) -> dict[str, int]:
        await asyncio.sleep(0.2)
        return {"n": state["n"] + 1}

    graph = speculate(_chain(slow), {"a": right, "b": right}).compile()

    async def main() -> None:
        task = asyncio.create_task(graph.ainvoke({"n": 0}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(main())


def _inner(speculative_nodes: bool) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    for name in ("a", "b"):
        b.add_node(name, SpeculativeNode(inc, speculator=right) if speculative_nodes else inc)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b


def _saved(saver: Any) -> list[tuple[str, str, Any]]:
    """(thread, namespace root, values) of every checkpoint, oldest first."""
    rows = [
        (
            c.config["configurable"]["thread_id"],
            c.config["configurable"]["checkpoint_ns"].split(":")[0],
            c.checkpoint["channel_values"].get("n"),
        )
        for c in saver.list(None)
    ]
    return sorted(rows, key=str)


def test_a_speculative_graph_used_as_a_subgraph_keeps_the_parents_checkpoints() -> None:
    """It runs as it is (with one warning): its checkpoints stay in the parent's thread."""
    results, saved = [], []
    for sub in (_inner(False).compile(), speculate(_inner(False), {"a": right, "b": right}).compile()):
        outer = StateGraph(S)
        outer.add_node("sub", sub)
        outer.add_edge(START, "sub")
        outer.add_edge("sub", END)
        saver = InMemorySaver()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results.append(
                outer.compile(checkpointer=saver).invoke({"n": 0}, {"configurable": {"thread_id": "t"}})
            )
        saved.append(_saved(saver))
    assert results == [{"n": 2}, {"n": 2}]
    assert saved[0] == saved[1]
    assert len(caught) == 1 and "runs as a subgraph" in str(caught[0].message)  # once, for the graph


def test_branches_of_the_parent_adopt_calls_inside_a_subgraph() -> None:
    """Speculate the parent: a branch runs into the subgraph and launches its first slow call."""
    outs, saved = [], []
    for speculative in (False, True):
        outer = StateGraph(S)
        outer.add_node("x", inc)
        outer.add_node("sub", _inner(speculative).compile())
        outer.add_edge(START, "x")
        outer.add_edge("x", "sub")
        outer.add_edge("sub", END)
        saver = InMemorySaver()
        graph: Any = (
            speculate(outer, {"x": right}).compile(checkpointer=saver)
            if speculative
            else outer.compile(checkpointer=saver)
        )
        outs.append(graph.invoke({"n": 0}, {"configurable": {"thread_id": "t"}}))
        saved.append([row for row in _saved(saver) if row[0] == "t"])
    assert outs == [{"n": 3}, {"n": 3}]
    assert saved[0] == saved[1]
    assert graph.last_report.node("a").adopted == 1


def _loop(stop: int) -> StateGraph:  # type: ignore[type-arg]
    """One node `a` looping `stop` times: it needs a recursion limit of `stop + 1`."""

    async def step(state: S) -> dict[str, int]:
        await asyncio.sleep(0.1)  # ample time for the speculator and the branch to start
        return {"n": state["n"] + 1}

    builder = StateGraph(S)
    builder.add_node("a", step)
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", lambda s: END if s["n"] >= stop else "a")
    return builder


def _outcome(run: Any) -> Any:
    try:
        return asyncio.run(run)
    except Exception as exc:  # the same error must come out of both runs
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("limit", [4, 5, 6, 7])
def test_near_the_recursion_limit_it_is_the_plain_run(limit: int) -> None:
    """Branches share the main run's recursion limit: one that would pass it stops (and says
    why in the report); the run returns or raises exactly what the plain run does."""
    cfg: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": limit}
    plain = _outcome(_loop(5).compile(checkpointer=InMemorySaver()).ainvoke({"n": 0}, cfg))
    graph = speculate(_loop(5), {"a": lambda s: [{"n": s["n"] + 1}]}).compile(checkpointer=InMemorySaver())
    assert _outcome(graph.ainvoke({"n": 0}, cfg)) == plain
    assert (plain == {"n": 5}) == (limit > 5)
    oracle.assert_report_sound(graph.last_report)
    ends = [e for e in graph.last_report.events if e["event"] == "branch_end"]
    assert ends if limit < 6 else limit == 6 or not ends  # those that would pass the limit, only them
    assert all(e["reason"] == "recursion limit" for e in ends)


def _with_config(state: S, config: Any) -> list[dict[str, int]]:
    assert "configurable" in config
    return [{"n": state["n"] + 1}]


def _with_runtime(state: S, runtime: Any) -> list[dict[str, int]]:
    assert runtime.store is not None
    return [{"n": state["n"] + 1}]


def _with_store(state: S, store: Any) -> list[dict[str, int]]:
    assert store is not None
    return [{"n": state["n"] + 1}]


def _with_writer(state: S, writer: Any) -> list[dict[str, int]]:
    assert callable(writer)
    return [{"n": state["n"] + 1}]


def _with_all(state: S, *, config: Any, runtime: Any, store: Any, writer: Any) -> list[dict[str, int]]:
    assert runtime.store is store is not None and "configurable" in config and callable(writer)
    return [{"n": state["n"] + 1}]


@pytest.mark.parametrize("speculator", [_with_config, _with_runtime, _with_store, _with_writer, _with_all])
def test_a_speculator_may_ask_for_what_langgraph_injects(speculator: Any) -> None:
    """Like a node, a speculator may take `config`, `runtime`, `store` and `writer` beside the
    state (LangGraph passes them): it is accepted, given them, and its right guesses adopted."""
    from langgraph.store.memory import InMemoryStore

    graph = speculate(_chain(slow_inc), {"a": speculator, "b": speculator}).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    assert graph.invoke({"n": 0}, {"configurable": {"thread_id": "t"}}) == {"n": 3}
    assert graph.last_report.speculator_errors == 0 and graph.last_report.adopted >= 1


@pytest.mark.parametrize(
    "case, match",
    [
        ("interrupt_after", "interrupt_after"),
        ("interrupt_before_all", "never speculates"),
        ("interrupt_after_all", "never speculates"),
        ("last_node", "can never pay off"),
    ],
)
def test_compile_warnings_point_at_the_users_compile_call(case: str, match: str) -> None:
    """A warning about the graph names the line of the user's `compile()`, not the library's."""
    node = "c" if case == "last_node" else "a"
    graph = speculate(_chain(inc), {node: right})
    kwargs: dict[str, Any] = {
        "interrupt_after": {"interrupt_after": ["a"], "interrupt_after_all": "*"}.get(case),
        "interrupt_before": "*" if case == "interrupt_before_all" else None,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph.compile(checkpointer=InMemorySaver(), **kwargs)
    ours = [w for w in caught if match in str(w.message)]
    assert ours, [str(w.message) for w in caught]
    assert all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_speculator_past_its_timeout_is_reported_with_the_timeout(asynchronous: bool) -> None:
    """The actor is slower than `speculator_timeout`, the speculator slower still: the report
    says it timed out, after how long, and the run is the plain run."""

    async def hang(state: S) -> Any:
        await asyncio.sleep(5)

    def sync_hang(state: S) -> Any:
        time.sleep(1.0)

    def actor(state: S) -> dict[str, int]:
        time.sleep(1.0 if state["n"] == 0 else 0)  # `a` outlasts the speculator's timeout by far
        return {"n": state["n"] + 1}

    graph = speculate(
        _chain(actor),
        {"a": hang if asynchronous else sync_hang},
        policy=SpeculationPolicy(speculator_timeout=0.05),
    ).compile()
    out = asyncio.run(graph.ainvoke({"n": 0})) if asynchronous else graph.invoke({"n": 0})
    assert out == {"n": 3}
    timeouts = [e for e in graph.last_report.events if e["event"] == "speculator_timeout"]
    assert [(e["node"], e["timeout_s"]) for e in timeouts] == [("a", 0.05)]
    oracle.assert_report_sound(graph.last_report)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_adopted_call_that_fails_is_made_again_by_the_main_run(asynchronous: bool) -> None:
    """The main run adopts `b`'s early call while it runs; it then fails (a transient error on
    the branch): the main run makes the call itself, the result is the plain run's, and the
    report takes the adoption back (`adopted_failed`)."""
    from langgraph_speculative import speculation_info

    early_b = threading.Event()

    def a(state: S) -> dict[str, int]:
        early_b.wait(5)  # the main run reaches b while b's early call runs
        return {"n": state["n"] + 1}

    def b(state: S) -> dict[str, int]:
        if speculation_info() is not None:
            early_b.set()
            time.sleep(0.5)
            raise RuntimeError("transient failure of the early call")
        return {"n": state["n"] + 1}

    builder = StateGraph(S)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = speculate(builder, {"a": right}).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t"}}
    out = asyncio.run(graph.ainvoke({"n": 0}, cfg)) if asynchronous else graph.invoke({"n": 0}, cfg)
    assert out == {"n": 2}
    kinds = [e["event"] for e in graph.last_report.events]
    assert "adopted" in kinds and "adopted_failed" in kinds, kinds
    assert graph.last_report.adopted == 0
    oracle.assert_report_sound(graph.last_report)
