"""What a session holds of its speculation and how it lets go: budget slots taken and given
back (and a main-run call that skips speculation on a busy process), cancelling losers (and
early calls that must make room for the main run), letting go of their forks, closing.

`Session` inherits this: the bookkeeping of everything its `Forks` and `Guesser` start. A branch
lives in an in-memory checkpointer of its own, so a lost branch leaves nothing anywhere once the
session forgets it: the run then keeps only its `(branch id, outcome)`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from ._state import Binding, Branch, Entry

if TYPE_CHECKING:
    import concurrent.futures
    import weakref
    from collections import Counter, OrderedDict

    from ._budget import ProcessBudget
    from ._concurrency import SharedLimit
    from ._plan import Plan
    from ._report import SpeculationReport

__all__ = ("Lifecycle",)


class Lifecycle:
    """Cancelling, discarding and closing, for `Session`."""

    plan: Plan
    mode: Literal["sync", "async"]
    report: SpeculationReport
    cache: dict[tuple[str, str], Entry]
    cache_names: Counter[str]
    tasks: set[asyncio.Future[Any]]
    branches: dict[str, Branch]
    settled: list[tuple[str, str]]
    main_level: int
    closed: bool
    budget: ProcessBudget
    loop: asyncio.AbstractEventLoop | None
    inflight: int
    limit: SharedLimit
    results: OrderedDict[str, concurrent.futures.Future[Any]]
    speculated: weakref.WeakSet[Entry]
    main_ctx: Any
    writer: Any
    writer_ctx: Any
    _results_lock: threading.Lock

    def emit(self, event: str, node: str, **data: Any) -> None:
        raise NotImplementedError

    def _may_speculate(self, b: Binding) -> bool:
        raise NotImplementedError

    def _shed_outright(self, b: Binding) -> bool:
        """Should this main-run call skip speculation altogether? When the process is busy and
        nothing the run speculated could use it (no branch, no early call): it then costs what
        the plain graph's call costs (no registry, no entry, no trip to the session's loop)."""
        if self.branches or self.cache or self.closed or not self.budget.shedding():
            return False
        if self._may_speculate(b):
            stats = self.report.node(b.name)  # counted as `_begin_fresh` would have
            with self._results_lock:  # sync runs count from LangGraph's worker threads
                stats.calls += 1
                stats.shed += 1
        return True

    def acquire(self) -> str | None:
        """Take a slot of the run's `max_inflight` and of the process budget for a branch or an
        early call; None on success, else why not."""
        if self.inflight >= self.plan.max_inflight:
            return "budget"
        why = self.budget.acquire()
        if why is None:
            self.inflight += 1
            self.report.peak_inflight = max(self.report.peak_inflight, self.inflight)
        return why

    def not_started(self, node: str, why: str) -> None:
        """Speculation not started: over `max_inflight`, the process budget or the run's
        `max_concurrency`, or a busy process."""
        self.report.node(node).shed += 1
        self.emit(why if why in ("budget", "max_concurrency") else "shed", node, inflight=self.inflight)

    def _make_room(self, n: int) -> None:
        """On the loop: a main-run call needs room under `max_concurrency` that speculation
        holds; cancel the `n` newest early calls still running."""
        running = [e for e in self.cache.values() if e.task is not None and not e.task.done()]
        for entry in sorted(running, key=lambda e: e.started, reverse=True)[:n]:
            self.emit("make_room", entry.name, key=entry.key, limit=self.limit.limit)
            self._cancel_entry(entry, "max_concurrency")

    def _release(self) -> None:
        self.inflight -= 1
        self.budget.release()

    def release_slot(self, owner: Branch | Entry) -> None:
        """Give back the budget slot a branch or an early call holds (once)."""
        if owner.slot:
            owner.slot = False
            self._release()

    def _uncache(self, entry: Entry) -> None:
        if entry.key is not None and self.cache.get((entry.name, entry.key)) is entry:
            del self.cache[(entry.name, entry.key)]
            self.cache_names[entry.name] -= 1
            if self.cache_names[entry.name] <= 0:
                del self.cache_names[entry.name]

    def _cancel_branch(self, branch: Branch, why: str) -> None:
        if branch.cancelled:
            return
        branch.cancelled = True
        branch.outcome = branch.outcome if why in ("closed", "late") and branch.outcome else why
        branch.decided.set()
        if branch.task is not None and not branch.task.done():
            branch.task.cancel()
        self.report.node(branch.parent.name).cancelled += 1
        if not self.closed:
            self.emit("cancelled", branch.parent.name, thread=branch.bid, reason=why)
        for entry in branch.entries:
            if entry.owner is branch:
                self._cancel_entry(entry, why)
        self.discard(branch)

    def _cancel_entry(self, entry: Entry, why: str) -> None:
        if entry.cancelled or entry.adopted:
            return
        entry.cancelled = True
        self._uncache(entry)
        if entry.spec_task is not None and not entry.spec_task.done():
            entry.spec_task.cancel()
        if entry.owner is not None:
            stats = self.report.node(entry.name)
            stats.wasted += 1
            stats.wasted_s += (entry.finished or time.monotonic()) - entry.started
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
                stats.cancelled += 1
            entry.task = None  # its CancelledError's frames hold `entry`: no cycle
            if not entry.result.done():
                entry.result.cancel()
        for branch in entry.branches:
            self._cancel_branch(branch, why)

    def discard(self, branch: Branch, ending: bool = False) -> None:
        """Forget a lost branch once nothing of it runs: keep only its (id, outcome).

        A long run must not hold every branch it tried (each holds its guess, its forked
        checkpointer, its parent call's state and config): they would all stay alive until the
        run ends and make every full garbage collection slower.
        """
        if not branch.lost or (not ending and branch.task is not None and not branch.task.done()):
            return
        if self.branches.pop(branch.bid, None) is None:
            return
        self.settled.append((branch.bid, branch.outcome or "cancelled"))
        branch.entries.clear()
        branch.saver = None
        if branch in branch.parent.branches:
            branch.parent.branches.remove(branch)

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
            if branch.outcome == "hit" and not branch.cancelled:
                branch.cancelled = True
                branch.decided.set()
                if branch.task is not None and not branch.task.done():
                    branch.task.cancel()
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
        for branch in list(self.branches.values()):
            self.discard(branch)

    def close(self) -> None:
        """Sync twin of `aclose`, from the run's thread: cancel on the process loop. Sync calls
        still running on the process pool are not waited for (sync code cannot be interrupted):
        they finish in the background and their results are discarded."""
        try:
            if self.loop is not None:
                asyncio.run_coroutine_threadsafe(self.aclose(), self.loop).result()
            else:
                self.closed = True
        finally:
            self.budget.run_ended()

    async def aclose_all(self) -> None:
        """`aclose`, then give the run's budget back (async runs)."""
        try:
            await self.aclose()
        finally:
            self.budget.run_ended()

    def release(self) -> None:
        """After the run: break the session's reference cycles, so that what the run held is freed
        at once rather than by the cyclic collector (whose full passes cost a busy process)."""
        self.main_ctx = None
        self.writer = self.writer_ctx = None
        self.results.clear()
        self.cache.clear()
        self.tasks.clear()
        for branch in self.branches.values():  # the kept (hit) ones: a call and its branches
            branch.entries.clear()  # refer to each other
            branch.saver = None
        self.branches.clear()
        # a branch's run may end in LangGraph's own reference cycles (a node's exception kept by
        # its runner's frames), which reach its calls: none of them may still hold a run's
        # config (the main run's holds its Pregel loop) or state
        for entry in list(self.speculated):
            entry.branches.clear()
            entry.config, entry.state = {}, None

    def branch_outcomes(self) -> list[tuple[str, str]]:
        """(branch id, outcome) of every branch: hit branches are committed."""
        return [
            *self.settled,
            *(
                (
                    b.bid,
                    ("late" if b.late else "committed") if b.outcome == "hit" else (b.outcome or "cancelled"),
                )
                for b in self.branches.values()
            ),
        ]
