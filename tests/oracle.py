"""The differential oracle: run an app plain and speculative, compare everything observable.

One oracle for the property tests (`test_lossless.py`, `test_oracle_properties.py`) and the
conformance suite (`conformance.py`). What it compares, and how:

- **Returned values and exceptions** of every turn (exception type and message), exactly.
- **The main thread's full history** (`get_state_history`): values, next, tasks (name, path,
  error, interrupts with their values and ids, result, state), interrupts, metadata, and the
  config/parent_config chain. Generated identifiers are *alpha-renamed*, not erased: every
  uuid-like or 32-hex token gets a name by order of first appearance (`<id0>`, `<id1>`, ...),
  so two runs agree when their ids are linked the same way (the `ToolMessage` that answers the
  second tool call of the third message) even though the ids themselves are random. Ids that an
  app chose (`"u-1"`, `"call_7"`) are compared as they are. Only timestamps are erased
  (`created_at`, `ts`, `timestamp`): they differ between any two runs.
- **Every stream mode's chunks** (`values`, `updates`, `messages` with their metadata and tags,
  `custom`, `tasks`, `checkpoints`, `debug`), in order across supersteps: a `checkpoints` chunk
  closes a segment, chunks inside a segment are compared as a multiset (parallel tasks of one
  superstep have no defined order, in plain runs either), segments in order. Ids are erased in
  streams (`<id>`): a segment's order is not defined, so alpha-renaming would not be either.
  The library's own `speculation` custom events are dropped (the user did not ask for them).
  Whether each payload is `json.dumps`-able must agree as well.
- **The store**: its final contents (every namespace), the sequence of writes (puts and deletes)
  made on the main run (ordered by superstep, a multiset inside one), and that no branch wrote
  to the user's store at all. Reads: every read the speculative *main* run made (namespace, key,
  what it returned), the plain run made too. (Not the converse: an early call's read of its own
  pending write is answered by the branch's store and never reaches the user's; a stale read
  that got adopted shows in the values the reader returned.)
- **Node calls** (`Recorder.call`, which an app's nodes call with what they read): every call
  the plain run made was made by the speculative run with the same arguments at the same
  superstep (on the main run, or early on a branch), and every call the speculative *main* run
  made, plain made too. Branches may make extra calls (wrong guesses): that is the point.
- **Side effects** (`Recorder.effect`): the same list (by superstep), and none on a branch.

Left out, and why: `run_id` (LangGraph gives every invocation a fresh one in both runs; it
carries no committed information); timestamps (above); the task id inside a checkpoint namespace
as a node sees it (`node:<task id>` becomes `node:<task>`): an early call ran in a branch's
task, whose id cannot be the main run's (task ids derive from checkpoint ids, and the main run's
checkpoint did not exist when the call started). The task ids of the history's own tasks are
compared (alpha-renamed). Message ids inside a history task's `result` (the task's writes as
saved): `add_messages` assigns a missing id *in place*, on the very object the node returned,
while the checkpointer saves the task's writes on another thread, so a plain run alone records
the id or `None` depending on which came first (15 plain runs of one graph: 8 and 7). The ids
in the committed values, where they matter, are compared. Everything else, including
`thread_id`, `source`, `step`, `parents` (alpha-renamed) and user metadata, must agree.

`diff(plain, spec)` lists *what* differs, path by path (`history[3].values.log[2]: plain
'n1:5' != spec 'wrong1'`); `assert_same` raises with that list.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import GetOp, ListNamespacesOp, Op, PutOp, Result, SearchOp
from langgraph.store.memory import InMemoryStore
from langgraph.types import Interrupt

from langgraph_speculative import speculation_info

__all__ = (
    "EVENT_FIELDS",
    "STREAM_MODES",
    "Observation",
    "Recorder",
    "RecordingStore",
    "Renamer",
    "agent_report_problems",
    "assert_report_sound",
    "assert_same",
    "canon",
    "diff",
    "report_problems",
    "snapshot",
    "stream_view",
)

STREAM_MODES = ["values", "updates", "custom", "checkpoints", "tasks", "debug", "messages"]
_TOKEN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
# a task id as a node sees it, in its checkpoint namespace (`node:<task id>`, nested with `|`)
_NS_TASK = re.compile(r"([A-Za-z_][\w.-]*):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMES = {"created_at", "ts", "timestamp", "thread_ts", "updated_at"}
_DROPPED = {"run_id"}  # fresh per invocation in both runs (see the module doc)


class Renamer:
    """Generated ids to stable names: by order of first appearance, or all to `<id>` (blind)."""

    def __init__(self, blind: bool = False) -> None:
        self.blind = blind
        self.names: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        text = _NS_TASK.sub(r"\1:<task>", text)
        if self.blind:
            return _TOKEN.sub("<id>", text)
        return _TOKEN.sub(lambda m: self.names.setdefault(m.group(0), f"<id{len(self.names)}>"), text)


def canon(value: Any, rename: Renamer | None = None) -> Any:
    """A comparable, JSON-able form of `value`: every field kept, generated ids renamed."""
    rn = rename or Renamer(blind=True)
    return _canon(value, rn, 0)


def _canon(value: Any, rn: Renamer, depth: int) -> Any:
    if depth > 40:
        return "<deep>"
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return rn(value)
    if isinstance(value, Interrupt):
        return {"__interrupt__": _canon(value.value, rn, depth + 1), "id": rn(str(value.id))}
    if isinstance(value, BaseException):
        return {"__raised__": type(value).__name__, "message": rn(str(value))}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = rn(str(k))
            if k in _DROPPED:
                continue
            out[key] = "<time>" if k in _TIMES and v is not None else _canon(v, rn, depth + 1)
        return out
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # NamedTuple: StateSnapshot, PregelTask
        return {"__type__": type(value).__name__, **_canon(value._asdict(), rn, depth + 1)}
    if isinstance(value, (list, tuple)):
        return [_canon(v, rn, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canon(v, rn, depth + 1) for v in value), key=_json)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"__type__": type(value).__name__, **_canon(dump(), rn, depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **_canon(fields, rn, depth + 1)}
    return {"__repr__": rn(repr(value))}


def _json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=repr)


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


def snapshot(s: Any, rn: Renamer) -> dict[str, Any]:
    """One checkpoint of the main thread, every field (ids renamed with `rn`, times erased)."""
    return {
        "values": canon(s.values, rn),
        "next": list(s.next),
        "metadata": canon(dict(s.metadata or {}), rn),
        "config": canon(s.config, rn),
        "parent_config": canon(s.parent_config, rn),
        "tasks": [
            {
                "id": rn(t.id),
                "name": t.name,
                "path": canon(t.path, rn),
                "error": canon(t.error, rn),
                "interrupts": canon(list(t.interrupts), rn),
                "state": canon(t.state, rn),
                "result": _racy_message_ids(canon(t.result, rn)),
            }
            for t in s.tasks
        ],
        "interrupts": canon(list(s.interrupts), rn),
    }


def _racy_message_ids(value: Any) -> Any:
    """A task's recorded writes with message ids erased (see the module doc)."""
    if isinstance(value, list):
        return [_racy_message_ids(v) for v in value]
    if isinstance(value, dict):
        out = {k: _racy_message_ids(v) for k, v in value.items()}
        if str(out.get("__type__", "")).endswith(("Message", "MessageChunk")) and "id" in out:
            out["id"] = "<racy>"
        return out
    return value


def history(snapshots: Iterable[Any]) -> list[dict[str, Any]]:
    """The main thread's history, newest first, one `Renamer` over all of it."""
    rn = Renamer()
    return [snapshot(s, rn) for s in snapshots]


def stream_view(chunks: list[tuple[str, Any]]) -> list[Any]:
    """A stream's chunks as comparable segments (see the module doc)."""
    segments: list[list[Any]] = [[]]
    for mode, payload in chunks:
        if mode == "custom" and isinstance(payload, dict) and payload.get("type") == "speculation":
            continue
        segments[-1].append({"mode": mode, "dumpable": dumpable(payload), "payload": canon(payload)})
        if mode == "checkpoints":
            segments.append([])
    return [sorted(seg, key=_json) for seg in segments if seg]


def _step() -> Any:
    try:
        from langgraph.config import get_config

        meta = get_config().get("metadata") or {}
    except RuntimeError:  # outside a runnable context
        return None
    return meta.get("langgraph_step")


_SPECULATING: ContextVar[bool] = ContextVar("oracle_speculating", default=False)


@contextmanager
def speculating() -> Iterator[None]:
    """Mark what a test's speculator does (its store reads, say) as speculation: a speculator
    runs beside the main run's call, and the plain run has none."""
    token = _SPECULATING.set(True)
    try:
        yield
    finally:
        _SPECULATING.reset(token)


def _on_branch() -> bool:
    return speculation_info() is not None or _SPECULATING.get()


class Recorder:
    """What an app's own code reports: node calls (with what the node read) and side effects.

    Thread-safe; nodes call `call(name, reads)` when they start and `effect(name, payload)`
    for anything that leaves the process (an email, a payment). Each record notes the
    superstep (`langgraph_step`) and whether it ran on a branch."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.effects: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def call(self, node: str, reads: Any) -> None:
        rec = {"step": _step(), "node": node, "reads": canon(reads), "branch": _on_branch()}
        with self._lock:
            self.calls.append(rec)

    def effect(self, name: str, payload: Any = None) -> None:
        rec = {"step": _step(), "effect": name, "payload": canon(payload), "branch": _on_branch()}
        with self._lock:
            self.effects.append(rec)


class RecordingStore(InMemoryStore):
    """An `InMemoryStore` that logs every operation, its answer, its superstep and whether a
    branch made it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ops: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()

    def _log(self, ops: list[Op], results: list[Result]) -> None:
        step, branch = _step(), _on_branch()
        recs = []
        for op, res in zip(ops, results):
            if isinstance(op, PutOp):
                kind = "delete" if op.value is None else "put"
                rec: dict[str, Any] = {
                    "op": kind,
                    "ns": list(op.namespace),
                    "key": op.key,
                    "value": canon(op.value),
                }
            elif isinstance(op, GetOp):
                rec = {"op": "get", "ns": list(op.namespace), "key": op.key, "value": _item(res)}
            elif isinstance(op, SearchOp):
                items = sorted((_item(i) for i in (res or [])), key=_json)  # type: ignore[union-attr]
                rec = {
                    "op": "search",
                    "ns": list(op.namespace_prefix),
                    "filter": canon(op.filter),
                    "value": items,
                }
            elif isinstance(op, ListNamespacesOp):
                rec = {"op": "list_namespaces", "value": canon(res)}
            else:  # pragma: no cover - a new op type
                rec = {"op": type(op).__name__, "value": canon(res)}
            recs.append({**rec, "step": step, "branch": branch})
        with self._log_lock:
            self.ops.extend(recs)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results = super().batch(ops)
        self._log(ops, results)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results = await super().abatch(ops)
        self._log(ops, results)
        return results

    def contents(self) -> list[Any]:
        """Every item in every namespace (read without logging)."""
        items = super().batch([SearchOp((), limit=100_000)])[0]
        return sorted(([list(i.namespace), i.key, canon(i.value)] for i in items), key=_json)  # type: ignore[union-attr]


def _item(res: Any) -> Any:
    if res is None:
        return None
    return {"ns": list(res.namespace), "key": res.key, "value": canon(res.value)}


@dataclass
class Observation:
    """Everything one run (all its turns) let the outside world see."""

    turns: list[Any] = field(default_factory=list)  # per turn {"ok": value} or {"raised": ...}
    streams: list[Any] = field(default_factory=list)  # per streamed turn, `stream_view`
    history: list[Any] = field(default_factory=list)
    store: list[Any] | None = None  # final contents
    store_ops: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else compared exactly

    def fill(self, recorder: Recorder | None, store: Any) -> None:
        """Take the recorder's and the store's logs."""
        if recorder is not None:
            self.calls, self.effects = list(recorder.calls), list(recorder.effects)
        if isinstance(store, RecordingStore):
            self.store_ops, self.store = list(store.ops), store.contents()


def result(value: Any) -> dict[str, Any]:
    """A turn's returned value, comparable; generated ids alpha-renamed within it."""
    return {"ok": canon(value, Renamer())}


def raised(exc: BaseException) -> dict[str, Any]:
    """A turn's exception, comparable (type and message)."""
    return {"raised": canon(exc, Renamer())}


# ------------------------------------------------------------------ comparing


def _by_step(records: Iterable[dict[str, Any]]) -> list[Any]:
    """Records grouped by superstep, a sorted multiset inside each (parallel tasks race)."""
    groups: dict[Any, list[str]] = {}
    order: list[Any] = []
    for r in records:
        s = r.get("step")
        if s not in groups:
            groups[s] = []
            order.append(s)
        groups[s].append(_json({k: v for k, v in r.items() if k not in ("branch",)}))
    return [sorted(groups[s]) for s in order]


def _missing(want: Iterable[str], have: Iterable[str]) -> list[str]:
    """The elements of multiset `want` not covered by multiset `have`."""
    left = Counter(want) - Counter(have)
    return sorted(left.elements())


def diff(plain: Observation, spec: Observation, limit: int = 12) -> list[str]:
    """What differs between a plain and a speculative observation, one line per difference."""
    out: list[str] = []
    _diff(plain.turns, spec.turns, "turns", out)
    _diff(plain.streams, spec.streams, "streams", out)
    _diff(plain.history, spec.history, "history", out)
    _diff(plain.store, spec.store, "store", out)
    _diff(plain.extra, spec.extra, "extra", out)
    # side effects: same by superstep, none on a branch
    _diff(_by_step(plain.effects), _by_step(spec.effects), "effects", out)
    out += [f"effects: made on a branch: {e}" for e in spec.effects if e["branch"]]
    # store writes: the main run's, by superstep; none on a branch
    writes = [o for o in plain.store_ops if o["op"] in ("put", "delete")]
    swrites = [o for o in spec.store_ops if o["op"] in ("put", "delete") and not o["branch"]]
    _diff(_by_step(writes), _by_step(swrites), "store_writes", out)
    out += [
        f"store_ops: a branch wrote to the user's store: {o}"
        for o in spec.store_ops
        if o["branch"] and o["op"] in ("put", "delete")
    ]
    # store reads (no step: an adopted early call read on a branch, earlier)
    reads = {_json(_nostep(o)) for o in plain.store_ops if o["op"] not in ("put", "delete")}
    smain = {
        _json(_nostep(o)) for o in spec.store_ops if o["op"] not in ("put", "delete") and not o["branch"]
    }
    out += [f"store_reads: the speculative main run read {r}, plain never did" for r in sorted(smain - reads)]
    # node calls
    calls = [_json(_nobranch(c)) for c in plain.calls]
    scalls = [_json(_nobranch(c)) for c in spec.calls]
    smcalls = [_json(_nobranch(c)) for c in spec.calls if not c["branch"]]
    out += [f"calls: plain called {c}, the speculative run never did" for c in _missing(calls, scalls)]
    out += [f"calls: the speculative main run called {c}, plain did not" for c in _missing(smcalls, calls)]
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more differences"]
    return out


def _nostep(o: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if k not in ("step", "branch")}


def _nobranch(o: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if k != "branch"}


def _short(x: Any) -> str:
    s = _json(x)
    return s if len(s) <= 160 else s[:157] + "..."


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in b:
                out.append(f"{path}.{k}: only in plain: {_short(a[k])}")
            elif k not in a:
                out.append(f"{path}.{k}: only in speculative: {_short(b[k])}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
        if len(a) != len(b):
            longer, who = (a, "plain") if len(a) > len(b) else (b, "speculative")
            extra = longer[min(len(a), len(b)) :]
            out.append(f"{path}: {who} has {len(extra)} more: {_short(extra)}")
        return
    out.append(f"{path}: plain {_short(a)} != speculative {_short(b)}")


def assert_same(plain: Observation, spec: Observation, what: str = "") -> None:
    """Raise `AssertionError` listing every difference between the two observations."""
    lines = diff(plain, spec)
    if lines:
        head = f"{what}: " if what else ""
        raise AssertionError(head + "plain and speculative runs differ:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------- the speculative run's report

_NUM = (int, float)
# The README's event table ("Speculation events"): the fields each event must carry, and their types.
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "guesses": {"guesses": list, "speculator_s": _NUM, "level": int},
    "branch": {"thread": str, "rank": int, "level": int},
    "launch": {"key": str, "branch": str, "level": int},
    "hit": {"rank": int, "guesses": int},
    "miss": {"guesses": int},
    "adopted": {"key": str, "hidden_s": _NUM, "done": bool},
    "adopted_failed": {"error": str},
    "cancelled": {"thread": str, "reason": str},
    "stale": {"key": str, "reason": str},
    "speculator_error": {"error": str},
    "speculator_timeout": {"timeout_s": _NUM},
    "speculator_late": {},
    "invalid_guess": {"problems": list},
    "match_error": {"error": str},
    "key_error": {"error": str},
    "budget": {"inflight": int},
    "shed": {"inflight": int},
    "make_room": {"key": str, "limit": int},
    "early_call_error": {"key": str, "error": str},
    "prefetch": {"thread": str},
    "branch_error": {"thread": str, "error": str},
    "branch_end": {"thread": str, "reason": str},
    "internal_error": {"error": str},
}


def report_problems(report: Any) -> list[str]:
    """What is wrong with a graph run's `SpeculationReport` against its documented contract: every
    event carries its documented fields with the documented types (no field dropped, none None),
    is JSON-able, none is an `internal_error` (a bug of ours, contained), and the counters agree
    with the events (one `hit` or `miss` event per decided call, one `adopted` event per adoption
    kept). Empty: nothing."""
    out: list[str] = []
    events = list(report.events)
    for i, ev in enumerate(events):
        name = ev.get("event")
        node = ev.get("node")
        if ev.get("type") != "speculation" or not isinstance(name, str) or not isinstance(node, str):
            out.append(f"event {i} lacks type/event/node: {ev!r}")
            continue
        if not isinstance(ev.get("t"), _NUM) or ev["t"] < 0:
            out.append(f"event {i} ({name}) has no time: {ev!r}")
        for fname, kind in EVENT_FIELDS.get(name, {}).items():
            if not isinstance(ev.get(fname), kind) or isinstance(ev.get(fname), bool) is not (kind is bool):
                out.append(f"event {i} ({name}) field {fname!r} is {ev.get(fname)!r}, not {kind}")
        if name in ("branch", "launch", "guesses") and isinstance(ev.get("level"), int) and ev["level"] < 0:
            out.append(f"event {i} ({name}) has a negative level: {ev!r}")
        if name in ("hit", "branch") and isinstance(ev.get("rank"), int) and ev["rank"] < 0:
            out.append(f"event {i} ({name}) has a negative rank: {ev!r}")
        if name == "miss" and ev.get("guesses") == 0:
            out.append(f"event {i} (miss) with no guess: a miss is a call that had guesses")
        problems = ev.get("problems")
        if name == "invalid_guess" and not (problems and all(isinstance(p, str) for p in problems)):
            out.append(f"event {i} (invalid_guess) names no problem: {ev!r}")
        if name == "speculator_timeout" and isinstance(ev.get("timeout_s"), _NUM) and ev["timeout_s"] <= 0:
            out.append(f"event {i} (speculator_timeout) with timeout {ev['timeout_s']!r}")
        if name == "adopted" and isinstance(ev.get("hidden_s"), _NUM) and ev["hidden_s"] < 0:
            out.append(f"event {i} (adopted) hid {ev['hidden_s']!r} s")
        if name == "internal_error":  # a bug of ours, contained: never expected in a test
            out.append(f"event {i} (internal_error): {ev.get('error')!r}")
        try:
            json.dumps(ev)
        except (TypeError, ValueError) as exc:
            out.append(f"event {i} ({name}) is not JSON-able: {exc}")
    if not report.dropped_events:
        kinds = Counter(ev.get("event") for ev in events)
        if kinds["hit"] != report.hits or kinds["miss"] != report.misses:
            out.append(
                f"{kinds['hit']} hit / {kinds['miss']} miss events, "
                f"the counters say {report.hits} / {report.misses}"
            )
        # an adopted call that raised is taken back (`adopted_failed`): the main run made it
        if kinds["adopted"] - kinds["adopted_failed"] != report.adopted:
            out.append(
                f"{kinds['adopted']} adopted events and {kinds['adopted_failed']} taken back, "
                f"the counter says {report.adopted}"
            )
    return out


def assert_report_sound(report: Any, what: str = "") -> None:
    """Raise `AssertionError` listing what `report_problems` finds in `report`."""
    problems = report_problems(report)
    if problems:
        head = f"{what}: " if what else ""
        raise AssertionError(head + "the speculation report breaks its contract:\n  " + "\n  ".join(problems))


def agent_report_problems(report: Any) -> list[str]:
    """What is wrong with a `SpeculativeToolCalls` report: an event without its type, name, node
    or time, a field left None, a value that is not JSON, a negative rank, an adopted call that
    hid more time than had passed, a prefetch cancelled that was never launched."""
    out: list[str] = []
    launched: set[str] = set()
    for i, ev in enumerate(list(report.events)):
        name, node = ev.get("event"), ev.get("node")
        if ev.get("type") != "speculation" or not isinstance(name, str) or not isinstance(node, str):
            out.append(f"event {i} lacks type/event/node: {ev!r}")
            continue
        t = ev.get("t")
        if not isinstance(t, _NUM) or t < 0:
            out.append(f"event {i} ({name}) has no time: {ev!r}")
            continue
        nones = sorted(k for k, v in ev.items() if v is None)
        if nones:
            out.append(f"event {i} ({name}) leaves {nones} None")
        rank = ev.get("rank")
        if "rank" in ev and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
            out.append(f"event {i} ({name}) has rank {rank!r}")
        hidden = ev.get("hidden_s")
        if "hidden_s" in ev and not (isinstance(hidden, _NUM) and 0 <= hidden <= t + 1e-3):
            out.append(f"event {i} ({name}) hid {hidden!r} s at {t} s")
        call = json.dumps(ev.get("call"), sort_keys=True, default=repr)
        if name == "launch":
            launched.add(call)
        if name == "cancelled" and ev.get("running") and call not in launched:
            out.append(f"event {i} (cancelled) stops a prefetch never launched: {ev!r}")
        try:
            json.dumps(ev)
        except (TypeError, ValueError) as exc:
            out.append(f"event {i} ({name}) is not JSON-able: {exc}")
    return out
