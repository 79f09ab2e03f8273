"""The few lookups of LangChain's and LangGraph's run context the session needs: the traced run,
the stream writer, and callbacks without LangGraph's own stream handlers."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackManager

__all__ = ("current_run_tree", "quiet", "stream_writer")


def current_run_tree() -> Any:
    """The LangSmith run of the current Runnable, when tracing is on."""
    try:
        from langsmith.run_helpers import get_current_run_tree
    except ImportError:  # pragma: no cover - langsmith ships with langchain-core
        return None
    return get_current_run_tree()


def stream_writer() -> Any:
    """The running node's custom-stream writer, or None outside a node."""
    from langgraph.config import get_stream_writer

    try:
        return get_stream_writer()
    except Exception:
        return None


def quiet(callbacks: Any) -> Any:
    """The run's callbacks without LangGraph's own stream handlers.

    Speculative work (branches, early calls, speculators) is traced like any other run, but
    must not reach the user's `messages` stream: a wrong branch's tokens would read as the
    agent's, and an adopted call's message is streamed when the main run adopts it. LangGraph's
    handlers are told apart by their module (they are not public classes).
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
