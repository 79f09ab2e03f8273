"""The threads sync runs speculate on: one event loop and its pool, shared by the process's
sync runs while any of them speculates.

A sync `invoke` cannot host coroutines, so its speculation runs on an event loop in a thread,
started the first time a run speculates and stopped when the last such run ends; sync actors,
speculators and branch nodes run on the loop's pool. Concurrent sync runs share both (a loop and
a pool per run cost each run its thread starts and the process its threads' contention). Pool
threads are daemons: sync code cannot be interrupted, and a losing call that is still running
when its run ends finishes in the background (its result discarded) rather than holding
`invoke` or the interpreter's exit; each run waits a bounded time for its own calls only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._context import current

__all__ = ("DaemonPool", "SessionLoop", "shared_loop", "release_shared_loop")

_SHARED_WORKERS = 4096  # the pool grows as calls need threads and reuses idle ones

PREFIX = "langgraph-speculative"


class DaemonPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool of daemon threads (an asyncio default executor must be a
    `ThreadPoolExecutor`; none of its own machinery is used)."""

    def __init__(self, max_workers: int, name: str) -> None:
        super().__init__(max_workers=1)
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, fn, args, kwargs))
            ctx = current()
            session = ctx.session if ctx is not None else None
            if session is not None:  # the run waits for its own calls when it ends
                session.track(future)
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
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # a worker outlives whatever its call raised
                    future.set_exception(exc)
            del item, future, fn, args, kwargs
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._workers)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if wait:
            for t in threads:
                t.join()

    def join(self, timeout: float) -> list[threading.Thread]:
        """Wait up to `timeout` s for the workers to end; the ones still running."""
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t for t in self._workers if t.is_alive()]


class SessionLoop:
    """An event loop in a daemon thread, with a `DaemonPool` as its default executor."""

    def __init__(self, workers: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = DaemonPool(workers, f"{PREFIX}-work")
        self.loop.set_default_executor(self.pool)
        self.thread = threading.Thread(target=self._run, name=f"{PREFIX}-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        while True:
            try:
                self.loop.run_forever()
                return  # stopped by close()
            except (KeyboardInterrupt, SystemExit):
                # raised by user code inside one of the loop's tasks, which holds it as its
                # exception: the loop itself goes on
                continue

    def close(self, join_timeout: float) -> None:
        """Stop the loop, shut the pool; warn about sync work that could not be stopped in time."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.pool.shutdown(wait=False, cancel_futures=True)
        alive = self.pool.join(join_timeout)
        self.loop.close()
        if alive:
            _warn_running(len(alive))


_LOCK = threading.Lock()
_SHARED: SessionLoop | None = None
_USERS = 0


def shared_loop() -> SessionLoop:
    """The loop (and pool) sync runs speculate on, started if no run holds it; give it back
    with `release_shared_loop`."""
    global _SHARED, _USERS
    with _LOCK:
        if _SHARED is None:
            _SHARED = SessionLoop(workers=_SHARED_WORKERS)
        _USERS += 1
        return _SHARED


def release_shared_loop(
    sloop: SessionLoop, mine: set[concurrent.futures.Future[Any]], timeout: float
) -> None:
    """A sync run ends: wait up to `timeout` s for its own sync calls (`mine`), and stop the
    loop and its pool if no other run holds them; warn about calls that could not be stopped."""
    global _SHARED, _USERS
    with _LOCK:
        _USERS -= 1
        last = _USERS == 0 and _SHARED is sloop
        if last:
            _SHARED = None
    if last:
        sloop.close(timeout)
        return
    pending = [f for f in list(mine) if not f.cancel()]  # the queued ones never start
    _, running = concurrent.futures.wait(pending, timeout)
    if running:
        _warn_running(len(running))


def _warn_running(n: int) -> None:
    warnings.warn(
        f"{n} speculative sync call(s) still running after the run ended; they "
        "finish in the background and their results are discarded (sync code cannot be "
        "interrupted: use async actors and speculators for instant cancellation)",
        RuntimeWarning,
        stacklevel=5,
    )


def _after_fork() -> None:  # a forked child has none of the parent's threads
    global _SHARED, _USERS, _LOCK
    _LOCK = threading.Lock()
    _SHARED, _USERS = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
