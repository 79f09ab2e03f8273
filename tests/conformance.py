"""The conformance harness: run one LangGraph app plain and speculative, compare what was committed.

A `Case` builds a plain `StateGraph` whose nodes report to a `Probe` (side effects, latches); the
harness runs its turns on the plain graph and on `speculate(...)` of the same builder, with a
right or a wrong speculator, sync or async, on one kind of checkpointer, and compares:

- each turn's return value or exception (type and message),
- every stream mode's payloads (ids and timestamps normalized; speculation events filtered out of
  `custom`), each `json.dumps`-able exactly when the plain one is,
- the main thread's full history: values, next, metadata, tasks (name, path, error, interrupts,
  result), interrupts,
- side-effect counters,
- for right guesses, that something was adopted (the case says whether it must be).

Latches instead of races: a slow node of a case may wait (on the speculative run only) until the
node after it has started, which on a speculative run happens on a branch. A right guess is then
adopted however loaded the machine is; a broken speculation shows as a missing adoption, not as
a slow test (the wait is bounded).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.types import Interrupt

from langgraph_speculative import speculate

STREAM_MODES = ["values", "updates", "custom", "checkpoints", "tasks", "debug", "messages"]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
_VOLATILE = {"id", "checkpoint_id", "task_id", "run_id", "timestamp", "created_at", "ts", "thread_ts"}


class Probe:
    """What a case's nodes report: side effects and starts (latches)."""

    def __init__(self, latch: bool) -> None:
        self.latch = latch
        self.effects: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._started: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def event(self, name: str) -> threading.Event:
        with self._lock:
            return self._started.setdefault(name, threading.Event())

    def effect(self, name: str) -> None:
        with self._lock:
            self.effects[name] += 1

    def start(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
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
            probe.start(name)
            await probe.wait_async(waits, floor)
            if effect:
                probe.effect(name)
            return update(state, *[{"config": config, "runtime": runtime}[p] for p in extra])

        anode.__name__ = name
        return anode

    def node(state, config, runtime):  # type: ignore[no-untyped-def]  # LangGraph injects them
        probe.start(name)
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


def norm(value: Any) -> Any:
    """A comparable, JSON-able form: ids, timestamps and uuids replaced, messages by fields."""
    if isinstance(value, Interrupt):
        return {"interrupt": norm(value.value)}
    if isinstance(value, dict):
        return {str(k): ("<id>" if k in _VOLATILE else norm(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, str):
        return _UUID.sub("<uuid>", value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {_UUID.sub('<uuid>', str(value))}"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"__type__": type(value).__name__, **norm({k: v for k, v in dump().items() if k != "id"})}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **norm(dataclasses.asdict(value))}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return {"__repr__": _UUID.sub("<uuid>", repr(value))}


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumpable(payload: Any) -> bool:
    """Can `json.dumps` (with model and dataclass support) write it?"""
    try:
        json.dumps(payload, default=_default)
        return True
    except (TypeError, ValueError):
        return False


def snapshot(s: Any) -> dict[str, Any]:
    """A state snapshot, normalized."""
    meta = {k: v for k, v in (s.metadata or {}).items() if k not in ("run_id", "thread_id")}
    return {
        "values": norm(s.values),
        "next": list(s.next),
        "metadata": norm(meta),
        "tasks": [
            {
                "name": t.name,
                "path": norm(t.path),
                "error": norm(t.error),
                "interrupts": norm(list(t.interrupts)),
                "result": norm(t.result),
            }
            for t in s.tasks
        ],
        "interrupts": norm(list(s.interrupts)),
    }


def _stream_view(chunks: list[Any]) -> dict[str, Any]:
    """Per stream mode: in-order payloads where the order is defined, sorted where it is not."""
    by_mode: dict[str, list[Any]] = {}
    dumps: dict[str, list[bool]] = {}
    for mode, payload in chunks:
        if mode == "custom" and isinstance(payload, dict) and payload.get("type") == "speculation":
            continue
        by_mode.setdefault(mode, []).append(norm(payload))
        dumps.setdefault(mode, []).append(dumpable(payload))
    view: dict[str, Any] = {}
    for mode, items in by_mode.items():
        ordered = mode in ("values", "checkpoints")
        view[mode] = items if ordered else sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        view[f"{mode}:dumpable"] = sorted(dumps[mode])
    return view


@dataclass
class Outcome:
    """What one run of a case committed."""

    turns: list[Any] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)
    turn_effects: list[dict[str, int]] = field(default_factory=list)  # after each turn
    stored: Any = None  # the store's items and the cache's size at the end
    adopted: int = 0
    events: list[str] = field(default_factory=list)


def _result(call: Callable[[], Any]) -> Any:
    try:
        return {"ok": norm(call())}
    except Exception as exc:  # the same exception must come out of both runs
        return {"raised": norm(exc)}


async def _aresult(call: Callable[[], Any]) -> Any:
    try:
        return {"ok": norm(await call())}
    except Exception as exc:
        return {"raised": norm(exc)}


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
        kwargs["store"] = case.store()
    if case.cache is not None:
        kwargs["cache"] = case.cache()
    return builder.compile(checkpointer=None if case.no_checkpointer else saver, **kwargs)


def run_sync(case: Case, saver: Any, thread: str, speculative: bool, right: bool) -> Outcome:
    probe = Probe(latch=speculative)
    graph = build_graph(case, probe, False, speculative, right, saver)
    out = Outcome()
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
                for chunk in graph.stream(t.input, c, stream_mode=STREAM_MODES, **t.kwargs):
                    into.append(chunk)
                return None

            out.turns.append(_result(consume))
            out.streams.append(_stream_view(chunks))
        else:
            out.turns.append(_result(functools.partial(graph.invoke, turn.input, tcfg, **turn.kwargs)))
        out.turn_effects.append(dict(probe.effects))
        if speculative and graph.last_report is not None:
            out.adopted += graph.last_report.adopted
            out.events += [e["event"] for e in graph.last_report.events]
    if not case.no_checkpointer:
        out.history = [snapshot(s) for s in graph.get_state_history(cfg)]
    out.effects = dict(probe.effects)
    out.stored = _stored(graph)
    return out


async def run_async(case: Case, saver: Any, thread: str, speculative: bool, right: bool) -> Outcome:
    probe = Probe(latch=speculative)
    graph = build_graph(case, probe, True, speculative, right, saver)
    out = Outcome()
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
                async for chunk in graph.astream(t.input, c, stream_mode=STREAM_MODES, **t.kwargs):
                    into.append(chunk)
                return None

            out.turns.append(await _aresult(consume))
            out.streams.append(_stream_view(chunks))
        else:
            out.turns.append(
                await _aresult(functools.partial(graph.ainvoke, turn.input, tcfg, **turn.kwargs))
            )
        out.turn_effects.append(dict(probe.effects))
        if speculative and graph.last_report is not None:
            out.adopted += graph.last_report.adopted
            out.events += [e["event"] for e in graph.last_report.events]
    if not case.no_checkpointer:
        out.history = [snapshot(s) async for s in graph.aget_state_history(cfg)]
    out.effects = dict(probe.effects)
    out.stored = _stored(graph)
    return out


def _stored(graph: Any) -> Any:
    """The store's items and the number of cache entries (what a run leaves outside its thread)."""
    out: dict[str, Any] = {}
    if graph.store is not None:
        items = graph.store.search((), limit=1000)
        out["store"] = sorted((tuple(i.namespace), i.key, json.dumps(i.value, sort_keys=True)) for i in items)
    if graph.cache is not None:
        out["cache_entries"] = len(getattr(graph.cache, "_cache", {}))
    return out


def compare(case: Case, plain: Outcome, spec: Outcome, right: bool) -> None:
    """Assert the speculative run committed what the plain one did (and adopted, if it must)."""
    assert spec.turns == plain.turns, f"{case.name}: returned values differ"
    assert spec.streams == plain.streams, f"{case.name}: stream payloads differ"
    assert spec.history == plain.history, f"{case.name}: the main thread's history differs"
    assert spec.turn_effects == plain.turn_effects, f"{case.name}: side effects differ"
    assert spec.stored == plain.stored, f"{case.name}: the store or the cache differ"
    errors = [e for e in spec.events if e in ("branch_error", "internal_error")]
    assert not errors, f"{case.name}: {errors}"
    if right and case.adopts:
        assert spec.adopted >= 1, f"{case.name}: a right guess was never adopted ({spec.events})"


def thread_id() -> str:
    return uuid.uuid4().hex
