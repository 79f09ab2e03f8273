"""The `speculate` compile pass and the compiled graph that owns sessions."""

from __future__ import annotations

import copy
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from ._node import SpeculativeNode
from ._policy import SpeculationPolicy
from ._report import SpeculationReport
from ._session import CONF_KEY, BranchStop, Session, context_of

__all__ = ("speculate",)

_BRANCH_RECURSION_LIMIT = 100


@dataclass
class _Plan:
    """What a compiled speculative graph needs at run time."""

    branch_graph: CompiledStateGraph[Any, Any, Any, Any]
    saver: BaseCheckpointSaver[Any]
    internal_saver: bool
    channels: frozenset[str]
    unsafe: frozenset[str]
    max_inflight: int
    active: bool
    nodes: tuple[SpeculativeNode, ...] = ()
    recursion_limit: int = _BRANCH_RECURSION_LIMIT
    report: SpeculationReport = field(default_factory=SpeculationReport)
    last_report: SpeculationReport | None = None
    last_branches: list[tuple[str, str]] = field(default_factory=list)
    warned_subgraph: bool = False


class _SpeculativeStateGraph(StateGraph):  # type: ignore[type-arg]
    """A `StateGraph` whose `compile` returns a graph that speculates."""

    _unsafe: frozenset[str] = frozenset()

    def compile(  # type: ignore[override]
        self, checkpointer: Any = None, **kwargs: Any
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Compile like `StateGraph.compile`; speculative nodes get their branches.

        Branches fork through `checkpointer` (an internal `InMemorySaver` when
        none is given) and stop before `unsafe` nodes and before the
        interrupts you configure.
        """
        nodes = [s.runnable for s in self.nodes.values() if isinstance(s.runnable, SpeculativeNode)]
        active = any(n.policy.enabled and n.speculator is not None for n in nodes)
        internal = not isinstance(checkpointer, BaseCheckpointSaver)
        saver: BaseCheckpointSaver[Any] = InMemorySaver() if internal else checkpointer
        main = super().compile(checkpointer=saver if active else checkpointer, **kwargs)
        before = kwargs.get("interrupt_before")
        guarded = set(self.nodes) if before == "*" else set(before or ()) | set(self._unsafe)
        branch_kwargs = {k: v for k, v in kwargs.items() if k not in ("interrupt_before", "name", "debug")}
        branch = _guarded_copy(self, guarded).compile_plain(checkpointer=saver, **branch_kwargs)
        plan = _Plan(
            branch_graph=branch,
            saver=saver,
            internal_saver=internal,
            channels=frozenset(self.channels),
            unsafe=self._unsafe,
            max_inflight=max((n.policy.max_inflight for n in nodes), default=1),
            active=active,
            nodes=tuple(nodes),
        )
        attrs = {k: v for k, v in main.__dict__.items() if k != "__orig_class__"}
        return _SpeculativeCompiledGraph(speculation=plan, **attrs)

    def compile_plain(self, **kwargs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
        """`StateGraph.compile`, without speculation (for branch graphs)."""
        return super().compile(**kwargs)


def _stop_branch(state: Any) -> Any:
    """Stands in for an unsafe node on branches: the branch ends before it."""
    raise BranchStop()


def _guarded_copy(builder: StateGraph, guarded: set[str]) -> _SpeculativeStateGraph:  # type: ignore[type-arg]
    """The builder with `guarded` nodes replaced by a branch stop.

    `interrupt_before` is not enough: a thread resumed with `invoke(None)`
    after `update_state` runs the next node without interrupting.
    """
    new = _copy_builder(builder)
    for name in guarded:
        new.nodes[name] = replace(new.nodes[name], runnable=RunnableLambda(_stop_branch, name=name))
    return new


class _SpeculativeCompiledGraph(CompiledStateGraph):  # type: ignore[type-arg]
    """A compiled graph that opens a speculation session around every run."""

    def __init__(self, *, speculation: _Plan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.speculation = speculation

    @property
    def last_report(self) -> SpeculationReport | None:
        """The `SpeculationReport` of the most recent finished run."""
        return self.speculation.last_report

    @property
    def report(self) -> SpeculationReport:
        """All runs' reports merged."""
        return self.speculation.report

    def _open(
        self, config: RunnableConfig | None, mode: Any
    ) -> tuple[Session | None, RunnableConfig | None, str | None]:
        plan = self.speculation
        if not plan.active or context_of(config) is not None:
            return None, config, None
        cfg: dict[str, Any] = dict(config or {})
        conf = dict(cfg.get("configurable") or {})
        if conf.get("checkpoint_ns"):
            # A subgraph of a plain graph: its checkpoints belong to the parent's thread and
            # saver, which a branch cannot fork from here. Run it as it is.
            if not plan.warned_subgraph:
                plan.warned_subgraph = True
                for node in plan.nodes:
                    node._warned = True  # this warning says it for them
                warnings.warn(
                    f"speculative graph {self.get_name()!r} runs as a subgraph, where it does not "
                    "speculate; wrap the parent instead (speculate(parent_builder, ...)): its "
                    "branches run into subgraphs and adopt their SpeculativeNode calls",
                    UserWarning,
                    stacklevel=4,
                )
            return None, config, None
        temp = None
        if plan.internal_saver:
            temp = conf["thread_id"] = f"speculative-{uuid.uuid4().hex}"
            conf.pop("checkpoint_id", None)
        thread = str(conf.get("thread_id", "main"))
        session = Session(plan, mode, thread)
        conf[CONF_KEY] = session.ctx()
        cfg["configurable"] = conf
        return session, RunnableConfig(**cfg), temp  # type: ignore[typeddict-item]

    def _done(self, session: Session, started: float) -> None:
        plan = self.speculation
        session.report.wall_time_s = time.monotonic() - started
        plan.last_report = session.report
        plan.last_branches = session.branch_threads()
        plan.report.merge(session.report)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        """`Pregel.stream`, with a speculation session around the run."""
        session, config, temp = self._open(config, "sync")
        if session is None:
            yield from super().stream(input, config, **kwargs)
            return
        started = time.monotonic()
        try:
            yield from super().stream(input, config, **kwargs)
        finally:
            session.close()
            self._done(session, started)
            if temp is not None:
                for tid in [temp, *(t for t, _ in session.branch_threads())]:
                    self.speculation.saver.delete_thread(tid)

    async def astream(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """`Pregel.astream`, with a speculation session around the run."""
        session, config, temp = self._open(config, "async")
        if session is None:
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk
            return
        started = time.monotonic()
        try:
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk
        finally:
            await session.aclose()
            self._done(session, started)
            if temp is not None:
                for tid in [temp, *(t for t, _ in session.branch_threads())]:
                    await self.speculation.saver.adelete_thread(tid)


def speculate(
    builder: StateGraph,  # type: ignore[type-arg]
    speculators: Mapping[str, Callable[..., Any] | Runnable[Any, Any]] | None = None,
    *,
    policy: SpeculationPolicy | None = None,
    unsafe: Iterable[str] = (),
    keys: Mapping[str, Callable[[Any], Any]] | None = None,
    matches: Mapping[str, Callable[[Any, Any], bool]] | None = None,
) -> StateGraph:  # type: ignore[type-arg]
    """Make the named nodes of `builder` speculative; return a new `StateGraph`.

    The builder is not changed. Call `.compile(checkpointer=...)` on the result
    as usual. Nodes already added as `SpeculativeNode` are kept and bound too.

    Args:
        builder: the uncompiled `StateGraph`.
        speculators: node name -> speculator (a function or Runnable taking the
            node's input state and returning guesses of its update).
        policy: applied to every node named in `speculators`.
        unsafe: nodes with side effects; never run on a branch.
        keys: node name -> key function for adoption (default: hash of input).
        matches: node name -> `match(guess, actual)` (default: equality).

    Raises:
        TypeError: `builder` is not a `StateGraph`, a speculator is not callable,
            `policy` is not a `SpeculationPolicy`.
        ValueError: a name is not a node of the graph, or a node is both
            speculative and unsafe.
    """
    if not isinstance(builder, StateGraph):
        raise TypeError(
            f"speculate() takes an uncompiled StateGraph, got {type(builder).__name__}; "
            "pass the builder before calling .compile()"
        )
    speculators = dict(speculators or {})
    keys, matches = dict(keys or {}), dict(matches or {})
    if isinstance(unsafe, str):
        unsafe = [unsafe]
    unsafe_set = frozenset(unsafe)
    if policy is not None and not isinstance(policy, SpeculationPolicy):
        raise TypeError(
            f"policy must be a SpeculationPolicy, got {type(policy).__name__}; "
            "write policy=SpeculationPolicy(k=3)"
        )
    known = sorted(builder.nodes)
    for label, names in (
        ("speculators", speculators),
        ("unsafe", unsafe_set),
        ("keys", keys),
        ("matches", matches),
    ):
        for name in names:
            if name not in builder.nodes:
                raise ValueError(
                    f"speculate({label}=...) names {name!r}, which is not a node of this "
                    f"graph; its nodes are {known}"
                )
    for name, fn in speculators.items():
        if not (callable(fn) or isinstance(fn, Runnable)):
            raise TypeError(
                f"the speculator for node {name!r} is a {type(fn).__name__}, not a function "
                "or Runnable; pass a function state -> list of guesses"
            )
    for label, table in (("keys", keys), ("matches", matches)):
        for name, fn in table.items():
            if not callable(fn):
                raise TypeError(f"speculate({label}=...)[{name!r}] must be callable")
            if name not in speculators and not isinstance(builder.nodes[name].runnable, SpeculativeNode):
                raise ValueError(
                    f"speculate({label}=...) names {name!r}, which has no speculator; "
                    f"add it to speculators or drop it from {label}"
                )
    clash = sorted(
        unsafe_set
        & (
            set(speculators)
            | {n for n, s in builder.nodes.items() if isinstance(s.runnable, SpeculativeNode)}
        )
    )
    if clash:
        raise ValueError(
            f"nodes {clash} are both speculative and unsafe; an unsafe node never runs on a "
            "branch, so it cannot be speculated: drop it from one of the two"
        )
    new = _copy_builder(builder)
    for name, fn in speculators.items():
        spec = new.nodes[name]
        current = spec.runnable
        action = current.action if isinstance(current, SpeculativeNode) else current
        if policy is not None and not policy.enabled:
            continue  # disabled: the node stays exactly as the user wrote it (no wrapper, no cost)
        node = SpeculativeNode(
            action, speculator=fn, policy=policy, key=keys.get(name), match=matches.get(name), name=name
        )
        new.nodes[name] = replace(spec, runnable=node)
    for name in set(keys) | set(matches):
        current = new.nodes[name].runnable
        if name not in speculators and isinstance(current, SpeculativeNode):
            node = SpeculativeNode(
                current.action,
                speculator=current.speculator,
                policy=current.policy,
                key=keys.get(name, current._key),
                match=matches.get(name, current.match),
                name=name,
            )
            new.nodes[name] = replace(new.nodes[name], runnable=node)
    new._unsafe = unsafe_set
    return new


def _copy_builder(builder: StateGraph) -> _SpeculativeStateGraph:  # type: ignore[type-arg]
    new = _SpeculativeStateGraph.__new__(_SpeculativeStateGraph)
    for k, v in builder.__dict__.items():
        if k == "branches":
            v = defaultdict(dict, {n: dict(b) for n, b in v.items()})
        elif isinstance(v, (dict, set, list)):
            v = copy.copy(v)
        new.__dict__[k] = v
    new.compiled = False
    return new
