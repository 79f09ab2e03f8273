"""Where speculative work runs when the caller's own loop cannot host it: one event loop and one
thread pool for the whole process, shared by the graph path and the agents middleware.

Async runs do their speculative work on the run's own loop. A sync run (`invoke`, `stream`)
cannot host coroutines: its speculation runs on the *process loop*, a daemon thread started the
first time any run needs it and never closed while the process lives. Model clients keep pooled
connections bound to the loop that opened them (LangChain's OpenAI client keeps one async HTTP
client per process): a loop the library closed would leave them broken for the user's next call.

Sync work (sync speculators, sync actors of early calls, sync tools prefetched by the middleware)
runs through its sync path on the *process pool*, never through an async path on the process
loop: an async client used from two loops (the user's and ours) is what breaks. Its threads are
daemons: sync code cannot be interrupted, so a losing call that is still running when its run
ends finishes in the background, its result discarded; a call that has not started yet is
cancelled. Nothing waits for it, so a sync run is never slower for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = (
    "DaemonPool",
    "busy_calls",
    "has_sync_path",
    "offload",
    "process_loop",
    "process_pool",
    "sync_only",
)

_WORKERS = 4096  # the pool grows as calls need threads and reuses idle ones; work is bounded by the budget

PREFIX = "langgraph-speculative"


class DaemonPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool of daemon threads that never shuts down with the interpreter's executors
    (an asyncio default executor must be a `ThreadPoolExecutor`; none of its own machinery is used)."""

    def __init__(self, max_workers: int, name: str) -> None:
        super().__init__(max_workers=1)
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Calls running now (started, not finished)."""
        return self._busy

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._queue.put((future, fn, args, kwargs))
            if self._idle == 0 and len(self._workers) < self._max:
                name = f"{self._name}-{len(self._workers)}"
                t = threading.Thread(target=self._work, name=name, daemon=True)
                self._workers.append(t)
                t.start()
            else:
                self._idle = max(0, self._idle - 1)
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                with self._lock:
                    self._busy += 1
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # a worker outlives whatever its call raised
                    future.set_exception(exc)
                finally:
                    with self._lock:
                        self._busy -= 1
            del item, future, fn, args, kwargs
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The process pool lives as long as the process: nothing to shut down."""


class _ProcessLoop:
    """An event loop in a daemon thread, with the process pool as its default executor."""

    def __init__(self, pool: DaemonPool) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(pool)
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name=f"{PREFIX}-loop", daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        while True:
            try:
                self.loop.run_forever()
            except (KeyboardInterrupt, SystemExit):
                # raised by user code inside one of the loop's tasks, which holds it as its
                # exception: the loop itself goes on
                continue


_LOCK = threading.Lock()
_POOL: DaemonPool | None = None
_LOOP: _ProcessLoop | None = None


def process_pool() -> DaemonPool:
    """The pool sync speculative work runs on (started on first use, never shut down)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = DaemonPool(_WORKERS, f"{PREFIX}-work")
        return _POOL


def process_loop() -> asyncio.AbstractEventLoop:
    """The loop sync runs speculate on (started on first use, never closed while the process lives)."""
    global _LOOP
    pool = process_pool()
    with _LOCK:
        if _LOOP is None:
            # made in an empty context: the loop's own handles (its self-pipe reader) keep the
            # context they were made in, which would keep the first run's config (and its
            # Pregel loop) alive for the life of the process
            _LOOP = contextvars.Context().run(_ProcessLoop, pool)
        return _LOOP.loop


def busy_calls() -> int:
    """Speculative sync calls running on the process pool now."""
    return _POOL.busy if _POOL is not None else 0


def offload(fn: Callable[..., Any], /, *args: Any) -> asyncio.Future[Any]:
    """Run the sync `fn(*args)` on the process pool, in a copy of this context; an asyncio future
    on the running loop (cancelling it cancels the call if it has not started)."""
    ctx = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(process_pool(), ctx.run, fn, *args)


def has_sync_path(runnable: Any) -> bool:
    """Can `runnable.invoke` run without an event loop? False for a `RunnableLambda` or a
    LangGraph node built from an async function only (and sequences or bindings of one)."""
    func = getattr(runnable, "func", _MISSING)
    if func is not _MISSING:
        return func is not None
    if type(runnable).__name__ == "RunnableLambda":  # async-only: it has `afunc` and no `func`
        return False
    bound = getattr(runnable, "bound", None)
    if bound is not None and bound is not runnable:
        return has_sync_path(bound)
    steps = getattr(runnable, "steps", None)
    if isinstance(steps, list):
        return all(has_sync_path(s) for s in steps)
    return True


def sync_only(obj: Any) -> bool:
    """Is `obj` (a Runnable, a node, a tool, a `ToolNode`) sync code whose async path would only
    run it on the loop's default executor? Speculative work then runs its sync path on the
    process pool instead, where it cannot starve the main run's own calls of executor threads."""
    tools = getattr(obj, "tools_by_name", None)
    if isinstance(tools, dict):  # a ToolNode: its tools decide
        return bool(tools) and all(sync_only(t) for t in tools.values())
    if getattr(obj, "coroutine", _MISSING) is None:  # a StructuredTool / Tool made from a function
        return getattr(obj, "func", None) is not None
    arun = getattr(type(obj), "_arun", None)
    if arun is not None and callable(getattr(type(obj), "_run", None)):  # a BaseTool subclass
        from langchain_core.tools import BaseTool

        return isinstance(obj, BaseTool) and arun is BaseTool._arun
    func = getattr(obj, "func", _MISSING)
    if func is _MISSING or func is None:
        return False
    afunc = getattr(obj, "afunc", None)  # a RunnableLambda from a sync function has none
    # a LangGraph node from a sync function: its async path is `run_in_executor(None, func)`
    return afunc is None or (
        isinstance(afunc, functools.partial) and getattr(afunc.func, "__name__", "") == "run_in_executor"
    )


_MISSING = object()


def _after_fork() -> None:  # a forked child has none of the parent's threads
    global _POOL, _LOOP, _LOCK
    _LOCK = threading.Lock()
    _POOL, _LOOP = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
