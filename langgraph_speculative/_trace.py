"""The few lookups of LangChain's and LangGraph's run context the session needs: the traced run,
the stream writer, and callbacks without LangGraph's own stream handlers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langsmith import utils as ls_utils

__all__ = ("TokenRecorder", "current_run_tree", "quiet", "stream_writer", "streams_messages")


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


_EVENT_STREAMS = ("langchain_core.tracers.event_stream", "langchain_core.tracers.log_stream")
"""Where `astream_events` and `astream_log` keep their handlers (LangGraph Server's "events")."""


def quiet(callbacks: Any, *, event_streams: bool = True) -> Any:
    """The run's callbacks without LangGraph's own stream handlers, nor (with `event_streams`)
    `astream_events`' and `astream_log`'s.

    Speculative work (branches, early calls, speculators) is traced like any other run, but
    must not reach the user's `messages` stream: a wrong branch's tokens would read as the
    agent's, and an adopted call's message is streamed when the main run adopts it. LangGraph's
    handlers are told apart by their module (they are not public classes).
    """

    def streams(h: Any) -> bool:
        module = type(h).__module__
        return module.split(".")[0] == "langgraph" or (event_streams and module in _EVENT_STREAMS)

    if isinstance(callbacks, list):
        return [h for h in callbacks if not streams(h)]
    if isinstance(callbacks, BaseCallbackManager):
        drop = [h for h in [*callbacks.handlers, *callbacks.inheritable_handlers] if streams(h)]
        if drop:
            callbacks = callbacks.copy()
            for h in drop:
                callbacks.remove_handler(h)
    return callbacks


def untraced(callbacks: Any) -> bool:
    """No handler would see a child run under `callbacks`, and LangSmith tracing is off.

    Then speculative work skips the traced wrapper run (a `RunnableLambda` call costs about
    0.2 ms, per branch) and runs its body directly: nothing could have recorded the wrapper.
    """
    if callbacks is not None and not isinstance(callbacks, (list, BaseCallbackManager)):
        return False
    return not handlers_of(callbacks) and not ls_utils.tracing_is_enabled()


def handlers_of(callbacks: Any) -> list[Any]:
    """The handlers of a run's callbacks (a list or a manager), each once."""
    if isinstance(callbacks, list):
        return list(callbacks)
    if isinstance(callbacks, BaseCallbackManager):
        return [
            *callbacks.handlers,
            *(h for h in callbacks.inheritable_handlers if h not in callbacks.handlers),
        ]
    return []


def streams_messages(callbacks: Any) -> bool:
    """Is the run streaming `messages` (LangGraph's v1 token handler among its callbacks)?"""
    return any(
        type(h).__name__ == "StreamMessagesHandler" and type(h).__module__.startswith("langgraph")
        for h in handlers_of(callbacks)
    )


class TokenRecorder(BaseCallbackHandler):
    """Records an early call's chat-model runs (start, tokens, end) for the run that adopts it.

    It has the two `tap_output_*` methods of LangChain's streaming-handler protocol, so a chat
    model streams while it is attached: only when the main run streams `messages` too, so the
    model is called the same way it would have been.
    """

    def __init__(self, context_metadata: dict[str, Any], context_tags: list[str]) -> None:
        super().__init__()
        self.events: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []
        self._lock = threading.Lock()
        # what the early call's runs inherit from the branch; the rest is the model's own
        self._context_metadata = context_metadata
        self._context_tags = set(context_tags)

    def _add(self, kind: str, run_id: Any, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.events.append((kind, run_id, args, kwargs))

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any) -> None:
        self._add(
            "start", run_id, serialized, messages, tags=kwargs.get("tags"), metadata=kwargs.get("metadata")
        )

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: Any, **kwargs: Any) -> None:
        self._add("token", run_id, token, chunk=chunk)

    def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
        self._add("end", run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        self._add("error", run_id, error)

    def tap_output_aiter(self, run_id: Any, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return output

    def tap_output_iter(self, run_id: Any, output: Iterator[Any]) -> Iterator[Any]:
        return output

    def replay(self, callbacks: Any) -> None:
        """Send the recorded runs to the main node's LangGraph stream handlers, as if they had
        happened under it (its metadata, new run ids); tracing handlers are not told twice."""
        if not isinstance(callbacks, BaseCallbackManager):
            return
        targets = [h for h in handlers_of(callbacks) if type(h).__module__.startswith("langgraph")]
        if not targets:
            return
        ids: dict[Any, Any] = {}
        with self._lock:
            events = list(self.events)
        for kind, run_id, args, kwargs in events:
            new: Any
            if kind == "start":
                ids[run_id] = new = uuid.uuid4()
                own = {
                    k: v
                    for k, v in (kwargs.get("metadata") or {}).items()
                    if k not in self._context_metadata or self._context_metadata[k] != v
                }
                metadata = {**callbacks.inheritable_metadata, **own}
                own_tags = [t for t in kwargs.get("tags") or [] if t not in self._context_tags]
                tags = [
                    *callbacks.inheritable_tags,
                    *(t for t in own_tags if t not in callbacks.inheritable_tags),
                ]
                for h in targets:
                    h.on_chat_model_start(
                        *args,
                        run_id=new,
                        parent_run_id=callbacks.parent_run_id,
                        tags=tags,
                        metadata=dict(metadata),
                    )
                continue
            new = ids.get(run_id)
            if new is None:  # a run that started before the recorder was attached
                continue
            for h in targets:
                if kind == "token":
                    h.on_llm_new_token(*args, chunk=kwargs.get("chunk"), run_id=new)
                elif kind == "end":
                    h.on_llm_end(*args, run_id=new)
                else:
                    h.on_llm_error(*args, run_id=new)
