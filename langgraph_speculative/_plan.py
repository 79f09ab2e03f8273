"""What a compiled speculative graph knows at run time: its nodes as bound for speculation, the
gates it has learned, its reports, and how to make the graph a branch runs."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langgraph.graph.state import CompiledStateGraph

from ._adaptive import Tuner
from ._report import SpeculationReport, graph_report
from ._state import Binding
from ._stores import BranchStore, ReadOnlyCache

if TYPE_CHECKING:
    from ._session import Run

__all__ = ("Plan", "clone")

_REPORTS = 256  # per-run reports a graph keeps, by run id


def clone(graph: Any, **attrs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A shallow copy of a compiled graph as a plain `CompiledStateGraph`, with `attrs` replaced.

    Cheap (no compile, no validation): a run gets its own checkpointer and store this way, and
    each branch its own checkpointer, without touching the graph the user holds.
    """
    new = object.__new__(CompiledStateGraph)
    new.__dict__.update(
        {k: v for k, v in graph.__dict__.items() if k not in ("__orig_class__", "speculation")}
    )
    new.__dict__.update(attrs)
    return new


@dataclass
class Plan:
    """Run-time facts of a compiled speculative graph, shared by its copies."""

    bindings: dict[str, Binding]
    channels: frozenset[str]
    node_names: frozenset[str]
    max_inflight: int
    active: bool
    gates: set[str] = field(default_factory=set)
    """Nodes seen calling `interrupt()` on a main run (beyond those found in their code)."""
    report: SpeculationReport = field(default_factory=graph_report)
    last_report: SpeculationReport | None = None
    reports: OrderedDict[str, SpeculationReport] = field(default_factory=OrderedDict)
    warned: set[str] = field(default_factory=set)
    tuning: Tuner = field(default_factory=Tuner)
    """Adaptive speculation's estimates per node, shared by all runs (issue 18)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def learn_gate(self, name: str) -> None:
        """`name` interrupted on the main run: from now on branches stop before it."""
        binding = self.bindings.get(name)
        if name in self.gates or binding is None or binding.gate:
            return
        with self._lock:
            self.gates.add(name)
        self.warn_once(
            f"gate:{name}",
            f"node {name!r} called interrupt() on the main run: branches now stop before it"
            + (" and it is no longer speculated" if binding.speculative else "")
            + ". Its code did not show the call; to be safe from the first run, put it in "
            "interrupt_before, or in unsafe",
        )

    def warn_once(self, key: str, message: str, stacklevel: int = 3) -> None:
        """A `UserWarning`, once per graph and `key`."""
        with self._lock:
            if key in self.warned:
                return
            self.warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=stacklevel)

    def branch_graph(self, saver: Any, run: Run) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The graph a branch runs: the run's graph with the branch's own checkpointer, a store it
        cannot write, a cache it cannot fill, and no interrupts (gates stop branches instead)."""
        graph = run.graph
        return clone(
            graph,
            checkpointer=saver,
            store=BranchStore(run.store.inner) if run.store is not None else None,
            cache=ReadOnlyCache(graph.cache) if graph.cache is not None else None,
            interrupt_before_nodes=[],
            interrupt_after_nodes=[],
        )

    def keep(self, run_id: str, report: SpeculationReport) -> None:
        """Keep a finished run's report (the most recent 256 runs)."""
        with self._lock:
            self.last_report = report
            self.reports[run_id] = report
            while len(self.reports) > _REPORTS:
                self.reports.popitem(last=False)
        self.report.merge(report)
