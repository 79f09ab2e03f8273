"""What a session tracks: actor calls (entries), branches, the context nodes see, and the
few lookups of LangGraph's runtime the session needs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import RunnableConfig

if TYPE_CHECKING:
    from ._node import SpeculativeNode
    from ._session import Session

__all__ = ("CONF_KEY", "BranchStop", "context_of")

CONF_KEY = "__speculation"


class BranchStop(Exception):
    """Raised inside a branch to end it at a slow node (not an error)."""


@dataclass
class _Ctx:
    session: Session
    branch: _Branch | None = None


def context_of(config: RunnableConfig | None) -> _Ctx | None:
    """The speculation context a node runs in, if any."""
    if not config:
        return None
    ctx = (config.get("configurable") or {}).get(CONF_KEY)
    return ctx if isinstance(ctx, _Ctx) else None


@dataclass(eq=False)
class _Entry:
    """One actor call, keyed by (node, key(input)), with its speculation."""

    node: SpeculativeNode
    name: str
    key: str
    level: int
    state: Any
    config: RunnableConfig
    source: RunnableConfig | None
    owner: _Branch | None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    task: asyncio.Future[Any] | None = None
    spec_task: asyncio.Task[None] | None = None
    branches: list[_Branch] = field(default_factory=list)
    speculated: bool = False
    resolved: bool = False
    cancelled: bool = False


@dataclass(eq=False)
class _Branch:
    """A fork of the state with one guess applied, running beside the main run."""

    entry: _Entry
    update: dict[str, Any]
    confidence: float | None
    level: int
    thread_id: str
    rank: int
    task: asyncio.Task[None] | None = None
    entries: list[_Entry] = field(default_factory=list)
    cancelled: bool = False
    outcome: str | None = None
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    # sync mode: the branch's fork and run, as they execute on the session's pool
    work: list[concurrent.futures.Future[Any]] = field(default_factory=list)
    discarded: bool = False
    deleted: bool = False

    @property
    def lost(self) -> bool:
        """Cancelled without being adopted: its thread can go."""
        return self.cancelled and self.outcome != "hit"


def _node_name(node: SpeculativeNode, config: RunnableConfig) -> str:
    return str((config.get("metadata") or {}).get("langgraph_node") or node.name)


def _source(config: RunnableConfig) -> RunnableConfig | None:
    """The checkpoint the running node read, to fork from (root graphs only)."""
    from langgraph.runtime import get_runtime

    try:
        info = get_runtime().execution_info
    except Exception:
        return None
    if info is None or info.thread_id is None or "|" in (info.checkpoint_ns or ""):
        return None
    return {
        "configurable": {
            "thread_id": info.thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": info.checkpoint_id,
        }
    }


def _current_run_tree() -> Any:
    """The LangSmith run of the current Runnable, when tracing is on."""
    try:
        from langsmith.run_helpers import get_current_run_tree
    except ImportError:  # pragma: no cover - langsmith ships with langchain-core
        return None
    return get_current_run_tree()


def _writer() -> Any:
    from langgraph.config import get_stream_writer

    try:
        return get_stream_writer()
    except Exception:
        return None


def _quiet(callbacks: Any) -> Any:
    """The run's callbacks without LangGraph's own stream handlers.

    Speculative work (branches, early calls, speculators) is traced like any
    other run, but must not reach the user's `messages` stream: a wrong
    branch's tokens would read as the agent's, and an adopted call's message
    is streamed when the main run adopts it. LangGraph's handlers are told
    apart by their module (they are not public classes).
    """

    def streams(h: Any) -> bool:
        return type(h).__module__.split(".")[0] == "langgraph"

    if isinstance(callbacks, list):
        return [h for h in callbacks if not streams(h)]
    if isinstance(callbacks, BaseCallbackManager):
        drop = [h for h in [*callbacks.handlers, *callbacks.inheritable_handlers] if streams(h)]
        if drop:
            callbacks = callbacks.copy()
            for h in drop:
                callbacks.remove_handler(h)
    return callbacks
