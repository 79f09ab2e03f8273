"""The `speculate` compile pass: checks, bindings, and the compiled graph's build."""

from __future__ import annotations

import copy
import inspect
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, overload

from langchain_core.runnables import Runnable
from langgraph.channels import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from ._graph import SpeculativeCompiledGraph
from ._keys import ChannelMatch, default_match
from ._node import Bound, SpeculativeNode, as_runnable
from ._plan import Plan
from ._policy import SpeculationPolicy
from ._scan import calls_interrupt
from ._state import Binding

__all__ = ("speculate",)

_INJECTABLE = {"config", "runtime", "writer", "store"}


class SpeculativeStateGraph(StateGraph):  # type: ignore[type-arg]
    """A `StateGraph` whose `compile` returns a graph that speculates (from `speculate`)."""

    _spec: dict[str, Any]

    def compile(  # type: ignore[override]
        self, checkpointer: Any = None, **kwargs: Any
    ) -> SpeculativeCompiledGraph:
        """Compile like `StateGraph.compile`; the result speculates.

        Every argument means what it means to `StateGraph.compile`. Branches fork the main run's
        checkpoints into in-memory checkpointers of their own (your `checkpointer` holds only
        the main run's thread), stop before `unsafe` nodes and before every interrupt you
        configure here or at run time.
        """
        # LangGraph's compile changes the builder it compiles (it adds the node of
        # `set_node_defaults(error_handler=...)` and writes the defaults into the node specs):
        # each compile here gets a copy of its own, so this builder compiles again and again.
        base = _copy_builder(self, specs=True)
        plain = StateGraph.compile(base, checkpointer=checkpointer, **kwargs)
        _refuse_delta_channels(plain)
        bindings = _bind(base, plain)
        active = any(b.speculative or b.prefetching for b in bindings.values())
        if active:
            _refuse_root_channel(plain, bindings)
            wrapped = _copy_builder(base, specs=True)
            defaults = getattr(wrapped, "_node_defaults", None)
            if getattr(defaults, "error_handler", None) is not None:  # its node is there already
                wrapped._node_defaults = replace(defaults, error_handler=None)  # type: ignore[type-var,assignment]
            for name, binding in bindings.items():
                wrapped.nodes[name] = replace(wrapped.nodes[name], runnable=Bound(binding))
            graph = StateGraph.compile(wrapped, checkpointer=checkpointer, **kwargs)
        else:
            graph = plain
        plan = Plan(
            bindings=bindings,
            channels=frozenset(base.channels),
            node_names=frozenset(n for n in base.nodes if n != START),
            max_inflight=max((b.policy.max_inflight for b in bindings.values() if b.policy), default=1),
            active=active,
        )
        if active:
            _warn_at_compile(base, plan, kwargs)
            if checkpointer is not None and not isinstance(checkpointer, bool):
                _warn_subgraphs(plan)
        attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
        return SpeculativeCompiledGraph(speculation=plan, drawing=plain, **attrs)


def _tool_names(runnable: Any) -> list[str] | None:
    """The tools a `ToolNode` runs (None: not a tool node)."""
    try:
        from langgraph.prebuilt import ToolNode
    except ImportError:  # pragma: no cover - langgraph-prebuilt ships with langgraph
        return None
    if isinstance(runnable, ToolNode):
        return sorted(runnable.tools_by_name)
    return None


def _asking_tools(tool_node: Any) -> frozenset[str]:
    """The tools of a `ToolNode` whose code calls `interrupt()`: never run on a branch."""
    return frozenset(name for name, tool in tool_node.tools_by_name.items() if calls_interrupt(tool))


def _bind(builder: SpeculativeStateGraph, plain: Any) -> dict[str, Binding]:
    spec = builder._spec
    speculators, keys, matches = spec["speculators"], spec["keys"], spec["matches"]
    policy, unsafe = spec["policy"], spec["unsafe"]
    read_only: frozenset[str] | None = spec["read_only_tools"]
    bindings: dict[str, Binding] = {}
    for name, node in builder.nodes.items():
        runnable: Any = node.runnable
        inline = bool(getattr(plain.nodes.get(name), "subgraphs", None))
        nested = inline and _speculates_inside(plain.nodes[name])
        stateful = inline and _keeps_state(plain.nodes[name])
        if isinstance(runnable, SpeculativeNode):
            base = runnable.binding
            binding = replace(base, name=name)
            if name in speculators:
                binding = replace(
                    binding, speculator=as_runnable(speculators[name], "speculator", contain=True)
                )
            if policy is not None and name in speculators:
                binding = replace(binding, policy=policy)
        elif name in speculators:
            binding = Binding(
                name=name,
                action=runnable,
                speculator=as_runnable(speculators[name], "speculator", contain=True),
                policy=policy or SpeculationPolicy(),
            )
        else:
            binding = Binding(name=name, action=runnable)
        tools = _tool_names(binding.action)
        mine = read_only
        if tools is not None and mine is None:  # not given: the tools that declare readOnlyHint (MCP's)
            mine = frozenset(
                n
                for n, t in getattr(binding.action, "tools_by_name", {}).items()
                if isinstance(getattr(t, "metadata", None), dict) and t.metadata.get("readOnlyHint") is True
            )
        binding = replace(
            binding,
            key_fn=keys.get(name, binding.key_fn),
            match=_default_match(matches.get(name, binding.match), builder),
            unsafe=name in unsafe,
            gate=calls_interrupt(binding.action) if tools is None else False,
            inline=inline,
            nested=nested,
            stateful=stateful,
            prefetch=spec.get("prefetch", {}).get(name, ()),
            policy=binding.policy
            or (policy or SpeculationPolicy() if name in spec.get("prefetch", {}) else None),
            read_only_tools=None
            if tools is None
            else frozenset(mine or ()) & frozenset(tools) - _asking_tools(binding.action),
        )
        bindings[name] = binding
    return bindings


def _keeps_state(node: Any) -> bool:
    """Does the subgraph a node holds (at any depth) keep its own state between calls
    (`compile(checkpointer=True)`)?"""
    for graph in getattr(node, "subgraphs", None) or ():
        graphs = [graph, *(g for _, g in graph.get_subgraphs(recurse=True))]
        if any(getattr(g, "checkpointer", None) is True for g in graphs):
            return True
    return False


def _speculates_inside(node: Any) -> bool:
    """Does the subgraph a node holds have `SpeculativeNode`s of its own (at any depth)?"""
    for graph in getattr(node, "subgraphs", None) or ():
        graphs = [graph, *(g for _, g in graph.get_subgraphs(recurse=True))]
        for g in graphs:
            specs = getattr(getattr(g, "builder", None), "nodes", None) or {}
            if any(isinstance(getattr(s, "runnable", None), Bound) for s in specs.values()):
                return True
    return False


def _default_match(match: Callable[[Any, Any], bool] | None, builder: Any) -> Callable[[Any, Any], bool]:
    """A node's match: the user's, or equality of what the graph's channels receive."""
    if match is None or match is default_match:
        return ChannelMatch(frozenset(builder.channels))
    return match


def _warn_subgraphs(plan: Plan) -> None:
    """With a checkpointer, a node holding a subgraph is never launched early (say which, and why)."""
    nodes = sorted(n for n, b in plan.bindings.items() if b.inline and not b.nested and not b.unsafe)
    if nodes:
        plan.warn_once(
            "subgraphs",
            f"nodes {nodes} hold subgraphs whose checkpoints go to your checkpointer under the main "
            "run's task, which an early call on a branch cannot write: a branch stops before them and "
            "never launches them early. Run this graph without a checkpointer to have them launched "
            "early and adopted",
            stacklevel=4,
        )


def _refuse_root_channel(plain: Any, bindings: dict[str, Binding]) -> None:
    if "__root__" in plain.channels:
        nodes = sorted(n for n, b in bindings.items() if b.speculative)
        raise ValueError(
            f"speculate(): this graph's state is a single root value (StateGraph({_type_name(plain)})), "
            f"so what nodes {nodes} return replaces the whole state and a guess could not be told "
            "from an update of state keys. Give the state keys (e.g. a TypedDict with one key), or "
            "compile without speculate()"
        )


def _type_name(plain: Any) -> str:
    schema = getattr(getattr(plain, "builder", None), "state_schema", None)
    return getattr(schema, "__name__", None) or repr(schema)


def _refuse_delta_channels(plain: Any) -> None:
    delta = sorted(k for k, c in plain.channels.items() if isinstance(c, DeltaChannel))
    if delta:
        raise ValueError(
            f"speculate(): the state's {delta} use DeltaChannel, whose value lives in a thread's "
            "history; a branch forks one checkpoint and could not rebuild it. For an agent built "
            "with create_agent or create_deep_agent, speculate its tool calls with the middleware "
            "instead: middleware=[SpeculativeToolCalls(...)] (from langgraph_speculative.agents). "
            "For your own graph, use a plain reducer (e.g. Annotated[list, operator.add]) for "
            "these keys, or compile without speculate()"
        )


def _successors(builder: StateGraph, name: str) -> set[str] | None:  # type: ignore[type-arg]
    """Nodes that can run right after `name`; None when the graph cannot tell (a router with
    no path map, a node returning `Command`s)."""
    out = {end for start, end in builder.edges if start == name}
    for waiting in builder.waiting_edges:
        starts, end = waiting
        if name in starts:
            out.add(end)
    for branch in builder.branches.get(name, {}).values():
        ends = getattr(branch, "ends", None)
        if not ends:
            return None
        out |= set(ends.values())
    node = builder.nodes[name]
    if getattr(node, "ends", None):
        out |= set(node.ends or ())
    elif not out:
        return None
    return out


def _warn_at_compile(builder: SpeculativeStateGraph, plan: Plan, kwargs: dict[str, Any]) -> None:
    before, after = kwargs.get("interrupt_before"), kwargs.get("interrupt_after")
    if before == "*" or after == "*":
        plan.warn_once(
            "all-gated",
            "interrupt_before/interrupt_after='*' gates every node: a branch can never run one, so "
            "this graph never speculates",
            stacklevel=4,
        )
        return
    gates = set(before or ()) | set(after or ())
    for name, b in plan.bindings.items():
        tools = _tool_names(b.action)
        if tools is not None and not b.unsafe:
            asking = sorted(_asking_tools(b.action))
            declared = sorted(set(builder._spec["read_only_tools"] or ()) & set(asking))
            if declared:
                plan.warn_once(
                    f"asking-tools:{name}",
                    f"read_only_tools names {declared}, whose code calls interrupt() (it asks a "
                    "person, so it is not read-only): branches never run it",
                    stacklevel=4,
                )
            if not b.read_only_tools:
                plan.warn_once(
                    f"tools:{name}",
                    f"node {name!r} runs tools {tools}; branches run none of them until you name "
                    "those that only read (no side effect, same answer when called early): "
                    "speculate(..., read_only_tools={...})",
                    stacklevel=4,
                )
        original = builder._spec["speculators"].get(name) or isinstance(
            builder.nodes[name].runnable, SpeculativeNode
        )
        if original and b.gate:
            plan.warn_once(
                f"gate:{name}",
                f"node {name!r} calls interrupt(): a guess of it would skip a person's approval, so "
                "it is not speculated. Speculate the slow work before the approval as a node of its "
                "own, and keep the interrupt() in a node after it",
                stacklevel=4,
            )
            continue
        if not b.speculative:
            continue
        if name in set(after or ()):
            plan.warn_once(
                f"after:{name}",
                f"node {name!r} is in interrupt_after: the run waits for a person right after it, so "
                "a branch from its guess may run nothing; its speculation can never pay off",
                stacklevel=4,
            )
            continue
        nexts = _successors(builder, name)
        if nexts is None:
            continue
        runnable = [
            n
            for n in nexts
            if n != END and not (plan.bindings[n].unsafe or plan.bindings[n].gate or n in gates)
        ]
        if not runnable:
            plan.warn_once(
                f"pointless:{name}",
                f"node {name!r} has a speculator, but nothing after it can run on a branch ("
                f"{sorted(nexts)} end the graph, are unsafe or wait for a person): its speculation "
                "can never pay off",
                stacklevel=4,
            )


def _check_callable(label: str, fn: Any, required: int, hint: str) -> None:
    if not (callable(fn) or isinstance(fn, Runnable)):
        raise TypeError(f"{label} is a {type(fn).__name__}, not a function or Runnable; {hint}")
    if isinstance(fn, Runnable):
        return
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = [p for p in sig.parameters.values() if p.name not in _INJECTABLE]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    needed = [p for p in positional if p.default is p.empty]
    kw_needed = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(needed) > required or len(positional) < required or kw_needed:
        names = ", ".join(p.name for p in params)
        raise TypeError(f"{label} takes ({names}); {hint}")


@overload
def speculate(
    builder: StateGraph,  # type: ignore[type-arg]
    speculators: Mapping[str, Callable[..., Any] | Runnable[Any, Any]] | None = None,
    *,
    policy: SpeculationPolicy | None = None,
    unsafe: Iterable[str] | None = (),
    keys: Mapping[str, Callable[[Any], Any]] | None = None,
    matches: Mapping[str, Callable[[Any, Any], bool]] | None = None,
    read_only_tools: Iterable[str] | None = None,
    prefetch: Iterable[str] | None = None,
) -> SpeculativeStateGraph: ...


@overload
def speculate(
    builder: CompiledStateGraph,  # type: ignore[type-arg]
    speculators: Mapping[str, Callable[..., Any] | Runnable[Any, Any]] | None = None,
    *,
    policy: SpeculationPolicy | None = None,
    unsafe: Iterable[str] | None = (),
    keys: Mapping[str, Callable[[Any], Any]] | None = None,
    matches: Mapping[str, Callable[[Any, Any], bool]] | None = None,
    read_only_tools: Iterable[str] | None = None,
    prefetch: Iterable[str] | None = None,
) -> SpeculativeCompiledGraph: ...


def speculate(
    builder: Any,
    speculators: Mapping[str, Callable[..., Any] | Runnable[Any, Any]] | None = None,
    *,
    policy: SpeculationPolicy | None = None,
    unsafe: Iterable[str] | None = (),
    keys: Mapping[str, Callable[[Any], Any]] | None = None,
    matches: Mapping[str, Callable[[Any, Any], bool]] | None = None,
    read_only_tools: Iterable[str] | None = None,
    prefetch: Iterable[str] | None = None,
) -> Any:
    """Make the named nodes of a graph speculative.

    Given an uncompiled `StateGraph`, return a new one (the builder is not changed): call
    `.compile(checkpointer=...)` on it as usual. Given a compiled graph (such as
    `create_agent(...)`'s or `create_react_agent(...)`'s), return it compiled again with
    speculation, keeping its checkpointer, store, cache, interrupts, name, stream transformers
    and config (recursion limit, metadata).

    Nodes already added as `SpeculativeNode` are kept and bound too. Every other node may run on
    a branch (and be adopted from it) unless it is `unsafe`, calls `interrupt()`, or is gated by
    `interrupt_before`/`interrupt_after`. A `ToolNode` runs on a branch only calls of the tools
    named in `read_only_tools`.

    Args:
        builder: the `StateGraph`, or a compiled graph.
        speculators: node name -> speculator (a function or Runnable taking the node's input
            state and returning guesses of what the node returns, best first).
        policy: applied to every node named in `speculators`.
        unsafe: nodes with side effects; never run on a branch.
        keys: node name -> key function for adoption (default: hash of the node's input).
        matches: node name -> `match(guess, actual)` (default: equality).
        read_only_tools: tools (by name) that only read, which a branch may call early.
        prefetch: nodes whose successors are launched early, while the node runs, on its input
            state: speculation without a speculator (every node that can follow it, from the
            graph's edges and path maps, at most `policy.k` of them). An early call is adopted
            when its key on the real input equals its key on the listed node's input, so give
            the successors `keys=` that read only what the listed node does not write. With an
            adaptive policy only the successors seen adopted often enough are launched.

    Raises:
        TypeError: `builder` is not a graph, an argument has the wrong type, a speculator, key
            or match function has the wrong signature.
        ValueError: a name is not a node of the graph, or a node is both speculative and unsafe.
    """
    if isinstance(builder, CompiledStateGraph) and isinstance(getattr(builder, "builder", None), StateGraph):
        return _recompile(
            builder,
            speculate(
                builder.builder,
                speculators,
                policy=policy,
                unsafe=unsafe,
                keys=keys,
                matches=matches,
                read_only_tools=read_only_tools,
                prefetch=prefetch,
            ),
        )
    if not isinstance(builder, StateGraph):
        raise TypeError(f"speculate() takes a StateGraph (or a compiled one), got {type(builder).__name__}")
    speculators = _mapping("speculators", speculators)
    keys, matches = _mapping("keys", keys), _mapping("matches", matches)
    if unsafe is None:
        unsafe = ()
    if isinstance(unsafe, str):
        unsafe = [unsafe]
    if not isinstance(unsafe, Iterable) or isinstance(unsafe, Mapping):
        raise TypeError(
            f"unsafe must be a set of node names, got {type(unsafe).__name__}; write unsafe={{'send_email'}}"
        )
    unsafe_set = frozenset(unsafe)
    if policy is not None and not isinstance(policy, SpeculationPolicy):
        raise TypeError(
            f"policy must be a SpeculationPolicy, got {type(policy).__name__}; "
            "write policy=SpeculationPolicy(k=3)"
        )
    known = sorted(n for n in builder.nodes)
    for label, names in (
        ("speculators", speculators),
        ("unsafe", unsafe_set),
        ("keys", keys),
        ("matches", matches),
    ):
        for name in names:
            if not isinstance(name, str) or name not in builder.nodes:
                raise ValueError(
                    f"speculate({label}=...) names {name!r}, which is not a node of this graph; "
                    f"its nodes are {known}"
                )
    hint = "a speculator takes the node's input state and returns guesses: def guess(state) -> list"
    for name, fn in speculators.items():
        _check_callable(f"the speculator for node {name!r}", fn, 1, hint)
    for name, fn in keys.items():
        _check_callable(f"speculate(keys=...)[{name!r}]", fn, 1, "a key function takes the node's input")
    for name, fn in matches.items():
        _check_callable(f"speculate(matches=...)[{name!r}]", fn, 2, "write def match(guess, actual) -> bool")
    existing = {n for n, s in builder.nodes.items() if isinstance(s.runnable, SpeculativeNode)}
    for name in matches:
        if name not in speculators and name not in existing:
            raise ValueError(
                f"speculate(matches=...) names {name!r}, which has no speculator (a match compares "
                "a node's guesses with what it returned); add it to speculators or drop it from matches"
            )
    clash = sorted(unsafe_set & (set(speculators) | existing))
    if clash:
        raise ValueError(
            f"nodes {clash} are both speculative and unsafe; an unsafe node never runs on a "
            "branch, so it cannot be speculated: drop it from one of the two"
        )
    if read_only_tools is not None and (
        isinstance(read_only_tools, (str, Mapping)) or not isinstance(read_only_tools, Iterable)
    ):
        raise TypeError(
            f"read_only_tools must be a set of tool names, got {type(read_only_tools).__name__}; "
            "write read_only_tools={'get_order', 'search'}"
        )
    known_tools = {t for s in builder.nodes.values() for t in (_tool_names(s.runnable) or ())}
    unknown = sorted(set(read_only_tools or ()) - known_tools)
    if unknown:
        raise ValueError(
            f"speculate(read_only_tools=...) names {unknown}, which no ToolNode of this graph runs; "
            f"its tools are {sorted(known_tools)}"
        )
    prefetched = _prefetch_targets(builder, prefetch, unsafe_set, keys)
    new = _copy_builder(builder)
    new._spec = {
        "prefetch": prefetched,
        "speculators": {name: _for_graph(fn, builder, name) for name, fn in speculators.items()},
        "keys": keys,
        "matches": matches,
        "policy": policy,
        "unsafe": unsafe_set,
        "read_only_tools": None if read_only_tools is None else frozenset(read_only_tools),
    }
    return new


def _prefetch_targets(
    builder: StateGraph,  # type: ignore[type-arg]
    prefetch: Iterable[str] | None,
    unsafe: frozenset[str],
    keys: Mapping[str, Any],
) -> dict[str, tuple[str, ...]]:
    """`prefetch=`: node -> the successors launched early while it runs (checked here)."""
    if prefetch is None:
        return {}
    if isinstance(prefetch, (str, Mapping)) or not isinstance(prefetch, Iterable):
        raise TypeError(
            f"prefetch must be a set of node names, got {type(prefetch).__name__}; "
            "write prefetch={'router'}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for name in prefetch:
        if not isinstance(name, str) or name not in builder.nodes:
            raise ValueError(
                f"speculate(prefetch=...) names {name!r}, which is not a node of this graph; "
                f"its nodes are {sorted(builder.nodes)}"
            )
        nexts = _successors(builder, name)
        if nexts is None:
            raise ValueError(
                f"speculate(prefetch={{{name!r}}}): the graph cannot tell which nodes follow {name!r} "
                "(a conditional edge without a path map, or a node returning Command without "
                "`destinations`); give add_conditional_edges(...) its list of targets"
            )
        targets = tuple(sorted(n for n in nexts if n in builder.nodes and n not in unsafe))
        unkeyed = [n for n in targets if n not in keys]
        if unkeyed:
            warnings.warn(
                f"speculate(prefetch={{{name!r}}}): {unkeyed} have no key, so an early call made on "
                f"{name!r}'s input is adopted only if {name!r} changes nothing of the state; give "
                "them keys that read only what they need, e.g. keys={'target': lambda s: s['query']}",
                UserWarning,
                stacklevel=3,
            )
        out[name] = targets
    return out


def _recompile(compiled: CompiledStateGraph, builder: SpeculativeStateGraph) -> SpeculativeCompiledGraph:  # type: ignore[type-arg]
    """`builder` compiled the way `compiled` was."""
    before, after = compiled.interrupt_before_nodes, compiled.interrupt_after_nodes
    graph = builder.compile(
        checkpointer=compiled.checkpointer,
        store=compiled.store,
        cache=compiled.cache,
        interrupt_before=before if before else None,
        interrupt_after=after if after else None,
        debug=compiled.debug,
        name=compiled.name,
        transformers=list(compiled.stream_transformers) or None,
    )
    graph.retry_policy, graph.cache_policy = compiled.retry_policy, compiled.cache_policy
    graph.step_timeout = compiled.step_timeout
    return graph.with_config(compiled.config) if compiled.config else graph


def _for_graph(speculator: Any, builder: StateGraph, name: str) -> Any:  # type: ignore[type-arg]
    """A speculator that reads the graph it speculates (`speculator.for_graph(builder, node)`,
    e.g. `model_call_speculator` finding the tools a `model_speculator` offers its model)."""
    hook = getattr(speculator, "for_graph", None)
    return hook(builder, name) if callable(hook) else speculator


def _mapping(label: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"speculate({label}=...) must map node names to functions, got {type(value).__name__} "
            f"{value!r}; write {label}={{'node_name': fn}}"
        )
    return dict(value)


def _copy_builder(builder: StateGraph, *, specs: bool = False) -> SpeculativeStateGraph:  # type: ignore[type-arg]
    """A copy of `builder` whose containers are its own; with `specs`, its node specs too (a
    compile writes into them)."""
    new = SpeculativeStateGraph.__new__(SpeculativeStateGraph)
    for k, v in builder.__dict__.items():
        if k == "branches":
            v = defaultdict(dict, {n: dict(b) for n, b in v.items()})
        elif k == "nodes" and specs:
            v = {n: copy.copy(s) for n, s in v.items()}
        elif k == "_node_defaults":
            v = copy.copy(v)
        elif isinstance(v, (dict, set, list)):
            v = copy.copy(v)
        new.__dict__[k] = v
    new.compiled = False
    return new
