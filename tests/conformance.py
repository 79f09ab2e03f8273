"""The conformance harness: run one LangGraph app plain and speculative, compare what was committed.

A `Case` builds a plain `StateGraph` whose nodes report to a `Probe` (side effects, latches); the
harness runs its turns on the plain graph and on `speculate(...)` of the same builder, with a
right or a wrong speculator, sync or async, on one kind of checkpointer, and compares:

everything the differential oracle (`tests/oracle.py`) compares: each turn's return value or
exception, every stream mode's chunks in superstep order, the main thread's full history (ids
alpha-renamed, not erased), the store's contents and operations, every node call with its input,
side effects (counted after each turn, and logged with their superstep) and the cache; and, for
right guesses, that something was adopted (the case says whether it must be).

Latches instead of races: a slow node of a case may wait (on the speculative run only) until the
node after it has started, which on a speculative run happens on a branch. A right guess is then
adopted however loaded the machine is; a broken speculation shows as a missing adoption, not as
a slow test (the wait is bounded).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.memory import InMemoryStore

from langgraph_speculative import speculate

from . import oracle

STREAM_MODES = oracle.STREAM_MODES


class Probe:
    """What a case's nodes report: side effects and starts (latches)."""

    def __init__(self, latch: bool) -> None:
        self.latch = latch
        self.effects: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._started: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.recorder = oracle.Recorder()

    def event(self, name: str) -> threading.Event:
        with self._lock:
            return self._started.setdefault(name, threading.Event())

    def effect(self, name: str) -> None:
        with self._lock:
            self.effects[name] += 1
        self.recorder.effect(name)

    def start(self, name: str, reads: Any = None) -> None:
        with self._lock:
            self.calls[name] += 1
        self.recorder.call(name, reads)
        self.event(name).set()

    def wait_sync(self, name: str | None, floor: float) -> None:
        if self.latch and name is not None:
            self.event(name).wait(5.0)
        time.sleep(floor)

    async def wait_async(self, name: str | None, floor: float) -> None:
        if self.latch and name is not None:
            deadline = time.monotonic() + 5.0
            while not self.event(name).is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        await asyncio.sleep(floor)


def slow(
    probe: Probe,
    name: str,
    update: Callable[..., Any],
    *,
    asynchronous: bool,
    waits: str | None = None,
    floor: float = 0.01,
    effect: bool = False,
) -> Any:
    """A node that starts (latch), waits for `waits` to start (speculative runs), returns `update`.

    `update(state)` or `update(state, config)`/`update(state, runtime)` when it asks for them.
    """
    import inspect

    params = list(inspect.signature(update).parameters)
    extra = params[1:]

    if asynchronous:

        async def anode(state, config, runtime):  # type: ignore[no-untyped-def]  # LangGraph injects them
            probe.start(name, state)
            await probe.wait_async(waits, floor)
            if effect:
                probe.effect(name)
            return update(state, *[{"config": config, "runtime": runtime}[p] for p in extra])

        anode.__name__ = name
        return anode

    def node(state, config, runtime):  # type: ignore[no-untyped-def]  # LangGraph injects them
        probe.start(name, state)
        probe.wait_sync(waits, floor)
        if effect:
            probe.effect(name)
        return update(state, *[{"config": config, "runtime": runtime}[p] for p in extra])

    node.__name__ = name
    return node


@dataclass
class Turn:
    """One call of the graph: input, run-time keyword arguments, extra configurable values."""

    input: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    configurable: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # recursion_limit, tags, metadata
    stream: bool = False  # stream every mode and compare the payloads too
    fork: bool = False  # time travel: run from the second-oldest checkpoint after update_state


@dataclass
class Case:
    """A LangGraph app to check plain vs speculative."""

    name: str
    build: Callable[[Probe, bool], Any]  # (probe, asynchronous) -> StateGraph
    speculators: Callable[[bool], dict[str, Any]]  # right -> {node: speculator}
    turns: list[Turn]
    adopts: bool = True  # a right guess must be adopted at least once
    unsafe: tuple[str, ...] = ()
    compile_kwargs: dict[str, Any] = field(default_factory=dict)
    store: Callable[[], Any] | None = None
    cache: Callable[[], Any] | None = None
    keys: dict[str, Any] = field(default_factory=dict)
    matches: dict[str, Any] = field(default_factory=dict)
    no_checkpointer: bool = False


@dataclass
class Outcome:
    """What one run of a case committed and let be seen (see `oracle.Observation`)."""

    obs: oracle.Observation = field(default_factory=oracle.Observation)
    adopted: int = 0
    events: list[str] = field(default_factory=list)


def _result(call: Callable[[], Any]) -> Any:
    try:
        return oracle.result(call())
    except Exception as exc:  # the same exception must come out of both runs
        return oracle.raised(exc)


async def _aresult(call: Callable[[], Any]) -> Any:
    try:
        return oracle.result(await call())
    except Exception as exc:
        return oracle.raised(exc)


def _store(case: Case) -> Any:
    store = case.store() if case.store is not None else None
    if type(store) is InMemoryStore:  # record its operations (same class, same behaviour)
        return oracle.RecordingStore()
    return store


def build_graph(
    case: Case, probe: Probe, asynchronous: bool, speculative: bool, right: bool, saver: Any
) -> Any:
    builder = case.build(probe, asynchronous)
    if speculative:
        builder = speculate(
            builder,
            case.speculators(right),
            unsafe=set(case.unsafe),
            keys=case.keys or None,
            matches=case.matches or None,
        )
    kwargs = dict(case.compile_kwargs)
    if case.store is not None:
        kwargs["store"] = _store(case)
    if case.cache is not None:
        kwargs["cache"] = case.cache()
    return builder.compile(checkpointer=None if case.no_checkpointer else saver, **kwargs)


def _finish(out: Outcome, graph: Any, probe: Probe, turn_effects: list[Any]) -> Outcome:
    out.obs.fill(probe.recorder, graph.store)
    out.obs.extra["effects_after_each_turn"] = turn_effects
    if graph.cache is not None:
        out.obs.extra["cache_entries"] = len(getattr(graph.cache, "_cache", {}))
    return out


def run_sync(case: Case, saver: Any, thread: str, speculative: bool, right: bool) -> Outcome:
    probe = Probe(latch=speculative)
    graph = build_graph(case, probe, False, speculative, right, saver)
    out = Outcome()
    turn_effects: list[Any] = []
    cfg: Any = {"configurable": {"thread_id": thread}}
    for turn in case.turns:
        tcfg: Any = {**turn.config, "configurable": {**cfg["configurable"], **turn.configurable}}
        if case.no_checkpointer:
            tcfg = {**turn.config, "configurable": dict(turn.configurable)}
        if turn.fork:
            history = list(graph.get_state_history(cfg))
            tcfg = graph.update_state(history[-2].config, None)
        if turn.stream:
            chunks: list[Any] = []

            def consume(t: Turn = turn, c: Any = tcfg, into: list[Any] = chunks) -> Any:
                for chunk in graph.stream(t.input, c, stream_mode=oracle.STREAM_MODES, **t.kwargs):
                    into.append(chunk)
                return None

            out.obs.turns.append(_result(consume))
            out.obs.streams.append(oracle.stream_view(chunks))
        else:
            out.obs.turns.append(_result(functools.partial(graph.invoke, turn.input, tcfg, **turn.kwargs)))
        turn_effects.append(dict(probe.effects))
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report)
            out.adopted += graph.last_report.adopted
            out.events += [e["event"] for e in graph.last_report.events]
    if not case.no_checkpointer:
        out.obs.history = oracle.history(graph.get_state_history(cfg))
    return _finish(out, graph, probe, turn_effects)


async def run_async(case: Case, saver: Any, thread: str, speculative: bool, right: bool) -> Outcome:
    probe = Probe(latch=speculative)
    graph = build_graph(case, probe, True, speculative, right, saver)
    out = Outcome()
    turn_effects: list[Any] = []
    cfg: Any = {"configurable": {"thread_id": thread}}
    for turn in case.turns:
        tcfg: Any = {**turn.config, "configurable": {**cfg["configurable"], **turn.configurable}}
        if case.no_checkpointer:
            tcfg = {**turn.config, "configurable": dict(turn.configurable)}
        if turn.fork:
            history = [s async for s in graph.aget_state_history(cfg)]
            tcfg = await graph.aupdate_state(history[-2].config, None)
        if turn.stream:
            chunks: list[Any] = []

            async def consume(t: Turn = turn, c: Any = tcfg, into: list[Any] = chunks) -> Any:
                async for chunk in graph.astream(t.input, c, stream_mode=oracle.STREAM_MODES, **t.kwargs):
                    into.append(chunk)
                return None

            out.obs.turns.append(await _aresult(consume))
            out.obs.streams.append(oracle.stream_view(chunks))
        else:
            out.obs.turns.append(
                await _aresult(functools.partial(graph.ainvoke, turn.input, tcfg, **turn.kwargs))
            )
        turn_effects.append(dict(probe.effects))
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report)
            out.adopted += graph.last_report.adopted
            out.events += [e["event"] for e in graph.last_report.events]
    if not case.no_checkpointer:
        out.obs.history = oracle.history([s async for s in graph.aget_state_history(cfg)])
    return _finish(out, graph, probe, turn_effects)


def compare(case: Case, plain: Outcome, spec: Outcome, right: bool) -> None:
    """Assert the speculative run committed and showed what the plain one did (the oracle's
    readable diff when not), and adopted, if it must."""
    oracle.assert_same(plain.obs, spec.obs, case.name)
    errors = [e for e in spec.events if e in ("branch_error", "internal_error")]
    assert not errors, f"{case.name}: {errors}"
    if right and case.adopts:
        assert spec.adopted >= 1, f"{case.name}: a right guess was never adopted ({spec.events})"


def thread_id() -> str:
    return uuid.uuid4().hex
