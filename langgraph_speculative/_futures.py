"""The small machinery around futures the session uses: waiting without cancelling, settling,
telling an early call's failure from the waiter's, and keeping `BaseException` off the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from ._context import Contained
from ._state import Entry
from ._trace import TokenRecorder, stream_writer

__all__ = (
    "Lost",
    "Stale",
    "cancelling",
    "contained",
    "flush",
    "raised_by",
    "recording_config",
    "settle",
    "unwrap",
    "wait",
)


class Lost(Exception):
    """A call the main run waited on was cancelled."""


class InputChanged(Exception):
    """An early call changed its input state in place: in a plain run the change stays in the
    channel's value, on a branch it was made to the branch's copy, so the main run makes the
    call itself."""

    def __str__(self) -> str:
        return "the call changed its input state in place"


class Stale(Exception):
    """The store changed while an adopted call ran: the main run makes the call itself."""

    def __str__(self) -> str:
        return "the store was written while the call ran"


def recording_config(config: RunnableConfig, entry: Entry, tokens: bool) -> RunnableConfig:
    """The config of an early call: its custom-stream writes (and, when the main run streams
    `messages`, its chat models' tokens) are kept for the run that adopts it."""
    conf = dict(config.get("configurable") or {})
    for k, v in conf.items():
        if isinstance(v, Runtime):
            conf[k] = v.override(stream_writer=entry.writes.append)
            break
    out: RunnableConfig = {**config, "configurable": conf}
    if tokens:
        callbacks = config.get("callbacks")
        inherited = callbacks.inheritable_metadata if isinstance(callbacks, BaseCallbackManager) else {}
        entry.tokens = TokenRecorder(
            {**inherited, **(config.get("metadata") or {})},
            [
                *(callbacks.inheritable_tags if isinstance(callbacks, BaseCallbackManager) else []),
                *(config.get("tags") or []),
            ],
        )
        if isinstance(callbacks, BaseCallbackManager):
            callbacks = callbacks.copy()
            callbacks.add_handler(entry.tokens, inherit=True)
        else:
            callbacks = [*(callbacks or []), entry.tokens]
        out["callbacks"] = callbacks
    return out


def flush(entry: Entry, config: RunnableConfig) -> None:
    """Send an adopted call's stream output to the main run's stream, in order: its
    custom-stream writes and its chat models' tokens."""
    if entry.writes:
        writer = stream_writer()
        if writer is not None:
            for chunk in entry.writes:
                writer(chunk)
        entry.writes.clear()
    if entry.tokens is not None:
        entry.tokens.replay(config.get("callbacks"))
        entry.tokens = None


def settle(
    fut: concurrent.futures.Future[Any] | None, *, result: Any = None, exc: BaseException | None = None
) -> None:
    if fut is None or fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def raised_by(entry: Entry, exc: BaseException) -> bool:
    """Did `exc` come from the early call (not from the waiting run being interrupted)?"""
    res = entry.result
    if not res.done():
        return False
    if res.cancelled():
        return isinstance(exc, (concurrent.futures.CancelledError, asyncio.CancelledError, Lost))
    return res.exception() is exc or isinstance(exc, Lost)


async def wait(fut: concurrent.futures.Future[Any]) -> Any:
    """Await a thread-safe future without ever cancelling it (others may wait on it too)."""
    if fut.done():
        if fut.cancelled() or isinstance(
            fut.exception(), (asyncio.CancelledError, concurrent.futures.CancelledError)
        ):
            raise Lost()
        return fut.result()
    loop = asyncio.get_running_loop()
    mine: asyncio.Future[Any] = loop.create_future()

    def copy_over(src: concurrent.futures.Future[Any]) -> None:
        if mine.done():
            return
        if src.cancelled() or isinstance(
            src.exception(), (asyncio.CancelledError, concurrent.futures.CancelledError)
        ):
            mine.set_exception(Lost())
        elif src.exception() is not None:
            mine.set_exception(src.exception())  # type: ignore[arg-type]
        else:
            mine.set_result(src.result())

    fut.add_done_callback(lambda src: loop.call_soon_threadsafe(copy_over, src))
    return await mine


async def contained(aw: Any) -> Any:
    try:
        return await aw
    except asyncio.CancelledError:
        raise
    except Exception:
        raise
    except BaseException as exc:
        raise Contained(exc) from None


def unwrap(exc: BaseException) -> BaseException:
    return exc.exc if isinstance(exc, Contained) else exc


def cancelling() -> bool:
    """Is the running task being cancelled (by us), rather than seeing user code raise?"""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return True if cancelling is None else bool(cancelling())
