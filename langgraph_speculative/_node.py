"""Nodes as a speculative graph runs them: `SpeculativeNode` (public) and the binding wrapper
`speculate()` puts around every node."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
)
from langchain_core.runnables.config import ensure_config

from ._context import _CURRENT, SHED, Contained, Ctx
from ._keys import default_match
from ._policy import SpeculationPolicy
from ._report import note_plain_call, note_span, plain_run_report
from ._state import Binding

__all__ = ("Bound", "SpeculativeNode", "as_runnable")

_INJECTED = ("runtime", "writer", "store", "config")


def _unused(_: Any) -> Any:  # pragma: no cover - Bound overrides invoke, ainvoke and their streams
    raise NotImplementedError


async def _aunused(_: Any) -> Any:  # pragma: no cover - as `_unused`
    raise NotImplementedError


def native_async(runnable: Any) -> bool:
    """Does `runnable` run natively async (not a sync function on a thread)? As LangGraph asks
    of a node with a `TimeoutPolicy`: sequences and bindings are looked through, a function
    node is async when its async function is not the executor wrapper of a sync one, any other
    Runnable when it overrides `ainvoke`."""
    while isinstance(runnable, RunnableBinding):
        runnable = runnable.bound
    if isinstance(runnable, Bound):
        return native_async(runnable.binding.action)
    steps = getattr(runnable, "steps", None)  # RunnableSequence and LangGraph's own sequence
    if isinstance(steps, list) and steps and all(isinstance(s, Runnable) for s in steps):
        return all(native_async(s) for s in steps)
    if isinstance(runnable, RunnableParallel):
        return all(native_async(s) for s in runnable.steps__.values())
    if hasattr(runnable, "func_accepts") and hasattr(runnable, "afunc"):  # LangGraph's function node
        afunc = runnable.afunc
        if afunc is None:
            return False
        inner = getattr(afunc, "func", None) if isinstance(afunc, functools.partial) else None
        return getattr(inner, "__name__", "") != "run_in_executor"
    if isinstance(runnable, RunnableLambda):
        return bool(getattr(runnable, "afunc", False))
    return isinstance(runnable, Runnable) and type(runnable).ainvoke is not Runnable.ainvoke


class Bound(RunnableLambda):  # type: ignore[type-arg]
    """A node of a speculative graph: its actor, run as the speculation it belongs to directs.

    Outside a speculative run it is its actor. A `RunnableLambda` whose `deps` is the actor, so
    LangGraph still finds a subgraph the actor holds.
    """

    joins_any = False  # a SpeculativeNode inside a plain subgraph joins the parent's session

    def __init__(self, binding: Binding) -> None:
        super().__init__(_unused, name=binding.name)
        self.binding = binding

    @property
    def deps(self) -> list[Runnable[Any, Any]]:  # type: ignore[override]
        return [self.binding.action]

    @property
    def afunc(self) -> Callable[[Any], Any]:  # type: ignore[override]
        """Present exactly when the actor is natively async: LangGraph reads it to tell an async
        node (a node timeout needs one) from a sync one."""
        if native_async(self.binding.action):
            return _aunused
        raise AttributeError("afunc")

    def _ctx(self) -> Ctx | None:
        ctx = _CURRENT.get()
        if ctx is None or ctx.session is None:
            return None
        if not self.joins_any and ctx.session.plan.bindings.get(self.binding.name) is not self.binding:
            return None  # another graph's run (a graph invoked from inside a node): not ours
        return ctx

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node (sync)."""
        ctx = self._ctx()
        if ctx is None:
            self._unbound()
            plain = plain_run_report()
            if plain is None:
                return self.binding.action.invoke(input, config, **kwargs)
            started = time.monotonic()
            try:
                return self.binding.action.invoke(input, config, **kwargs)
            finally:
                note_plain_call(plain, self.binding.name, self.binding.speculative, started)
        config = config if config is not None else ensure_config()  # as LangGraph gave it
        binding = self._binding(config)
        session = ctx.session
        assert session is not None  # the run holds it while its nodes run
        if ctx.branch is not None:  # a sync subgraph on a branch, in one of the session's threads
            assert session.loop is not None
            coro = session.branch_node(binding, input, config, ctx.branch)
            return asyncio.run_coroutine_threadsafe(coro, session.loop).result()
        started = time.monotonic()
        try:
            return session.main_sync(binding, input, config)
        finally:
            note_span(session, binding.name, started)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node (async)."""
        ctx = self._ctx()
        if ctx is None:
            self._unbound()
            plain = plain_run_report()
            if plain is None:
                return await self.binding.action.ainvoke(input, config, **kwargs)
            started = time.monotonic()
            try:
                return await self.binding.action.ainvoke(input, config, **kwargs)
            finally:
                note_plain_call(plain, self.binding.name, self.binding.speculative, started)
        config = config if config is not None else ensure_config()  # as LangGraph gave it
        binding = self._binding(config)
        session = ctx.session
        assert session is not None  # the run holds it while its nodes run
        if ctx.branch is not None:
            return await session.branch_node(binding, input, config, ctx.branch)
        started = time.monotonic()
        try:
            return await session.main_async(binding, input, config)
        finally:
            note_span(session, binding.name, started)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """Run the node (sync), yielding its output once; LangGraph streams each node this way
        under a stream handler. Outside a speculative run, the actor's own stream."""
        if self._ctx() is None:
            self._unbound()
            yield from self.binding.action.stream(input, config, **kwargs)
            return
        yield self.invoke(input, config, **kwargs)

    async def astream(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Run the node (async), yielding its output once; LangGraph streams each node this way
        under `astream_events`/`astream_log`. Outside a speculative run, the actor's own stream."""
        if self._ctx() is None:
            self._unbound()
            async for chunk in self.binding.action.astream(input, config, **kwargs):
                yield chunk
            return
        yield await self.ainvoke(input, config, **kwargs)

    def _binding(self, config: RunnableConfig) -> Binding:
        return self.binding

    def _unbound(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.binding.name!r})"


class SpeculativeNode(Bound):
    """A node whose slow actor is raced by a fast speculator.

    Add it with `builder.add_node(name, SpeculativeNode(...))` and compile the builder through
    `speculate(builder).compile(...)`. Outside a speculative graph it runs its actor only,
    exactly like a plain node (with a one-time warning); inside a subgraph of a speculative
    graph it takes part in the parent's speculation.

    Args:
        action: the node's own function (sync or async) or Runnable: the actor.
        speculator: a function (sync or async) or Runnable that takes the node's input state and
            returns guesses of what the node returns, best first: `Guess` objects, update dicts
            or `Command`s. None: the node has no speculator of its own; branches still launch
            it early.
        policy: bounds on guessing (`SpeculationPolicy()` by default).
        key: maps the node's input to the adoption key. Default: a stable hash of the full
            input. Pass e.g. a board's FEN when that is all the actor reads.
        match: `match(guess, actual) -> bool`. Default: equality (message ids ignored). Its
            contract: downstream actors read only what `match` compares.
        name: name used in events when the graph does not supply one.
    """

    joins_any = True

    def __init__(
        self,
        action: Callable[..., Any] | Runnable[Any, Any],
        *,
        speculator: Callable[..., Any] | Runnable[Any, Any] | None,
        policy: SpeculationPolicy | None = None,
        key: Callable[[Any], Any] | None = None,
        match: Callable[[Any, Any], bool] | None = None,
        name: str | None = None,
    ) -> None:
        runnable = as_runnable(action, "action")
        spec = None if speculator is None else as_runnable(speculator, "speculator", contain=True)
        if policy is None:
            policy = SpeculationPolicy()
        elif not isinstance(policy, SpeculationPolicy):
            raise TypeError(
                f"policy must be a SpeculationPolicy, got {type(policy).__name__}; "
                "write policy=SpeculationPolicy(k=3)"
            )
        for label, fn in (("key", key), ("match", match)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be callable, got {type(fn).__name__}")
        super().__init__(
            Binding(
                name=name or getattr(action, "__name__", None) or runnable.get_name(),
                action=runnable,
                speculator=spec,
                policy=policy,
                key_fn=key,
                match=match or default_match,
                contained_action=None
                if isinstance(action, Runnable)
                else as_runnable(action, "action", contain=True),
            )
        )
        self._warned = False
        self._named: dict[str, Binding] = {}

    @property
    def action(self) -> Runnable[Any, Any]:
        """The actor."""
        return self.binding.action

    @property
    def speculator(self) -> Runnable[Any, Any] | None:
        """The speculator, if any."""
        return self.binding.speculator

    @property
    def policy(self) -> SpeculationPolicy:
        """Bounds on guessing."""
        assert self.binding.policy is not None
        return self.binding.policy

    @property
    def match(self) -> Callable[[Any, Any], bool]:
        """The matching function."""
        return self.binding.match

    def key(self, state: Any) -> str:
        """The adoption key of `state` for this node."""
        return self.binding.key(state)

    def _binding(self, config: RunnableConfig) -> Binding:
        """Named after the graph's node (a SpeculativeNode inside a plain subgraph)."""
        name = (config.get("metadata") or {}).get("langgraph_node") or self.binding.name
        binding = self._named.get(name)
        if binding is None:
            binding = self._named[name] = replace(self.binding, name=str(name))
        return binding

    def _unbound(self) -> None:
        if _CURRENT.get() is SHED or plain_run_report() is not None:  # a run that sheds or was refused
            return
        if self.policy.enabled and not self._warned:
            self._warned = True
            warnings.warn(
                f"SpeculativeNode {self.binding.name!r} ran without speculation: its graph was not "
                "compiled through speculate(). Write speculate(builder).compile(...) to "
                "enable branches.",
                UserWarning,
                stacklevel=4,
            )

    def __repr__(self) -> str:
        return f"SpeculativeNode({self.binding.name!r}, policy={self.policy!r})"


def as_runnable(fn: Any, label: str, *, contain: bool = False) -> Runnable[Any, Any]:
    """A Runnable for a function (sync or async) or Runnable.

    Functions may ask for `config`, `runtime`, `writer` or `store` by parameter name, as
    LangGraph nodes do. With `contain`, a `BaseException` the function raises comes out as
    `Contained` (an `Exception`), so it cannot stop the event loop speculative work runs on.
    """
    if isinstance(fn, Runnable):
        return fn
    if not callable(fn):
        raise TypeError(
            f"{label} must be a function (sync or async) or a Runnable, got {type(fn).__name__} {fn!r}"
        )
    if contain:
        fn = _contain(fn)
    try:
        params = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = set()
    wanted = [p for p in _INJECTED if p in params and p != "config"]
    name = getattr(fn, "__name__", label)
    if not wanted:
        return RunnableLambda(fn, name=name)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):

        async def acall(state: Any, config: RunnableConfig) -> Any:
            return await fn(state, **_inject(wanted, params, config))

        return RunnableLambda(acall, name=name)

    def call(state: Any, config: RunnableConfig) -> Any:
        return fn(state, **_inject(wanted, params, config))

    return RunnableLambda(call, name=name)


def _contain(fn: Any) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):

        @functools.wraps(fn)
        async def acontained(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except (Exception, asyncio.CancelledError):
                raise
            except BaseException as exc:
                raise Contained(exc) from None

        return acontained

    @functools.wraps(fn)
    def contained(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            raise
        except BaseException as exc:
            raise Contained(exc) from None

    return contained


def _inject(wanted: list[str], params: set[str], config: RunnableConfig) -> dict[str, Any]:
    from langgraph.config import get_store, get_stream_writer
    from langgraph.runtime import get_runtime

    out: dict[str, Any] = {"config": config} if "config" in params else {}
    getters: dict[str, Callable[[], Any]] = {
        "runtime": get_runtime,
        "writer": get_stream_writer,
        "store": get_store,
    }
    for p in wanted:
        out[p] = getters[p]()
    return out
