"""Speculating an agent's own graph: guesses of its model call, from a tool-call speculator.

`speculate(create_agent(...), {"model": model_call_speculator(ToolPatternSpeculator())},
read_only_tools={...})` speculates the agent at graph level: while the model thinks, each
guessed tool call runs on a branch (if the tool only reads), and the branch goes on to the next
model call with the real tool result, so that call can start before the main run's model has
even answered (what a middleware cannot do). Adopted tool messages carry the main run's
tool-call ids.

What the middleware gives a tool-call speculator, the graph gives it too: `speculate(...)` hands
a `model_speculator` the tools of the graph's `ToolNode`s (`for_graph`), and the speculative
graph shows a learning speculator (`ToolPatternSpeculator`) every finished run (`observe`).
"""

from __future__ import annotations

import inspect
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langgraph_speculative import Guess

__all__ = ("model_call_speculator",)

_QUIET_CALLS = 8  # calls without a single guess before the speculator is reported


def _graph_tools(builder: Any) -> list[Any]:
    """The tools the `ToolNode`s of a `StateGraph` run (in node order, each once)."""
    try:
        from langgraph.prebuilt import ToolNode
    except ImportError:  # pragma: no cover - langgraph-prebuilt ships with langgraph
        return []
    tools: dict[str, Any] = {}
    for spec in getattr(builder, "nodes", {}).values():
        runnable = getattr(spec, "runnable", None)
        if isinstance(runnable, ToolNode):
            for name, tool in runnable.tools_by_name.items():
                tools.setdefault(name, tool)
    return list(tools.values())


class _Watch:
    """Counts a speculator's calls and guesses; reports once if it never guesses."""

    def __init__(self, speculator: Any, tools: Sequence[Any] | None) -> None:
        self.speculator = speculator
        self.tools = tools
        self.calls = 0
        self.guesses = 0
        self.junk: list[str] = []
        self.warned = False
        self.lock = threading.Lock()

    def reason(self) -> str | None:
        """Why it cannot guess at all (no tool schemas, junk answers), or None."""
        why = getattr(self.speculator, "why_no_guess", None)
        if callable(why):
            try:
                said = why(tools=self.tools) if _takes(why, "tools") else why()
            except Exception:  # pragma: no cover - a user's speculator
                said = None
            if said:
                return str(said)
        if self.junk:
            return f"its answers are not tool calls {{'name': ..., 'args': {{...}}}} (got {self.junk[0]})"
        return None

    def saw(self, made: int, node: str, junk: str | None = None) -> None:
        """One call made `made` guesses (and returned `junk` besides, if not None)."""
        with self.lock:
            self.calls += 1
            self.guesses += made
            if junk is not None and len(self.junk) < 3:
                self.junk.append(junk)
            if self.warned or self.guesses:
                return
            why = self.reason()
            if why is None and self.calls >= _QUIET_CALLS:
                if getattr(self.speculator, "runs", None) == 0:
                    why = f"in {self.calls} calls it has learned from no finished run (nothing observes)"
                else:
                    why = f"it returned no tool call in {self.calls} calls"
            if why is None:
                return
            self.warned = True
        warnings.warn(
            f"model_call_speculator({_name(self.speculator)}) for node {node!r} makes no guess: {why}. "
            "The node runs as without speculation.",
            UserWarning,
            stacklevel=2,
        )


class _CallSpeculator(RunnableLambda):  # type: ignore[type-arg]
    """A speculator for a model node: sync and async paths (a sync run uses the sync one, so it
    never touches an async client the user shares with their own loop); calling it awaits the
    async one, as the function it used to be."""

    acall: Any = None

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> Any:
        return self.acall(state, config)


def _is_async(fn: Any) -> bool:
    target = fn if inspect.isroutine(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn)


def _takes(fn: Any, param: str) -> bool:
    try:
        return param in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _name(speculator: Any) -> str:
    return getattr(speculator, "__name__", None) or type(speculator).__name__


def model_call_speculator(
    speculator: Callable[..., Any], *, k: int | None = None, tools: Sequence[Any] | None = None
) -> Callable[..., Any]:
    """A speculator for an agent's model node, from one that guesses its next tool calls.

    `speculator(state)` (sync or async; `ToolPatternSpeculator`, `model_speculator(...)`, or
    your own) returns guessed calls best first, as `{"name": ..., "args": {...}}` dicts with an
    optional `"confidence"`. Each becomes one guess of the model's reply: an `AIMessage` that
    makes that call. `k` keeps the first `k` of them (default: all; the policy's `k` applies too).

    `tools`: the agent's tools, for a speculator that needs their schemas (`model_speculator`);
    through `speculate(graph, {...: model_call_speculator(...)})` they default to the tools of
    the graph's `ToolNode`s. A speculator with an `observe(state, key=...)` method
    (`ToolPatternSpeculator`) is shown every finished run of the speculative graph, as the
    middleware shows it, and learns from the graph's own traffic. A speculator that never
    guesses is reported once (a `UserWarning` naming the node and why).
    """
    if not callable(speculator):
        raise TypeError(
            f"model_call_speculator() takes a tool-call speculator (a function state -> list of "
            f"{{'name', 'args'}} dicts), got {type(speculator).__name__}"
        )
    if tools is not None and (isinstance(tools, (str, dict)) or not isinstance(tools, Sequence)):
        raise TypeError(f"model_call_speculator(tools={tools!r}) must be a list of tools.")
    ainvoke = getattr(speculator, "ainvoke", None)
    invoke = getattr(speculator, "invoke", None) if callable(ainvoke) else None
    pass_tools = tools is not None and callable(ainvoke) and _takes(ainvoke, "tools")
    plain_fn = not callable(ainvoke)
    sync_capable = callable(invoke) or (plain_fn and not _is_async(speculator))
    watch = _Watch(speculator, tools)

    def as_guesses(raw: Any, config: RunnableConfig | None) -> list[Guess]:
        out = []
        junk = None
        for call in list(raw or [])[: k or None]:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                junk = junk or repr(call)[:60]
                continue
            tool_call = {
                "name": call["name"],
                "args": dict(call.get("args") or {}),
                # unique: a branch forked from a branch holds the earlier guess's call too, and
                # two calls sharing an id would read as one (ids count by position)
                "id": f"speculative-{uuid.uuid4().hex[:16]}",
                "type": "tool_call",
            }
            message = AIMessage(content="", tool_calls=[tool_call])
            out.append(Guess({"messages": [message]}, confidence=call.get("confidence")))
        node = str(((config or {}).get("metadata") or {}).get("langgraph_node") or "?")
        watch.saw(len(out), node, junk)
        return out

    def sync_guess(state: Any, config: RunnableConfig | None = None) -> list[Guess]:
        # the sync path: a sync run never uses an async client the user shares with their loop
        if callable(invoke):
            raw = invoke(state, tools=tools) if pass_tools else invoke(state)
        else:
            raw = speculator(state)
        return as_guesses(raw, config)

    async def async_guess(state: Any, config: RunnableConfig | None = None) -> list[Guess]:
        if callable(ainvoke):
            raw = await (ainvoke(state, tools=tools) if pass_tools else ainvoke(state))
        else:
            raw = speculator(state)
            if inspect.isawaitable(raw):
                raw = await raw
        return as_guesses(raw, config)

    name = f"model_call_speculator({_name(speculator)})"
    guess: Any = (
        _CallSpeculator(sync_guess, afunc=async_guess, name=name)
        if sync_capable
        else _CallSpeculator(async_guess, name=name)
    )
    guess.acall = async_guess

    def for_graph(builder: Any, node: str) -> Callable[..., Any]:
        """This speculator for node `node` of `builder`: given the graph's tools if it has none."""
        if tools is not None or getattr(speculator, "tools", None):  # given tools win
            return guess
        found = _graph_tools(builder)
        return model_call_speculator(speculator, k=k, tools=found) if found else guess

    guess.for_graph = for_graph
    observe = getattr(speculator, "observe", None)
    if callable(observe):
        guess.observe = observe
        aobserve = getattr(speculator, "aobserve", None)
        if callable(aobserve):
            guess.aobserve = aobserve
    return guess  # type: ignore[no-any-return]
