"""`SpeculativeNode`: the node wrapper a user adds with `add_node`."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import ensure_config

from ._keys import default_key, default_match
from ._policy import SpeculationPolicy
from ._session import context_of

__all__ = ("SpeculativeNode",)

_INJECTED = ("runtime", "writer", "store", "config")


class SpeculativeNode(Runnable[Any, Any]):
    """A node whose slow actor is raced by a fast speculator.

    Add it with `builder.add_node(name, SpeculativeNode(...))` and compile the
    builder through `speculate(builder).compile(...)`; `speculate` binds the
    node to the branch machinery. Outside a speculative graph it runs its actor
    only, exactly like a plain node.

    Args:
        action: the node's own function (sync or async) or Runnable: the actor.
        speculator: a function (sync or async) or Runnable that takes the
            node's input state and returns guesses of the node's update, best
            first: `Guess` objects or plain update dicts.
        policy: bounds on guessing (`SpeculationPolicy()` by default).
        key: maps the node's input to the adoption key. Default: a stable hash
            of the full input. Pass e.g. a board's FEN when that is all the
            actor reads.
        match: `match(guess_update, actual_update) -> bool`. Default: equality.
            Its contract: downstream actors read only what `match` compares.
        name: name used in events when the graph does not supply one.
    """

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
        self.action = as_runnable(action, "action")
        self.speculator = None if speculator is None else as_runnable(speculator, "speculator")
        if policy is None:
            policy = SpeculationPolicy()
        elif not isinstance(policy, SpeculationPolicy):
            raise TypeError(
                f"policy must be a SpeculationPolicy, got {type(policy).__name__}; "
                "write policy=SpeculationPolicy(k=3)"
            )
        self.policy = policy
        for label, fn in (("key", key), ("match", match)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be callable, got {type(fn).__name__}")
        self._key = key
        self.match: Callable[[Any, Any], bool] = match or default_match
        self.name = name or getattr(action, "__name__", None) or self.action.get_name()
        self._warned = False

    def key(self, state: Any) -> str:
        """The adoption key of `state` for this node."""
        if self._key is None:
            return default_key(state)
        return default_key(self._key(state))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node (sync)."""
        config = ensure_config(config)
        ctx = context_of(config)
        if ctx is None or not self.policy.enabled:
            self._warn_unbound(ctx)
            return self.action.invoke(input, config)
        if ctx.branch is not None:
            return ctx.session.branch_sync(self, input, config, ctx.branch)
        return ctx.session.call_sync(self, input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node (async)."""
        config = ensure_config(config)
        ctx = context_of(config)
        if ctx is None or not self.policy.enabled:
            self._warn_unbound(ctx)
            return await self.action.ainvoke(input, config)
        if ctx.branch is not None:
            return await ctx.session.branch_async(self, input, config, ctx.branch)
        return await ctx.session.call_async(self, input, config)

    def _warn_unbound(self, ctx: Any) -> None:
        if ctx is None and self.policy.enabled and not self._warned:
            self._warned = True
            warnings.warn(
                f"SpeculativeNode {self.name!r} ran without speculation: its graph was not "
                "compiled through speculate(). Write speculate(builder).compile(...) to "
                "enable branches.",
                UserWarning,
                stacklevel=3,
            )

    def __repr__(self) -> str:
        return f"SpeculativeNode({self.name!r}, policy={self.policy!r})"


def as_runnable(fn: Any, label: str) -> Runnable[Any, Any]:
    """A Runnable for a function (sync or async) or Runnable.

    Functions may ask for `config`, `runtime`, `writer` or `store` by
    parameter name, as LangGraph nodes do.
    """
    if isinstance(fn, Runnable):
        return fn
    if not callable(fn):
        raise TypeError(
            f"{label} must be a function (sync or async) or a Runnable, got {type(fn).__name__} {fn!r}"
        )
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
