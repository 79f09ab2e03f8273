"""Regressions found by running LangGraph's own test suite speculative (issue 26,
`scripts/upstream/suite.py`): each test builds the graph LangGraph's test built, runs it plain
and speculative, and asserts what the user sees is the same."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from langgraph_speculative import Guess, SpeculationPolicy, speculate

from .leftovers import settle_background_calls


class S(TypedDict):
    n: int


class Opaque:
    """A value msgpack cannot serialize (a lock inside): fine in a graph without a checkpointer."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.n == self.n

    def __deepcopy__(self, memo: dict[int, Any]) -> Opaque:
        return Opaque(self.n)


class Boxed(TypedDict):
    n: int
    box: Opaque


def _chain(actor: Any, state: type = S, names: Sequence[str] = ("a", "b", "c")) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(state)
    prev = START
    for name in names:
        b.add_node(name, actor)
        b.add_edge(prev, name)
        prev = name
    b.add_edge(prev, END)
    return b


def inc(state: S) -> dict[str, int]:
    time.sleep(0.03)  # slow enough for a branch to form from an instant guess
    return {"n": state["n"] + 1}


def right(state: S) -> list[Guess]:
    return [Guess({"n": state["n"] + 1})]


# ------------------------------------------------------------ item 1: no checkpointer


def _box(state: Boxed) -> dict[str, Any]:
    time.sleep(0.03)
    return {"n": state["n"] + 1, "box": Opaque(state["box"].n + 1)}


def test_a_graph_without_checkpointer_runs_values_msgpack_cannot_serialize() -> None:
    builder = _chain(_box, Boxed)
    guess = {name: (lambda s: [{"n": s["n"] + 1, "box": Opaque(s["box"].n + 1)}]) for name in "ab"}
    plain = builder.compile().invoke({"n": 0, "box": Opaque(0)})
    graph = speculate(builder, guess).compile()
    assert graph.invoke({"n": 0, "box": Opaque(0)}) == plain == {"n": 3, "box": Opaque(3)}
    assert graph.last_report.hits >= 1  # the private saver kept the value, branches forked it


def _shape(chunk: Any) -> tuple[tuple[str | None, ...], Any]:
    """A streamed chunk's modes and namespaces (strings), and its payload's `type`, if any."""
    parts, payload = (chunk[:-1], chunk[-1]) if isinstance(chunk, tuple) else ((), chunk)
    names = tuple(p if isinstance(p, str) else None for p in parts)
    return names, payload.get("type") if isinstance(payload, dict) else None


@pytest.mark.parametrize("modes", [["checkpoints", "values"], ["debug"], "debug", "checkpoints"])
@pytest.mark.parametrize("subgraphs", [False, True])
def test_a_graph_without_checkpointer_streams_no_checkpoint_events(modes: Any, subgraphs: bool) -> None:
    builder = _chain(inc)

    def kinds(graph: Any) -> list[Any]:
        return [_shape(chunk) for chunk in graph.stream({"n": 0}, stream_mode=modes, subgraphs=subgraphs)]

    plain = kinds(builder.compile())
    assert all(kind != "checkpoint" and "checkpoints" not in parts for parts, kind in plain)
    assert kinds(speculate(builder, {"a": right, "b": right}).compile()) == plain


async def test_a_graph_without_checkpointer_streams_no_checkpoint_events_async_v2() -> None:
    builder = _chain(inc)

    async def kinds(graph: Any) -> list[Any]:
        return [
            (p["type"], p["data"].get("type") if isinstance(p["data"], dict) else None)
            async for p in graph.astream(
                {"n": 0}, stream_mode=["checkpoints", "debug", "values"], version="v2"
            )
        ]

    plain = await kinds(builder.compile())
    assert await kinds(speculate(builder, {"a": right, "b": right}).compile()) == plain


# ------------------------------------------------------------ item 2: the custom stream


def _writes_own_events(state: S) -> dict[str, int]:
    get_stream_writer()({"mine": state["n"]})
    time.sleep(0.03)
    return {"n": state["n"] + 1}


def test_the_custom_stream_carries_only_the_users_events_by_default() -> None:
    builder = _chain(_writes_own_events)
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    plain = list(builder.compile(checkpointer=InMemorySaver()).stream({"n": 0}, config, stream_mode="custom"))
    graph = speculate(builder, {"a": right, "b": right}).compile(checkpointer=InMemorySaver())
    assert (
        list(graph.stream({"n": 0}, config, stream_mode="custom")) == plain == [{"mine": i} for i in range(3)]
    )
    assert {"guesses", "hit"} <= {e["event"] for e in graph.last_report.events}  # the report keeps them


def test_speculation_events_reach_the_custom_stream_when_asked() -> None:
    graph = speculate(
        _chain(_writes_own_events), {"a": right}, policy=SpeculationPolicy(stream_events=True)
    ).compile(checkpointer=InMemorySaver())
    chunks = list(graph.stream({"n": 0}, {"configurable": {"thread_id": "t"}}, stream_mode="custom"))
    assert [c for c in chunks if "mine" in c] == [{"mine": i} for i in range(3)]
    assert {"guesses", "hit"} <= {c["event"] for c in chunks if c.get("type") == "speculation"}
    with pytest.raises(TypeError, match="stream_events"):
        SpeculationPolicy(stream_events="yes")  # type: ignore[arg-type]


# ------------------------------------------------------------ item 3: older put_writes


class OldSaver(InMemorySaver):
    """A checkpointer written before `task_path` existed (as LangGraph's test_checkpoint_errors)."""

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str) -> None:  # type: ignore[override]
        super().put_writes(config, writes, task_id)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:  # type: ignore[override]
        super().put_writes(config, writes, task_id)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_checkpointer_with_the_older_put_writes_signature(mode: str) -> None:
    builder = _chain(inc)
    graph = speculate(builder, {"a": right, "b": right}).compile(checkpointer=OldSaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    out = graph.invoke({"n": 0}, config) if mode == "sync" else asyncio.run(graph.ainvoke({"n": 0}, config))
    assert out == {"n": 3}
    assert graph.get_state(config).values == {"n": 3}


# ------------------------------------------------------------ item 4: node timeouts


async def _ainc(state: S) -> dict[str, int]:
    await asyncio.sleep(0.02)
    return {"n": state["n"] + 1}


async def test_async_nodes_with_a_timeout_compile_and_run() -> None:
    builder = StateGraph(S)
    builder.add_node("a", _ainc, timeout=5)
    builder.add_node("b", _ainc)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.set_node_defaults(timeout=5.0)
    graph = speculate(builder, {"a": right, "b": right}).compile()
    assert await graph.ainvoke({"n": 0}) == await builder.compile().ainvoke({"n": 0}) == {"n": 2}


def test_sync_nodes_with_a_timeout_are_refused_as_plain_refuses_them() -> None:
    builder = StateGraph(S)
    builder.add_node("a", inc, timeout=5)
    builder.add_edge(START, "a")
    with pytest.raises(ValueError, match="only supported for async nodes") as plain:
        builder.compile()
    with pytest.raises(ValueError, match="only supported for async nodes") as spec:
        speculate(builder, {"a": right}).compile()
    assert str(spec.value) == str(plain.value)


# ------------------------------------------------------------ item 5: default error handler


def test_set_node_defaults_error_handler_compiles_and_handles_like_plain() -> None:
    calls: list[str] = []

    def flaky(state: S) -> dict[str, int]:
        calls.append("flaky")
        raise RuntimeError("down")

    def handler(state: S) -> dict[str, int]:
        calls.append("handler")
        return {"n": -1}

    def make() -> StateGraph:  # type: ignore[type-arg]
        builder = StateGraph(S)
        builder.add_node("a", inc)
        builder.add_node("b", flaky)
        builder.add_edge(START, "a")
        builder.add_edge("a", "b")
        return builder.set_node_defaults(error_handler=handler)

    plain_out = make().compile().invoke({"n": 0})  # (LangGraph's compile adds the handler node to
    plain_calls, calls[:] = list(calls), []  # the builder it compiles: a builder compiles once)
    builder = make()
    spec = speculate(builder, {"a": right}, unsafe={"b"})  # b counts its calls: not on a branch
    graph = spec.compile()
    assert graph.invoke({"n": 0}) == plain_out
    assert calls == plain_calls
    spec.compile()  # and again: compiling leaves the builder as it was
    assert "__default_error_handler__" not in builder.nodes


# ------------------------------------------------------------ item 7: drawing


def test_the_drawing_is_the_plain_graphs() -> None:
    inner = _chain(inc, names=("x", "y"))
    outer = StateGraph(S)
    outer.add_node("a", inc)
    outer.add_node("sub", speculate(inner, {"x": right}).compile())
    outer.add_edge(START, "a")
    outer.add_edge("a", "sub")
    plain_outer = StateGraph(S)
    plain_outer.add_node("a", inc)
    plain_outer.add_node("sub", inner.compile())
    plain_outer.add_edge(START, "a")
    plain_outer.add_edge("a", "sub")
    graph = speculate(outer, {"a": right}).compile()
    plain = plain_outer.compile()
    for xray in (False, True):
        assert graph.get_graph(xray=xray).draw_mermaid() == plain.get_graph(xray=xray).draw_mermaid()
        assert graph.get_graph(xray=xray).to_json() == plain.get_graph(xray=xray).to_json()
    assert asyncio.run(graph.aget_graph()).to_json() == plain.get_graph().to_json()
    assert graph.with_config(recursion_limit=9).get_graph().to_json() == plain.get_graph().to_json()


# ------------------------------------------------------------ item 10: root channel


def test_a_root_channel_graph_is_refused_with_the_fix() -> None:
    builder = StateGraph(Annotated[list, operator.add])  # type: ignore[arg-type]
    builder.add_node("a", lambda s: ["a"])
    builder.add_edge(START, "a")
    with pytest.raises(ValueError, match=r"single root value.*\['a'\].*TypedDict with one key"):
        speculate(builder, {"a": lambda s: [["a"]]}).compile()
    assert speculate(builder).compile().invoke(["x"]) == ["x", "a"]  # nothing guessed: it runs


# ------------------------------------------------------------ v2 streams and spies (LangGraph's
# test_stream_events_v3.py and test_stream_events_v3_kwarg_forwarding.py)


class PState(BaseModel):
    n: int


def _pinc(state: PState) -> dict[str, int]:
    time.sleep(0.03)
    return {"n": state.n + 1}


@pytest.mark.parametrize("saver", [None, "memory"])
def test_version_v2_gives_the_state_type_back(saver: str | None) -> None:
    builder = _chain(_pinc, PState, names=("a", "b"))
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    plain = builder.compile(checkpointer=InMemorySaver() if saver else None)
    graph = speculate(builder, {"a": lambda s: [{"n": s.n + 1}]}).compile(
        checkpointer=InMemorySaver() if saver else None
    )
    for g in (plain, graph, graph.with_config(recursion_limit=50)):
        out = g.invoke({"n": 0}, config, version="v2")
        assert isinstance(out.value, PState) and out.value.n == 2
        values = [p["data"] for p in g.stream({"n": 0}, config, stream_mode="values", version="v2")]
        assert values and all(isinstance(v, PState) for v in values)


async def test_a_stream_patched_onto_the_graph_is_called_once_per_run() -> None:
    # No guesses: a branch's graph is a copy of the run's and would call the spy too (known, in
    # scripts/upstream/known_being_fixed.toml: the copy must not take methods patched onto it).
    graph = speculate(_chain(inc), {"a": lambda s: []}).compile(checkpointer=InMemorySaver())
    calls: list[dict[str, Any]] = []
    original = graph.astream

    async def spy(input: Any, config: Any = None, **kwargs: Any) -> Any:
        calls.append(kwargs)
        async for chunk in original(input, config, **kwargs):
            yield chunk

    graph.astream = spy  # type: ignore[method-assign]
    assert await graph.ainvoke({"n": 0}, {"configurable": {"thread_id": "t"}}) == {"n": 3}
    assert len(calls) == 1 and graph.last_report.node("a").calls == 1


def test_a_method_patched_onto_the_graph_is_not_what_its_copies_run() -> None:
    """A spy patched onto the user's graph object (`graph.astream = spy`) is the user's: the run's
    copy and every branch's copy run the class's methods (LangGraph's own test suite patches so)."""
    import asyncio
    import time
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    from langgraph_speculative import speculate

    class S(TypedDict):
        n: int

    def step(s: S) -> dict:
        time.sleep(0.03)
        return {"n": s["n"] + 1}

    b = StateGraph(S)
    b.add_node("a", step)
    b.add_node("b", step)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    graph = speculate(b, {"a": lambda s: [{"n": s["n"] + 1}]}).compile(checkpointer=InMemorySaver())
    calls: list[str] = []
    original = graph.astream

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("spy")
        return original(*args, **kwargs)

    graph.astream = spy  # type: ignore[method-assign]
    out = asyncio.run(graph.ainvoke({"n": 0}, {"configurable": {"thread_id": "t"}}))
    assert out == {"n": 2}
    assert calls == ["spy"]  # the user's call, once: no branch ran the user's patched method
    report = graph.last_report
    assert report is not None and report.node("b").adopted == 1


# ---------------------------------------------------------------- item 11: the run is freed at once


def _pregel_loops(
    kinds: tuple[str, ...] = ("SyncPregelLoop", "AsyncPregelLoop", "PregelRunner"),
    *,
    besides: weakref.WeakSet[Any] | None = None,
) -> list[Any]:
    """LangGraph's run loops and runners alive now (by class name: they are not public), other
    than those in `besides` (alive before the check began: another test's business)."""
    import gc

    alive = [o for o in gc.get_objects() if type(o).__name__ in kinds]
    return [o for o in alive if besides is None or o not in besides]


def _held_by(objs: list[Any]) -> list[str]:
    """What keeps each of `objs` alive (the types of its referrers), for a failing assertion."""
    import gc

    return [f"{type(o).__name__} <- {sorted({type(r).__name__ for r in gc.get_referrers(o)})}" for o in objs]


def _slow_speculator(guess: dict[str, Any] | None) -> Any:
    """A speculator still running on the process pool when the run ends (sync code is not waited for)."""

    def speculator(state: S) -> list[dict[str, Any]]:
        time.sleep(0.2)
        return [guess] if guess is not None else []

    return speculator


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "speculator",
    [
        pytest.param(lambda s: [], id="none"),
        pytest.param(lambda s: [{"n": -1}], id="wrong"),
        pytest.param(lambda s: [{"n": s["n"] + 1}], id="right"),
        pytest.param(_slow_speculator({"n": 1}), id="outlives-the-run"),
    ],
)
def test_the_run_is_freed_when_it_returns(mode: str, speculator: Any) -> None:
    """LangGraph's `test_pregel_loop_refcount`: with the garbage collector off, no run loop may
    outlive its run (plain frees it by reference counting alone). A finished task's context and
    traceback, the process loop's own handles, and a speculator still running on the pool must
    not keep the run's config (which holds its loop) alive."""
    import gc

    graph = speculate(_chain(inc, names=("a", "b")), {"a": speculator, "b": speculator}).compile()
    graph.invoke({"n": 0})  # the process loop and pool exist before the check starts
    settle_background_calls()
    gc.collect()
    before = weakref.WeakSet(_pregel_loops())
    gc.disable()
    try:
        for _ in range(3):
            if mode == "sync":
                out = graph.invoke({"n": 0})
            else:
                out = asyncio.run(graph.ainvoke({"n": 0}))
            assert out == {"n": 2}
            if mode == "sync":  # the main run's loop, at once (branches run on asyncio loops)
                left = _pregel_loops(("SyncPregelLoop",), besides=before)
                assert left == [], _held_by(left)
            # a branch's sync node still running on the pool holds its branch until it returns
            # (sync code cannot be interrupted); then nothing may be left, cycles included
            settle_background_calls()
            left = _pregel_loops(besides=before)
            assert left == [], _held_by(left)
    finally:
        gc.enable()


# ------------------------------------------- item 12: a subgraph that keeps its own state


def test_a_branch_never_runs_a_subgraph_that_keeps_its_own_state() -> None:
    """`compile(checkpointer=True)`: the subgraph's state lives in the user's thread from call to
    call; a branch, forked from the parent's checkpoint alone, would run it on an empty history
    (LangGraph's `test_subgraph_called_in_loop_loads_state_on_replay`). Every call the subgraph's
    node sees, replays included, is one the plain graph sees."""

    class Sub(TypedDict):
        trail: Annotated[list[str], operator.add]

    class Parent(TypedDict):
        counter: int

    def build(seen: list[list[str]]) -> StateGraph:  # type: ignore[type-arg]
        def step(state: Sub) -> dict[str, list[str]]:
            seen.append(list(state["trail"]))
            return {"trail": ["s"]}

        sub = StateGraph(Sub)
        sub.add_node("step", step)
        sub.add_edge(START, "step")

        def inc(state: Parent) -> dict[str, int]:
            time.sleep(0.03)
            return {"counter": state["counter"] + 1}

        b = StateGraph(Parent)
        b.add_node("inc", inc)
        # a speculative subgraph (its nodes launch early when a branch runs it) that keeps its state
        b.add_node("sub", speculate(sub, {"step": lambda s: []}).compile(checkpointer=True))
        b.add_edge(START, "inc")
        b.add_edge("inc", "sub")
        b.add_conditional_edges("sub", lambda s: "inc" if s["counter"] < 2 else END, ["inc", END])
        return b

    runs = {}
    for speculative in (False, True):
        seen: list[list[str]] = []
        builder = build(seen)
        right = lambda s: [{"counter": s["counter"] + 1}]  # noqa: E731
        graph = (
            speculate(builder, {"inc": right}).compile(checkpointer=InMemorySaver())
            if speculative
            else builder.compile(checkpointer=InMemorySaver())
        )
        cfg: Any = {"configurable": {"thread_id": "t"}}
        graph.invoke({"counter": 0}, cfg)
        graph.invoke({"counter": 0}, cfg)
        start = [s for s in graph.get_state_history(cfg) if s.next == ("inc",) and s.values["counter"] == 0]
        graph.invoke(None, start[0].config)  # a replay from the second turn's start
        runs[speculative] = (seen, graph.get_state(cfg).values)
    assert runs[True] == runs[False]
    assert runs[False][0][-2:] == [["s", "s"], ["s", "s", "s"]]  # the replay loaded its history


def test_a_cached_call_streams_as_cached() -> None:
    """A node with a `CachePolicy`: a call the cache holds is read from it and its update is
    marked `{"__metadata__": {"cached": True}}` in the `updates` stream, never adopted from a
    branch instead (LangGraph's `test_in_one_fan_out_state_graph_waiting_edge_multiple`)."""
    from langgraph.cache.memory import InMemoryCache
    from langgraph.types import CachePolicy

    calls: list[int] = []

    def cached(state: S) -> dict[str, int]:
        calls.append(state["n"])
        time.sleep(0.03)
        return {"n": state["n"] + 1}

    def build() -> StateGraph:  # type: ignore[type-arg]
        b = StateGraph(S)
        b.add_node("a", inc)
        b.add_node("b", cached, cache_policy=CachePolicy())
        b.add_node("c", inc)
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "c")
        b.add_edge("c", END)
        return b

    right = lambda s: [{"n": s["n"] + 1}]  # noqa: E731
    streams = {}
    for speculative in (False, True):
        calls.clear()
        graph = (
            speculate(build(), {"a": right, "b": right}).compile(cache=InMemoryCache())
            if speculative
            else build().compile(cache=InMemoryCache())
        )
        graph.invoke({"n": 0})  # fills the cache
        streams[speculative] = [*graph.stream({"n": 0}, stream_mode="updates")], list(calls)
    assert streams[True] == streams[False]
    assert {"b": {"n": 2}, "__metadata__": {"cached": True}} in streams[False][0]


# ------------------------------------------- item 9: a node that changes its input in place


class Items(TypedDict):
    n: int
    items: list[str]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_node_that_changes_its_input_in_place_commits_as_plain(mode: str) -> None:
    """`b` appends to the list it is given and returns only `n`: plain LangGraph keeps the
    append in the channel's value. An early call of `b` made that change to a branch's copy, so
    it is not adopted (the main run calls `b` itself), with one warning naming `b`."""

    def a(state: Items) -> dict[str, int]:
        time.sleep(0.05)
        return {"n": state["n"] + 1}

    def b(state: Items) -> dict[str, int]:
        state["items"].append(f"b saw {state['n']}")  # in place
        return {"n": state["n"] + 1}

    def c(state: Items) -> dict[str, Any]:
        return {"items": [*state["items"], "c"]}

    def build() -> StateGraph:  # type: ignore[type-arg]
        g = StateGraph(Items)
        g.add_node("a", a)
        g.add_node("b", b)
        g.add_node("c", c)
        g.add_edge(START, "a")
        g.add_edge("a", "b")
        g.add_edge("b", "c")
        g.add_edge("c", END)
        return g

    def run(graph: Any, cfg: Any) -> Any:
        if mode == "sync":
            return graph.invoke({"n": 0, "items": []}, cfg)
        return asyncio.run(graph.ainvoke({"n": 0, "items": []}, cfg))

    cfg: Any = {"configurable": {"thread_id": "t"}}
    plain_graph = build().compile(checkpointer=InMemorySaver())
    want = run(plain_graph, cfg)
    spec = speculate(build(), {"a": lambda s: [{"n": s["n"] + 1}]}).compile(checkpointer=InMemorySaver())
    with pytest.warns(UserWarning, match="node 'b' changed its input state in place"):
        got = run(spec, cfg)
    assert got == want == {"n": 2, "items": ["b saw 1", "c"]}
    report = spec.last_report
    assert report is not None
    assert [e for e in report.events if e["event"] == "input_changed"]
    assert report.nodes["b"].adopted == 0
