"""Checks of the agent a `SpeculativeToolCalls` middleware is put into.

Two moments give the middleware a look at its agent:

- **Construction.** `create_agent` reads every middleware's `tools` while it
  holds the whole middleware list, the tools and the `interrupt_before/after`
  lists in its frame. `agent_being_built()` finds that frame, so mistakes fail
  `create_agent` itself: an unknown tool in `read_only`, a tool gated by
  `HumanInTheLoopMiddleware`, an interrupt between the model and the tools,
  a tool-call middleware listed after this one (a served prefetch would skip it).
- **Every model call.** The request carries the agent's `BaseTool`s: what each
  read-only tool gets injected (state, store, `ToolRuntime`, its call id) is
  found there (`injected_args`), so an early call gets what the real one would.

A tool declares itself read-only the way MCP servers do (`ToolAnnotations.readOnlyHint`,
which `langchain-mcp-adapters` copies into `tool.metadata`): `declared_read_only`.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware
from langchain_core.tools import BaseTool
from langchain_core.tools.base import get_all_basemodel_annotations

__all__ = (
    "AgentView",
    "Injected",
    "agent_being_built",
    "check_agent",
    "declared_read_only",
    "gated_tools",
    "injected_args",
    "tool_name",
)


@dataclass
class AgentView:
    """What `create_agent` was given, as seen from one of its middleware."""

    middleware: list[Any]
    tools: list[Any]
    interrupt_before: list[str] = field(default_factory=list)
    interrupt_after: list[str] = field(default_factory=list)


def agent_being_built(max_depth: int = 8) -> AgentView | None:
    """The `create_agent` call on the stack (it is reading a middleware's `tools`), if any."""
    frame = sys._getframe(1)
    for _ in range(max_depth):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return None
        code = frame.f_code
        if code.co_name == "create_agent" and str(frame.f_globals.get("__name__", "")).startswith(
            "langchain.agents"
        ):
            local = frame.f_locals
            middleware = local.get("middleware")
            if not isinstance(middleware, Sequence):
                return None
            return AgentView(
                middleware=list(middleware),
                tools=list(local.get("tools") or []),
                interrupt_before=_names(local.get("interrupt_before")),
                interrupt_after=_names(local.get("interrupt_after")),
            )
    return None


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def tool_name(tool: Any) -> str | None:
    """The name an agent tool is called by: a `BaseTool`'s, a function's, a provider tool's."""
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, dict):
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        return str(name) if name else None
    return getattr(tool, "__name__", None)


def _overrides(mw: Any, *hooks: str) -> bool:
    return any(getattr(type(mw), h, None) is not getattr(AgentMiddleware, h) for h in hooks)


def check_agent(me: Any, read_only: Iterable[str], view: AgentView) -> None:
    """Raise `ValueError` when `create_agent`'s arguments make early tool calls unsafe."""
    read_only = sorted(read_only)
    me_name = type(me).__name__
    available: dict[str, bool] = {}  # name -> runs client-side
    for t in view.tools:
        if (name := tool_name(t)) is not None:
            available[name] = not isinstance(t, dict)
    for mw in view.middleware:
        if mw is me:
            continue
        for t in getattr(mw, "tools", None) or []:
            if (name := tool_name(t)) is not None:
                available[name] = True
    unknown = [n for n in read_only if n not in available]
    if unknown:
        raise ValueError(
            f"{me_name}(read_only=...) names {_list(unknown)}, not among the agent's tools "
            f"({_list(sorted(available)) or 'none'}). Fix the name(s) or remove them from read_only."
        )
    provider = [n for n in read_only if not available[n]]
    if provider:
        raise ValueError(
            f"{me_name}(read_only=...) names {_list(provider)}, a provider-side (built-in) tool that "
            "runs inside the model's own call and cannot be started early. Remove it from read_only."
        )
    for mw in view.middleware:
        if isinstance(mw, HumanInTheLoopMiddleware):
            gated = [n for n in read_only if n in (mw.interrupt_on or {})]
            if gated:
                raise ValueError(
                    f"{me_name}(read_only=...) lists {_list(gated)}, which {type(mw).__name__}"
                    f"(interrupt_on=...) gates: a gated call waits for a person's decision, so it can "
                    f"never run early. Remove {_list(gated)} from read_only (or from interrupt_on)."
                )
    stops = sorted(
        {n for n in view.interrupt_before if n in ("*", "tools") or n.endswith(".after_model")}
        | {n for n in view.interrupt_after if n in ("*", "model") or n.endswith(".after_model")}
    )
    if stops:
        raise ValueError(
            f"create_agent(interrupt_before/interrupt_after=...) pauses at {_list(stops)}, between the "
            f"model's reply and the tools: {me_name} would have run read-only tools before that pause. "
            f"Use HumanInTheLoopMiddleware for the tools that need a person (and leave them out of "
            f"read_only), or drop {me_name}."
        )
    mine = next((i for i, mw in enumerate(view.middleware) if mw is me), None)
    if mine is not None:
        inner = [
            type(mw).__name__
            for mw in view.middleware[mine + 1 :]
            if _overrides(mw, "wrap_tool_call", "awrap_tool_call")
        ]
        if inner:
            raise ValueError(
                f"{_list(inner)} wraps tool calls and is listed after {me_name}: a result fetched "
                f"early would skip it. Put {me_name} last in create_agent(middleware=[...])."
            )


def gated_tools(view: AgentView) -> set[str]:
    """The tools a `HumanInTheLoopMiddleware` of the agent may pause before."""
    return {
        n for mw in view.middleware if isinstance(mw, HumanInTheLoopMiddleware) for n in mw.interrupt_on or {}
    }


def declared_read_only(tool: Any) -> bool:
    """Whether `tool` declares that it only reads: `tool.metadata["readOnlyHint"] is True`.

    MCP servers declare it in `ToolAnnotations(readOnlyHint=True)`, which
    `langchain-mcp-adapters` copies into the LangChain tool's `metadata`; any
    LangChain tool may declare it the same way (`tool.metadata = {"readOnlyHint": True}`).
    Anything else (no metadata, `None`, `False`, a truthy non-bool) is not a declaration.
    """
    metadata = getattr(tool, "metadata", None) if isinstance(tool, BaseTool) else None
    return isinstance(metadata, dict) and metadata.get("readOnlyHint") is True


def _list(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


@dataclass(frozen=True)
class Injected:
    """What the agent's tool node injects into one tool's call (as `ToolNode` finds it)."""

    state: dict[str, str | None] = field(default_factory=dict)
    """Parameter -> the state field it gets (`None`: the whole state), from `InjectedState`."""
    store: str | None = None
    """The parameter that gets the store (`InjectedStore`)."""
    runtime: str | None = None
    """The parameter that gets the `ToolRuntime` (annotated `ToolRuntime`, or named `runtime`)."""
    call_id: bool = False
    """The tool reads its own call id (`InjectedToolCallId`)."""

    @property
    def reads_state(self) -> bool:
        """Whether the tool can see the agent's state (through `InjectedState` or its runtime)."""
        return bool(self.state) or self.runtime is not None


def _marks(hint: Any, kind: Any) -> list[Any]:
    """The `kind` markers in a type hint: `Annotated[..., kind()]`, `kind`, `kind[...]`, in unions."""
    if isinstance(hint, kind) or (isinstance(hint, type) and issubclass(hint, kind)):
        return [hint]
    origin = typing.get_origin(hint)
    if origin is typing.Annotated or origin is typing.Union or _is_union(origin):
        return [m for arg in typing.get_args(hint) for m in _marks(arg, kind)]
    if origin is not None and isinstance(origin, type) and issubclass(origin, kind):
        return [hint]
    return []


def _is_union(origin: Any) -> bool:
    import types

    return origin is getattr(types, "UnionType", None)


def injected_args(tool: BaseTool) -> Injected:
    """The arguments the agent's tool node injects into `tool`, found the way `ToolNode` finds
    them: the annotations of the tool's input schema (a pydantic model; a JSON-schema dict, as
    MCP tools have, declares nothing injected) and of its function's signature."""
    from langchain_core.tools import InjectedToolCallId
    from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime

    hints: dict[str, Any] = {}
    func = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
    if func is not None:
        try:
            hints.update(typing.get_type_hints(func, include_extras=True))
        except Exception:  # unresolvable forward references: the schema still tells
            pass
    hints.pop("return", None)
    if not isinstance(getattr(tool, "args_schema", None), dict):
        try:
            hints.update(get_all_basemodel_annotations(tool.get_input_schema()))
        except Exception:
            pass
    state: dict[str, str | None] = {}
    store: str | None = None
    runtime: str | None = None
    call_id = False
    for name, hint in hints.items():
        if name == "runtime" or _marks(hint, ToolRuntime):
            runtime = name
        for mark in _marks(hint, InjectedState)[:1]:
            state[name] = mark.field if isinstance(mark, InjectedState) else None
        if _marks(hint, InjectedStore):
            store = name
        if _marks(hint, InjectedToolCallId):
            call_id = True
    return Injected(state=state, store=store, runtime=runtime, call_id=call_id)
