"""The speculation report: per-node counters and the event log of a run (or of many, merged)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any

from ._costs import cost_summary

__all__ = ("NodeStats", "SpeculationReport")

RUN_EVENTS = 10_000  # events one run's report keeps
GRAPH_EVENTS = 1_000  # events a graph's merged report keeps (the most recent)


@dataclass
class NodeStats:
    """Counters of one speculative node over a run."""

    calls: int = 0
    """Times the main run executed the node."""
    guesses: int = 0
    """Guesses that got a branch."""
    hits: int = 0
    """Main-run calls whose actual update matched one of the branched guesses."""
    misses: int = 0
    """Main-run calls where branches existed and none matched."""
    adopted: int = 0
    """Main-run calls served by a call that a branch had launched early."""
    launched: int = 0
    """Actor calls launched early on branches."""
    cancelled: int = 0
    """Branches and early calls cancelled because they lost or the run ended."""
    wasted: int = 0
    """Early-launched actor calls that were never adopted."""
    speculator_errors: int = 0
    """Speculator calls that raised, timed out, or returned junk."""
    shed: int = 0
    """Speculation not started: the process was busy, or `max_inflight` or the process budget full."""
    time_saved_s: float = 0.0
    """Actor time hidden by adoption: for each adopted call, how long it had
    already been running when the main run asked for it."""
    wasted_s: float = 0.0
    """Actor-seconds spent in early calls that were never adopted."""
    # cost accounting (issue 18)
    speculator_calls: int = 0
    """Speculator calls started."""
    speculator_s: float = 0.0
    """Seconds the speculator calls ran."""
    tokens_adopted: int = 0
    """LLM tokens (LangChain usage metadata) of early calls the main run adopted: spent either way."""
    tokens_wasted: int = 0
    """LLM tokens of early calls never adopted."""
    speculator_tokens: int = 0
    """LLM tokens of speculator calls."""


@dataclass
class SpeculationReport:
    """What speculation did in one run (or, merged, in several).

    `time_saved_s` is the serialized counterfactual: the sum of adopted calls' hidden time.
    The wall-clock saving against a sequential run is measured by the benchmarks, never
    inferred from this number. A run's report keeps its first 10,000 events; a graph's merged
    report keeps counters of every run and the 1,000 most recent events.
    """

    nodes: dict[str, NodeStats] = field(default_factory=dict)
    """Counters per node."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Speculation events, in order (also sent to the custom stream); see the README's table."""
    wall_time_s: float = 0.0
    """Wall-clock duration of the run(s)."""
    runs: int = 0
    """Runs merged into this report."""
    dropped_events: int = 0
    """Events not kept (beyond the bound)."""
    branches: list[tuple[str, str]] = field(default_factory=list)
    """(branch id, outcome) of every branch of the run: committed, miss, cancelled, ..."""
    checkpointer_calls: int = 0
    """Calls the run made to the user's checkpointer (reads, checkpoints and writes)."""
    peak_inflight: int = 0
    """Most branches and early calls the run had in flight at once."""
    shed_runs: int = 0
    """Runs that did not speculate at all: the process was busy with other runs when they began."""
    refused: str = ""
    """Why this run did not speculate at all, when speculation refused it (`durability="exit"`,
    `interrupt_before="*"`, no thread id, ...); empty when it speculated."""
    refused_runs: int = 0
    """Runs that speculation refused (see `refused`)."""
    spans: list[dict[str, Any]] = field(default_factory=list)
    """Main-run node calls, `{"node", "start", "end"}` in seconds since the report began (the
    timeline's lanes); bounded as the events are."""
    problems: dict[str, str] = field(default_factory=dict)
    """Speculator failures of the run, `"node:reason"` -> the first one's detail (reasons:
    `raised`, `timeout`, `invalid`, `no_guess`); each is warned about once per graph."""
    max_events: int = RUN_EVENTS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _start: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def node(self, name: str) -> NodeStats:
        """The counters of node `name` (created empty on first use)."""
        with self._lock:
            return self.nodes.setdefault(name, NodeStats())

    def _total(self, attr: str) -> Any:
        return sum(getattr(s, attr) for s in self.nodes.values())

    @property
    def calls(self) -> int:
        """Main-run calls of speculative nodes."""
        return int(self._total("calls"))

    @property
    def hits(self) -> int:
        """Calls whose update matched a guess."""
        return int(self._total("hits"))

    @property
    def misses(self) -> int:
        """Calls where no guess matched."""
        return int(self._total("misses"))

    @property
    def adopted(self) -> int:
        """Calls served by an early-launched call."""
        return int(self._total("adopted"))

    @property
    def launched(self) -> int:
        """Calls launched early on branches."""
        return int(self._total("launched"))

    @property
    def cancelled(self) -> int:
        """Branches and early calls cancelled."""
        return int(self._total("cancelled"))

    @property
    def wasted(self) -> int:
        """Early-launched calls never adopted."""
        return int(self._total("wasted"))

    @property
    def shed(self) -> int:
        """Speculation not started (busy process, or budget full)."""
        return int(self._total("shed"))

    @property
    def speculator_errors(self) -> int:
        """Speculator calls that raised, timed out, or returned junk."""
        return int(self._total("speculator_errors"))

    @property
    def time_saved_s(self) -> float:
        """Sum of adopted calls' hidden time (serialized counterfactual)."""
        return float(self._total("time_saved_s"))

    @property
    def wasted_s(self) -> float:
        """Actor-seconds of early calls never adopted."""
        return float(self._total("wasted_s"))

    def merge(self, other: SpeculationReport) -> None:
        """Add `other`'s counters and events to this report."""
        for name, stats in other.nodes.items():
            mine = self.node(name)
            for f in fields(NodeStats):
                setattr(mine, f.name, getattr(mine, f.name) + getattr(stats, f.name))
        with self._lock:
            self.events.extend(other.events)
            overflow = len(self.events) - self.max_events
            if overflow > 0:
                del self.events[:overflow]
                self.dropped_events += overflow
            self.dropped_events += other.dropped_events
            self.wall_time_s += other.wall_time_s
            self.runs += max(1, other.runs)
            self.checkpointer_calls += other.checkpointer_calls
            self.peak_inflight = max(self.peak_inflight, other.peak_inflight)
            self.shed_runs += other.shed_runs
            self.refused_runs += other.refused_runs or (1 if other.refused else 0)
            self.spans.extend(other.spans)
            del self.spans[: max(0, len(self.spans) - self.max_events)]
            for key, detail in other.problems.items():
                self.problems.setdefault(key, detail)

    def summary(self) -> dict[str, Any]:
        """Totals and per-node counters as plain JSON-able data."""
        saved = self.time_saved_s
        return {
            "runs": self.runs,
            "calls": self.calls,
            "hits": self.hits,
            "misses": self.misses,
            "adopted": self.adopted,
            "launched": self.launched,
            "cancelled": self.cancelled,
            "wasted": self.wasted,
            "shed": self.shed,
            "speculator_errors": self.speculator_errors,
            "time_saved_s": round(saved, 6),
            "wasted_s": round(self.wasted_s, 6),
            "wall_time_s": round(self.wall_time_s, 6),
            "checkpointer_calls": self.checkpointer_calls,
            "peak_inflight": self.peak_inflight,
            "shed_runs": self.shed_runs,
            "refused_runs": self.refused_runs or (1 if self.refused else 0),
            **({"refused": self.refused} if self.refused else {}),
            **cost_summary(self.nodes.values()),  # cost accounting (issue 18)
            "nodes": {
                n: {f.name: getattr(s, f.name) for f in fields(NodeStats)} for n, s in self.nodes.items()
            },
        }

    def add_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append `event` (a JSON-friendly dict) to the log, stamped with `t` (seconds since the
        report began) if it has none."""
        event.setdefault("t", round(time.monotonic() - self._start, 6))
        with self._lock:
            if len(self.events) < self.max_events:
                self.events.append(event)
            else:
                self.dropped_events += 1
        return event

    def add_span(self, node: str, started: float, ended: float) -> None:
        """Record a main-run call of `node` that ran from `started` to `ended` (`time.monotonic()`)."""
        span = {"node": node, "start": round(started - self._start, 6), "end": round(ended - self._start, 6)}
        with self._lock:
            if len(self.spans) < self.max_events:
                self.spans.append(span)

    def speculator_problem(self, node: str, reason: str, detail: str = "") -> None:
        """Note that `node`'s speculator failed (`reason`: `raised`, `timeout`, `invalid`,
        `no_guess`) with `detail`. The first of each (node, reason) is kept; the run's end turns
        it into one `UserWarning` per graph (see `warn_problems`)."""
        with self._lock:
            self.problems.setdefault(f"{node}:{reason}", detail)

    # ------------------------------------------------------------------ saving and drawing

    def to_json(self, indent: int | None = None) -> str:
        """The report as JSON (counters, events, spans): `SpeculationReport.from_json` reads it
        back, and `langgraph-speculative timeline REPORT.json` draws it."""
        with self._lock:
            data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
            data["nodes"] = {
                n: {f.name: getattr(s, f.name) for f in fields(NodeStats)} for n, s in self.nodes.items()
            }
            data["events"] = list(self.events)
            data["spans"] = list(self.spans)
            data["branches"] = [list(b) for b in self.branches]
            data["problems"] = dict(self.problems)
            return json.dumps({"speculation_report": 1, **data}, indent=indent, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> SpeculationReport:
        """A report saved with `to_json`. Raises `ValueError` naming what is wrong otherwise."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON speculation report: {exc}") from None
        if not isinstance(data, dict) or "speculation_report" not in data:
            raise ValueError(
                "not a speculation report: save one with report.to_json() (graph.last_report.to_json())"
            )
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        node_fields = {f.name for f in fields(NodeStats)}
        report = cls(**{k: v for k, v in data.items() if k in known and k not in ("nodes", "branches")})
        report.nodes = {
            str(n): NodeStats(**{k: v for k, v in (s or {}).items() if k in node_fields})
            for n, s in (data.get("nodes") or {}).items()
        }
        report.branches = [(str(b[0]), str(b[1])) for b in data.get("branches") or []]
        return report

    def timeline(self, path: str, *, plain_s: float | None = None, title: str | None = None) -> str:
        """Draw this run's timeline to `path` (PNG, SVG or PDF, by its suffix) and return `path`.

        A lane per node of the main run (its calls; the hit or miss where the actor answered)
        and its speculator, lanes of branches with their early calls coloured adopted, cancelled
        or wasted, the run's length and, with `plain_s` (the plain graph's time for the same
        input, when you measured it), a reference line. Needs matplotlib
        (`pip install 'langgraph-speculative[plot]'`). Draw one run's report
        (`graph.last_report`, `graph.report_for(run_id)`), not a merge of several.
        """
        from ._timeline import draw

        return draw(self, path, plain_s=plain_s, title=title)


def problem_message(key: str, detail: str) -> str:
    """The warning for a speculator problem `key` (`"node:reason"`) with `detail`."""
    node, _, reason = key.rpartition(":")
    hint = {
        "raised": "it raised",
        "timeout": "it did not answer within the policy's speculator_timeout",
        "invalid": "it returned something that is not a guess",
        "no_guess": "none of its recent answers held a guess (or one above policy.min_confidence)",
    }.get(reason, reason)
    fix = {
        "invalid": " Return a list of update dicts (or Guess objects), best first: a chat model's "
        "AIMessage goes in an update, e.g. [{'messages': [message]}]; text must be parsed first.",
        "timeout": " Make it faster or raise SpeculationPolicy(speculator_timeout=...).",
        "no_guess": " Return at least one update dict (or Guess) when it can guess.",
    }.get(reason, "")
    detail = f" ({detail})" if detail else ""
    return (
        f"the speculator of node {node!r} gave no usable guess: {hint}{detail}; this run got no "
        f"speed-up from it (counted in report.summary()['speculator_errors'], details in the "
        f"report's events).{fix} This warning is shown once per graph, node and reason."
    )


NO_GUESS_AFTER = 3
"""Answers without a single guess, in a row, after which a speculator is warned about."""

_LIBRARY = ("langgraph", "langgraph_speculative", "langchain_core", "langchain", "asyncio", "contextlib",
            "concurrent", "threading", "functools", "warnings")  # fmt: skip


def user_stacklevel() -> int | None:
    """The `stacklevel` for `warnings.warn`, called from this function's caller, that names the
    first frame outside the library, LangGraph, LangChain and asyncio: the user's call. None when
    no such frame is on the stack (code run by a worker thread or a task of LangGraph's)."""
    import sys

    frame = sys._getframe(2)  # the caller of our caller, i.e. stacklevel 2 of the caller
    level = 2
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if not any(name == p or name.startswith(p + ".") for p in _LIBRARY):
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return None


def _where(obj: Any) -> tuple[str, int] | None:
    """The file and first line of `obj`'s code (a function, a method, a callable object), if any."""
    import inspect

    for target in (obj, getattr(obj, "func", None), getattr(obj, "afunc", None), type(obj)):
        if target is None:
            continue
        try:
            target = inspect.unwrap(target)
            return inspect.getsourcefile(target) or "", inspect.getsourcelines(target)[1]
        except (TypeError, OSError):
            continue
    return None


def warn_problems(
    report: SpeculationReport,
    warned: set[str],
    lock: Any = None,
    speculators: Callable[[], dict[str, Any]] | None = None,
    history: SpeculationReport | None = None,
) -> None:
    """Warn (`UserWarning`, at the user's call site) about each speculator problem of `report`
    not yet in `warned` (a graph's set, guarded by `lock`), and add it there. Problems are also
    read from the report's events (`speculator_error`, `speculator_timeout`, `invalid_guess`,
    a node whose every `guesses` event was empty), so a session that does not note them still warns.
    Called where no user code is on the stack (a LangGraph worker thread, a task), the warning
    points at the node's speculator in `speculators()` (node -> the speculator), if given.
    `history` (the graph's merged report) tells a speculator that never guesses from one that
    abstained in this run.
    """
    found = dict(report.problems)
    answered: dict[str, bool] = {}
    for ev in list(report.events):
        node, kind = str(ev.get("node", "")), ev.get("event")
        if kind == "speculator_error" and ev.get("reason") not in (None, "raised", "junk", "timeout"):
            continue  # e.g. the middleware's `observe`: learning failed, not guessing
        if kind == "speculator_error":
            reason = {"junk": "invalid", "timeout": "timeout"}.get(str(ev.get("reason")), "raised")
            detail = ev.get("error") or ev.get("problems") or ""
        elif kind == "speculator_timeout":
            reason, detail = "timeout", f"timeout_s={ev.get('timeout_s')}"
        elif kind == "invalid_guess":
            reason, detail = "invalid", ev.get("problems") or ""
        elif kind == "guesses":
            answered[node] = answered.get(node, False) or bool(ev.get("guesses"))
            continue
        else:
            continue
        if isinstance(detail, list):
            detail = "; ".join(map(str, detail[:3]))
        found.setdefault(f"{node}:{reason}", str(detail))
    for node, any_guess in answered.items():
        if any_guess or any(k.startswith(f"{node}:") for k in found):
            continue
        # A speculator may abstain now and then: only one that never gave a guess in its last
        # NO_GUESS_AFTER answers (this run's, or the graph's recent ones in `history`) is warned about.
        seen = [
            e for e in (history or report).events if e.get("event") == "guesses" and e.get("node") == node
        ]
        if len(seen) >= NO_GUESS_AFTER and not any(e.get("guesses") for e in seen[-NO_GUESS_AFTER:]):
            found[f"{node}:no_guess"] = f"its last {NO_GUESS_AFTER} answers"
    for key, detail in found.items():
        if lock is not None:
            with lock:
                if key in warned:
                    continue
                warned.add(key)
        elif key in warned:
            continue
        else:
            warned.add(key)
        level = user_stacklevel()
        where = _where(speculators().get(key.rpartition(":")[0])) if level is None and speculators else None
        if where is not None:
            warnings.warn_explicit(problem_message(key, detail), UserWarning, where[0], where[1])
        else:
            warnings.warn(problem_message(key, detail), UserWarning, stacklevel=level or 2)


_PLAIN_RUN: ContextVar[SpeculationReport | None] = ContextVar("langgraph_speculative_plain_run", default=None)
"""The report of a speculative graph's run that runs plain (shed or refused): its nodes count there."""


def plain_run_report() -> SpeculationReport | None:
    """The report of the shed or refused run the current code belongs to, if any."""
    return _PLAIN_RUN.get()


def note_span(session: Any, node: str, started: float) -> None:
    """A main-run call of `node` that began at `started` (monotonic) ended now: a span of the
    session's report."""
    report = getattr(session, "report", None)
    if report is not None:
        report.add_span(node, started, time.monotonic())


def note_plain_call(report: SpeculationReport, node: str, speculative: bool, started: float) -> None:
    """A call of `node` in a run that did not speculate (shed or refused) ended now: counted as
    the session counts a shed call (`calls` and `shed` of a speculative node), with its span."""
    if speculative:
        stats = report.node(node)
        with report._lock:  # LangGraph's worker threads of a sync run count concurrently
            stats.calls += 1
            stats.shed += 1 if report.shed_runs else 0
    report.add_span(node, started, time.monotonic())


def graph_report() -> SpeculationReport:
    """An empty report for a graph's merged runs (bounded to its most recent events)."""
    return SpeculationReport(max_events=GRAPH_EVENTS)
