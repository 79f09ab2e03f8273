"""The threads a sync run speculates on: one event loop and a small pool, per run.

A sync `invoke` cannot host coroutines, so its speculation runs on an event loop of its own, in
a thread started the first time the run speculates; sync actors, speculators and branch nodes
run on the loop's pool. Both go when the run ends. Pool threads are daemons: sync code cannot be
interrupted, and a losing call that is still running when the run ends finishes in the
background (its result discarded) rather than holding `invoke` or the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ("DaemonPool", "SessionLoop")

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
            warnings.warn(
                f"{len(alive)} speculative sync call(s) still running after the run ended; they "
                "finish in the background and their results are discarded (sync code cannot be "
                "interrupted: use async actors and speculators for instant cancellation)",
                RuntimeWarning,
                stacklevel=4,
            )
