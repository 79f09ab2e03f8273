"""The speculation report: per-node counters and the event log of a run (or of many, merged)."""

from __future__ import annotations

import threading
import time
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
            "time_saved_s": round(saved, 6),
            "wasted_s": round(self.wasted_s, 6),
            "wall_time_s": round(self.wall_time_s, 6),
            "checkpointer_calls": self.checkpointer_calls,
            "peak_inflight": self.peak_inflight,
            "shed_runs": self.shed_runs,
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


def graph_report() -> SpeculationReport:
    """An empty report for a graph's merged runs (bounded to its most recent events)."""
    return SpeculationReport(max_events=GRAPH_EVENTS)
