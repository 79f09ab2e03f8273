"""Checks of the agent a `SpeculativeToolCalls` middleware is put into.

Two moments give the middleware a look at its agent:

- **Construction.** `create_agent` reads every middleware's `tools` while it
  holds the whole middleware list, the tools and the `interrupt_before/after`
  lists in its frame. `agent_being_built()` finds that frame, so mistakes fail
  `create_agent` itself: an unknown tool in `read_only`, a tool gated by
  `HumanInTheLoopMiddleware`, an interrupt between the model and the tools,
  a tool-call middleware listed after this one (a served prefetch would skip it).
- **First model call.** The request carries the agent's `BaseTool`s: a
  read-only tool that needs injected state, runtime or a tool-call id (which
  an early call cannot reproduce) is refused there.
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

__all__ = ("AgentView", "agent_being_built", "check_agent", "gated_tools", "store_arg", "tool_name")


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


def _list(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def store_arg(tool: BaseTool) -> str | None:
    """The parameter a read-only tool takes the store in, if any.

    Raises `ValueError` if the tool takes injected state, runtime or its tool-call
    id: an early call happens before the model's reply is in the state and
    before the call has its id, so its result could differ from the real one.
    """
    try:
        full = set(getattr(tool.get_input_schema(), "model_fields", {}))
        visible = set(getattr(tool.tool_call_schema, "model_fields", {}))
        annotations = get_all_basemodel_annotations(tool.get_input_schema())
    except Exception:  # JSON-schema tools have nothing injected
        return None
    from langgraph.prebuilt import InjectedStore

    store: str | None = None
    for name in sorted(full - visible):
        hint = annotations.get(name)
        marks = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated else ()
        if any(isinstance(m, InjectedStore) or m is InjectedStore for m in marks[1:]):
            store = name
            continue
        raise ValueError(
            f"read-only tool {tool.name!r} takes {name!r} injected by the agent (state, runtime or "
            "tool-call id), which an early call cannot reproduce: its result could differ from the "
            f"real call's. Remove {tool.name!r} from SpeculativeToolCalls(read_only=...)."
        )
    return store
