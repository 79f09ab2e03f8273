"""The speculation report: per-node counters and the event log of a run."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ("NodeStats", "SpeculationReport")


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
    time_saved_s: float = 0.0
    """Actor time hidden by adoption: for each adopted call, how long it had
    already been running when the main run asked for it."""


@dataclass
class SpeculationReport:
    """What speculation did in one run (or, merged, in several).

    `time_saved_s` is the serialized counterfactual: the sum of adopted calls'
    hidden time. The wall-clock saving against a sequential run is measured by
    the benchmarks, never inferred from this number.
    """

    nodes: dict[str, NodeStats] = field(default_factory=dict)
    """Counters per speculative node."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every speculation event, in order (also sent to the custom stream)."""
    wall_time_s: float = 0.0
    """Wall-clock duration of the run(s)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

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
    def cancelled(self) -> int:
        """Branches and early calls cancelled."""
        return int(self._total("cancelled"))

    @property
    def wasted(self) -> int:
        """Early-launched calls never adopted."""
        return int(self._total("wasted"))

    @property
    def time_saved_s(self) -> float:
        """Sum of adopted calls' hidden time (serialized counterfactual)."""
        return float(self._total("time_saved_s"))

    def merge(self, other: SpeculationReport) -> None:
        """Add `other`'s counters and events to this report."""
        for name, stats in other.nodes.items():
            mine = self.node(name)
            for f in fields(NodeStats):
                setattr(mine, f.name, getattr(mine, f.name) + getattr(stats, f.name))
        self.events.extend(other.events)
        self.wall_time_s += other.wall_time_s

    def summary(self) -> dict[str, Any]:
        """Totals and per-node counters as plain JSON-able data."""
        return {
            "calls": self.calls,
            "hits": self.hits,
            "misses": self.misses,
            "adopted": self.adopted,
            "cancelled": self.cancelled,
            "wasted": self.wasted,
            "time_saved_s": round(self.time_saved_s, 6),
            "wall_time_s": round(self.wall_time_s, 6),
            "nodes": {
                n: {f.name: getattr(s, f.name) for f in fields(NodeStats)} for n, s in self.nodes.items()
            },
        }

    def add_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append `event` (a JSON-friendly dict) to the log, stamped with `t` if it has none."""
        return self._record(event)

    def _record(self, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("t", time.monotonic())
        with self._lock:
            self.events.append(event)
        return event
