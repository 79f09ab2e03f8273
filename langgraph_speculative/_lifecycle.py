"""Ending what a session started: cancelling losers, deleting their forks, closing.

`Session` mixes this in; it is apart only to keep modules small. A branch that
loses is deleted from the checkpointer once nothing of it runs any more (the
adopted ones stay), and the run then keeps only its `(thread, outcome)`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal

from ._entries import _Branch, _Entry
from ._guesses import describe

if TYPE_CHECKING:
    from ._compile import _Plan
    from ._report import SpeculationReport

__all__ = ("Lifecycle",)

_JOIN_TIMEOUT_S = 30.0


class Lifecycle:
    """Cancelling, discarding and closing, for `Session`."""

    plan: _Plan
    mode: Literal["sync", "async"]
    report: SpeculationReport
    cache: dict[tuple[str, str], _Entry]
    tasks: set[asyncio.Future[Any]]
    discards: set[asyncio.Future[Any]]
    branches: dict[str, _Branch]
    settled: list[tuple[str, str]]
    main_level: int
    closed: bool
    loop: asyncio.AbstractEventLoop | None
    _discard_lock: threading.Lock
    _thread: threading.Thread | None
    _pool: concurrent.futures.ThreadPoolExecutor | None

    def emit(self, event: str, node: str, **data: Any) -> None:
        raise NotImplementedError

    def _cancel_branch(self, branch: _Branch, why: str) -> None:
        if branch.cancelled:
            return
        branch.cancelled = True
        branch.outcome = branch.outcome if why == "closed" and branch.outcome else why
        branch.decided.set()
        if branch.task is not None and not branch.task.done():
            branch.task.cancel()
        self.report.node(branch.entry.name).cancelled += 1
        if not self.closed:
            self.emit("cancelled", branch.entry.name, thread=branch.thread_id, reason=why)
        for entry in branch.entries:
            if entry.owner is branch:
                self._cancel_entry(entry, why)
        self._discard(branch)

    def _discard(self, branch: _Branch) -> None:
        """Delete a lost branch's thread from the checkpointer once nothing of it runs.

        Called (from any thread) when the branch is cancelled and whenever a
        piece of its work ends; the last of them deletes. Losing forks would
        otherwise pile up in the user's saver (and, in memory, slow every
        garbage collection of the run). `close`/`aclose` sweep what is left.
        """
        if not branch.lost or branch.discarded:
            return
        if self.mode == "sync":
            if not all(f.done() for f in branch.work) or (branch.task is not None and not branch.task.done()):
                return
        elif branch.task is not None and not branch.task.done():
            return
        with self._discard_lock:
            if branch.discarded:
                return
            branch.discarded = True
        if self.mode == "async":
            task = asyncio.get_running_loop().create_task(self._adelete(branch))
            self.discards.add(task)
            task.add_done_callback(self.discards.discard)
        elif self._pool is not None and not self.closed:
            try:
                self._pool.submit(self._delete, branch)
            except RuntimeError:  # the pool is shutting down: `close` sweeps
                pass

    def _delete(self, branch: _Branch, settle: bool = False) -> None:
        """Sync mode, on the pool (or in `close` with `settle=True`)."""
        try:
            self.plan.saver.delete_thread(branch.thread_id)
            branch.deleted = True
        except Exception as exc:
            self.emit("discard_error", branch.entry.name, error=describe(exc))
            return
        if settle:
            self._settle(branch)
            return
        try:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self._settle, branch)
        except RuntimeError:  # the loop is closing: the branch stays listed as it is
            pass

    async def _adelete(self, branch: _Branch) -> None:
        try:
            await self.plan.saver.adelete_thread(branch.thread_id)
            branch.deleted = True
        except Exception as exc:
            self.emit("discard_error", branch.entry.name, error=describe(exc))
            return
        self._settle(branch)

    def _settle(self, branch: _Branch) -> None:
        """A lost branch is gone from the saver: keep its (thread, outcome) only.

        A long run must not hold every branch it ever tried (each holds its
        guess, its parent call's state and config): they would all be alive
        until the run ends and make every full garbage collection slower.
        """
        if self.branches.pop(branch.thread_id, None) is None:
            return
        self.settled.append((branch.thread_id, branch.outcome or "cancelled"))
        branch.work.clear()  # their done-callbacks point back at the branch
        branch.entries.clear()
        if branch in branch.entry.branches:
            branch.entry.branches.remove(branch)

    def _cancel_entry(self, entry: _Entry, why: str) -> None:
        if entry.cancelled:
            return
        entry.cancelled = True
        if self.cache.get((entry.name, entry.key)) is entry:
            del self.cache[(entry.name, entry.key)]
        if entry.spec_task is not None and not entry.spec_task.done():
            entry.spec_task.cancel()
        if entry.owner is not None:
            stats = self.report.node(entry.name)
            stats.wasted += 1
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
                entry.task = None  # its CancelledError's frames hold `entry`: no cycle
                stats.cancelled += 1
        for branch in entry.branches:
            self._cancel_branch(branch, why)

    def _prune(self) -> None:
        """Cancel early calls the main run has passed without adopting."""
        for entry in [e for e in self.cache.values() if e.level < self.main_level]:
            self._cancel_entry(entry, "stale")

    async def aclose(self) -> None:
        """Cancel everything this session started and wait for it to stop."""
        self.closed = True
        for entry in list(self.cache.values()):
            self._cancel_entry(entry, "closed")
        for branch in list(self.branches.values()):
            if branch.outcome == "hit":
                branch.cancelled = True
                branch.decided.set()
                for entry in branch.entries:
                    if entry.owner is branch:
                        self._cancel_entry(entry, "closed")
            else:
                self._cancel_branch(branch, "closed")
        # Re-cancel in rounds: a task may swallow one cancellation (asyncio.wait_for
        # on Python < 3.12 returns a result that finished as it was cancelled).
        while pending := [t for t in self.tasks if not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.05)
        if self.mode == "async":
            if self.discards:
                await asyncio.wait(list(self.discards))
            for branch in list(self.branches.values()):
                if branch.lost and not branch.deleted:
                    await self._adelete(branch)

    def close(self) -> None:
        """Sync twin of `aclose`: also joins every thread the session used."""
        assert self.loop is not None and self._thread is not None and self._pool is not None
        try:
            asyncio.run_coroutine_threadsafe(self.aclose(), self.loop).result()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + _JOIN_TIMEOUT_S
            for t in list(getattr(self._pool, "_threads", ())):
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    warnings.warn(
                        f"a speculative call is still running in thread {t.name} after "
                        f"{_JOIN_TIMEOUT_S:.0f}s; sync actors and speculators cannot be "
                        "interrupted, use async ones for instant cancellation",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            for branch in list(self.branches.values()):  # nothing of them runs any more
                if branch.lost and not branch.deleted:
                    self._delete(branch, settle=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()

    def branch_threads(self) -> list[tuple[str, str]]:
        """(thread id, outcome) of every branch: hit branches are committed."""
        return [
            *self.settled,
            *(
                (b.thread_id, "committed" if b.outcome == "hit" else (b.outcome or "cancelled"))
                for b in self.branches.values()
            ),
        ]
