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
from ._state import Binding, tool_calls_in
from ._stores import BranchStore, ReadOnlyCache

if TYPE_CHECKING:
    from ._state import Run

__all__ = ("Plan", "clone")

_REPORTS = 256  # per-run reports a graph keeps, by run id


def clone(graph: Any, **attrs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A shallow copy of a compiled graph as a plain `CompiledStateGraph`, with `attrs` replaced.

    Cheap (no compile, no validation): a run gets its own checkpointer and store this way, and
    each branch its own checkpointer, without touching the graph the user holds.
    """
    new = object.__new__(CompiledStateGraph)
    new.__dict__.update(
        {
            k: v
            for k, v in graph.__dict__.items()
            if k not in ("__orig_class__", "speculation") and not _patched_method(k)
        }
    )
    new.__dict__.update(attrs)
    return new


def _patched_method(name: str) -> bool:
    """Is `name` a method of the graph class (so an instance attribute of that name was patched
    onto the user's graph, a test's spy say, and must not run the copy's work)?"""
    return callable(getattr(CompiledStateGraph, name, None)) and not name.startswith("__")


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
    tool_gates: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per tool node: tools seen calling `interrupt()` on a main run (beyond those found in their
    code). They never run on a branch; the node's other read-only tools still do."""
    report: SpeculationReport = field(default_factory=graph_report)
    last_report: SpeculationReport | None = None
    reports: OrderedDict[str, SpeculationReport] = field(default_factory=OrderedDict)
    warned: set[str] = field(default_factory=set)
    tuning: Tuner = field(default_factory=Tuner)
    """Adaptive speculation's estimates per node, shared by all runs (issue 18)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def learn_gate(self, name: str, state: Any = None) -> None:
        """`name` interrupted on the main run: from now on branches stop before it. For a tool
        node, only the tools it was calling (in `state`) are gated: its other read-only tools
        keep running on branches."""
        binding = self.bindings.get(name)
        if name in self.gates or binding is None or binding.gate:
            return
        if binding.read_only_tools is not None:
            self._learn_tool_gate(binding, state)
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

    def _learn_tool_gate(self, binding: Binding, state: Any) -> None:
        calls = tool_calls_in(state) or []
        called = frozenset(str(c.get("name")) for c in calls if isinstance(c, dict))
        if not called:  # which tool asked cannot be told: the whole node is a gate
            with self._lock:
                self.gates.add(binding.name)
            return
        with self._lock:
            known = self.tool_gates.get(binding.name, frozenset())
            self.tool_gates[binding.name] = known | called
        new = sorted(called - known)
        if new and binding.read_only_tools is not None and binding.read_only_tools & set(new):
            self.warn_once(
                f"tool-gate:{binding.name}:{','.join(new)}",
                f"node {binding.name!r} called interrupt() on the main run while calling tools {new}: "
                "branches no longer run them (its other read-only tools still run early). A tool that "
                "asks a person is not read-only: remove it from read_only_tools",
            )

    def read_only(self, binding: Binding) -> frozenset[str]:
        """The tools of a tool node a branch may run now (read-only, and never seen interrupting)."""
        assert binding.read_only_tools is not None
        gated = self.tool_gates.get(binding.name)
        return binding.read_only_tools - gated if gated else binding.read_only_tools

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
