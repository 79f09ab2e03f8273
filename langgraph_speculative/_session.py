"""The speculation session: everything speculation starts in one run.

One session lives for exactly one `invoke`/`stream` (or async twin) of a speculative graph. The
main run's nodes call in (`main_sync`/`main_async`): a call adopts an equal call a branch
launched early, or runs its actor while its speculator guesses beside it. Each guess gets a
branch: a fork of the checkpoint the call read (from the run's recorder, never the user's saver)
in an in-memory checkpointer of its own, resumed with the guess standing for the call's write.
On a branch (`branch_node`) every node runs as a call the main run may adopt; a branch stops at
the next speculative node (launched early), before a gate, unsafe node or store write, and at
the end of the graph.

All session state lives on the session's event loop (the caller's in async runs, a private one
in sync runs, see `_threads`); sync worker threads post to it. Whatever user code raises,
`BaseException` included, becomes an event or the run's own exception, never the loop's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphInterrupt

from ._adaptive import RunTuning
from ._branches import Forks
from ._budget import process_budget
from ._concurrency import SharedLimit
from ._context import Ctx, exec_info
from ._futures import Stale, flush, raised_by, settle, wait
from ._guesses import describe
from ._guessing import Guesser, step_of
from ._handoff import own_command, reraise
from ._keys import adoption_map, remap
from ._lifecycle import Lifecycle
from ._report import SpeculationReport
from ._state import Binding, Branch, Entry, Run, Source
from ._threads import has_sync_path, offload, process_loop, sync_only
from ._trace import stream_writer, streams_messages

if TYPE_CHECKING:
    from ._plan import Plan

__all__ = ("Session",)


_REGISTRY = 512  # task results kept for branches resuming the superstep they forked in


class Session(Lifecycle):
    """Runs and tracks the speculation of one graph run."""

    def __init__(self, plan: Plan, mode: Literal["sync", "async"], run: Run) -> None:
        self.plan = plan
        self.mode = mode
        self.run = run
        self.report = SpeculationReport()
        self.cache: dict[tuple[str, str], Entry] = {}
        self.cache_names: Counter[str] = Counter()
        self.results: OrderedDict[str, concurrent.futures.Future[Any]] = OrderedDict()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.branches: dict[str, Branch] = {}
        self.speculated: weakref.WeakSet[Entry] = weakref.WeakSet()  # calls with branches, early calls
        self.settled: list[tuple[str, str]] = []
        self.main_level = 0
        self.inflight = 0
        self.closed = False
        self.writer: Any = None
        self.writer_ctx: contextvars.Context | None = None
        self.main_ctx: Ctx | None = Ctx(self)
        self.budget = process_budget()  # the run is counted by whoever opened it (shed_run)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._results_lock = threading.Lock()
        self.run_id = ""
        self.streams_messages: bool | None = None  # is the main run streaming `messages`?
        self.adaptive = RunTuning(self)  # adaptive speculation and cost accounting (issue 18)
        self.limit = SharedLimit(run.max_concurrency)  # the run's max_concurrency, speculation included
        self.forks = Forks(self)  # branches and early calls
        self.guesser = Guesser(self)  # speculators and a branch per guess

    # ------------------------------------------------------------------ plumbing

    def emit(self, event: str, node: str, **data: Any) -> None:
        """Record an event and send it to the run's custom stream (on the session's loop)."""
        ev = self.report.add_event({"type": "speculation", "event": event, "node": node, **data})
        if (
            self.writer is not None
            and self.writer_ctx is not None
            and not self.closed
            and any(b.policy is not None and b.policy.stream_events for b in self.plan.bindings.values())
        ):
            try:
                self.writer_ctx.run(self.writer, dict(ev))
            except Exception:  # the stream may be gone; the report keeps the event
                self.writer = None

    def _note_writer(self, config: RunnableConfig) -> None:
        if self.streams_messages is None:
            self.streams_messages = streams_messages(config.get("callbacks"))
        if self.writer is None:
            writer = stream_writer()
            if writer is not None:
                self.writer_ctx = contextvars.copy_context()
                self.writer = writer

    def call(self, runnable: Any, arg: Any, config: RunnableConfig) -> Any:
        """An awaitable of `runnable` on `arg`, for speculative work on the session's loop.

        A sync run calls user code through its sync path on the process pool, so no client it
        shares with its caller is ever used from the library's loop. An async run awaits it on
        its own loop, except sync code (sync functions, sync tools), which runs on the process
        pool rather than the loop's default executor that the main run's own calls need."""
        if (self.mode == "sync" and has_sync_path(runnable)) or sync_only(runnable):
            return offload(runnable.invoke, arg, config)
        return runnable.ainvoke(arg, config)

    def spawn(self, coro: Any, holder: Branch | Entry | None = None) -> asyncio.Task[Any]:
        """Run `coro` as one of the session's tasks; with `holder`, give back the budget slot it
        holds when the task ends, however it ends (a task cancelled before it started never
        runs its own `finally`)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if holder is not None:
            task.add_done_callback(lambda _: self.release_slot(holder))
        return task

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            with self._loop_lock:
                if self.loop is None:
                    self.loop = process_loop()
        return self.loop

    def _soon(self, fn: Callable[..., Any], *args: Any, ctx: contextvars.Context | None = None) -> None:
        """From a worker thread (sync runs): run `fn(*args)` on the loop, in order, without waiting."""

        def call() -> None:
            try:
                (ctx.run(fn, *args) if ctx is not None else fn(*args))
            except BaseException as exc:  # kept as an event: the loop must go on
                self.emit("internal_error", "", error=describe(exc))

        self._ensure_loop().call_soon_threadsafe(call)

    def on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From a worker thread (sync runs): run `fn(*args)` on the loop and wait for its value."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:
                done.set_exception(exc)

        self._ensure_loop().call_soon_threadsafe(call)
        return done.result()

    def register(self, info: Any) -> concurrent.futures.Future[Any] | None:
        """The result of the running task, for branches that resume the superstep it is in."""
        tid = getattr(info, "task_id", None)
        if tid is None:
            return None
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._results_lock:
            self.results[tid] = fut
            while len(self.results) > _REGISTRY:
                self.results.popitem(last=False)
        return fut

    def _read(self, info: Any) -> str | None:
        """The root checkpoint a main-run task read (None in a subgraph)."""
        return source.checkpoint_id if (source := self._source(info)) is not None else None

    def _source(self, info: Any) -> Source | None:
        """Where a main-run call's branches fork from: the root checkpoint its task read."""
        if info is None or info.task_id is None or "|" in (info.checkpoint_ns or ""):
            return None
        return Source(self.run.recorder, info.checkpoint_id, info.task_id)

    # ------------------------------------------------------------------ the main run

    async def branch_node(self, b: Binding, state: Any, config: RunnableConfig, branch: Branch) -> Any:
        """A node reached on a branch (see `Forks.branch_node`)."""
        return await self.forks.branch_node(b, state, config, branch)

    def main_sync(self, b: Binding, state: Any, config: RunnableConfig) -> Any:
        """A node on the main run, sync mode (in a LangGraph worker thread)."""
        self._note_writer(config)
        if self._shed_outright(b):
            try:
                return b.action.invoke(state, config)
            except GraphInterrupt:
                self.plan.learn_gate(b.name, state)
                raise
        info, fut, over = self._enter()
        if over:
            self._soon(self._make_room, over)
        if self.guesser.groups or self.guesser.watches:
            self._soon(self.guesser.expire, step_of(config))
        try:
            result = self._main_sync(b, state, config, info)
        except BaseException as exc:
            self._leave(b, state, fut, None, exc)
            raise
        self._leave(b, state, fut, result, None)
        return result

    def _main_sync(self, b: Binding, state: Any, config: RunnableConfig, info: Any) -> Any:
        key = self._main_key(b, state, config, self._soon)
        marker: Entry | None = None
        # A round trip to the loop only when an early call is there to claim or a branch could
        # launch this call (a dict lookup is atomic).
        if key is not None and ((b.name, key) in self.cache or self.branches):
            entry, marker = self.on_loop(self._claim_or_mark, b, key, state, config, info)
            if entry is not None:
                try:
                    result = entry.result.result()
                except BaseException as exc:
                    if not raised_by(entry, exc):
                        raise
                    self._soon(self._adoption_failed, entry, exc)
                else:
                    if self._still_current(entry):
                        if not self.run.recorder.wait_stored_blocking(self._read(info)):
                            self.emit("checkpoint_wait_timeout", b.name)
                        if entry.store_ops:
                            self.run.store.batch(entry.store_ops)
                        flush(entry, config)
                        result = remap(result, entry.remap)
                        self._soon(self._finish, entry, result)
                        return reraise(result, config) if entry.handoff else result
                    self._soon(self._adoption_failed, entry, Stale())
        call = self._fresh(b, state, config, info)
        if call is not None:
            self._soon(self._begin_fresh, call, ctx=contextvars.copy_context())
        if b.prefetching and not self.closed:
            self._soon(self.guesser.prefetch, b, state, config)
        try:
            result = b.action.invoke(state, config)
        except BaseException as exc:
            handoff = own_command(exc, config, b.name)  # a handoff is the node's result
            self._own_call_over(call, marker, handoff, None if handoff else exc, self._soon)
            raise
        self._own_call_over(call, marker, result, None, self._soon)
        return result

    async def main_async(self, b: Binding, state: Any, config: RunnableConfig) -> Any:
        """A node on the main run, async mode."""
        self._note_writer(config)
        if self._shed_outright(b):
            try:
                return await b.action.ainvoke(state, config)
            except GraphInterrupt:
                self.plan.learn_gate(b.name, state)
                raise
        info, fut, over = self._enter()
        if over:
            self._make_room(over)
        if self.guesser.groups or self.guesser.watches:
            self.guesser.expire(step_of(config))
        try:
            result = await self._main_async(b, state, config, info)
        except BaseException as exc:
            self._leave(b, state, fut, None, exc)
            raise
        self._leave(b, state, fut, result, None)
        return result

    def _enter(self) -> tuple[Any, concurrent.futures.Future[Any] | None, int]:
        """A main-run call starts: its task's facts, its registered result, and how many
        speculative calls must make room for it under `max_concurrency`."""
        info = exec_info()
        return info, self.register(info), self.limit.main_started()

    def _leave(
        self,
        b: Binding,
        state: Any,
        fut: concurrent.futures.Future[Any] | None,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        """A main-run call is over: its result for branches resuming its superstep; a node
        seen interrupting becomes a gate."""
        self.limit.main_ended()
        settle(fut, result=result, exc=exc)
        if isinstance(exc, GraphInterrupt):
            self.plan.learn_gate(b.name, state)

    def _own_call_over(
        self, call: Entry | None, marker: Entry | None, result: Any, exc: BaseException | None, post: Any
    ) -> None:
        """The main run made the call itself: branches that followed it get its outcome, and its
        speculation settles (`post` runs each step on the loop: `_soon` or a direct call)."""
        if marker is not None:
            post(self._unmark, marker, result, exc)
        if call is not None:
            if exc is not None:
                post(self._abandon, call, exc)
            else:
                post(self._finish, call, result)

    async def _main_async(self, b: Binding, state: Any, config: RunnableConfig, info: Any) -> Any:
        key = self._main_key(b, state, config, _now)
        marker: Entry | None = None
        if key is not None:
            entry, marker = self._claim_or_mark(b, key, state, config, info)
            if entry is not None:
                try:
                    result = await wait(entry.result)
                except BaseException as exc:
                    if not raised_by(entry, exc):
                        raise
                    self._adoption_failed(entry, exc)
                else:
                    if self._still_current(entry):
                        if not await self.run.recorder.wait_stored(self._read(info)):
                            self.emit("checkpoint_wait_timeout", b.name)
                        if entry.store_ops:
                            await self.run.store.abatch(entry.store_ops)
                        flush(entry, config)
                        result = remap(result, entry.remap)
                        self._finish(entry, result)
                        return reraise(result, config) if entry.handoff else result
                    self._adoption_failed(entry, Stale())
        call = self._fresh(b, state, config, info)
        if call is not None:
            self._begin_fresh(call)
        if b.prefetching and not self.closed:
            self.guesser.prefetch(b, state, config)
        try:
            result = await b.action.ainvoke(state, config)
        except BaseException as exc:
            handoff = own_command(exc, config, b.name)  # a handoff is the node's result
            self._own_call_over(call, marker, handoff, None if handoff else exc, _now)
            raise
        self._own_call_over(call, marker, result, None, _now)
        return result

    def _main_key(self, b: Binding, state: Any, config: RunnableConfig, post: Any) -> str | None:
        """The key of a main-run call, when an early call, a branch or a prefetch that checks it
        could use it (`post` runs a step on the loop: `_soon` or a direct call)."""
        watched = b.name in self.guesser.watched
        if not (watched or self.cache_names.get(b.name) or self.branches):
            return None
        key = self._key(b, state)
        if watched and key is not None:
            post(self.guesser.seen, b.name, key, step_of(config))
        return key

    def _key(self, b: Binding, state: Any) -> str | None:
        """The adoption key of a main-run call; None (nothing adopted) when the key function fails."""
        try:
            return b.key(state)
        except BaseException as exc:  # a key function's failure must not change the run
            self.report.node(b.name).speculator_errors += 1
            if self.mode == "async":
                self.emit("key_error", b.name, error=describe(exc))
            else:
                self._soon(functools.partial(self.emit, "key_error", b.name, error=describe(exc)))
            return None

    def _may_speculate(self, b: Binding) -> bool:
        """May a main-run call of `b` speculate (a speculative node the run does not stop after,
        nor a gate)?"""
        return b.speculative and b.name not in self.run.after and b.name not in self.plan.gates

    def _fresh(self, b: Binding, state: Any, config: RunnableConfig, info: Any) -> Entry | None:
        """A main-run call that will speculate, if this node may."""
        if self.closed or not self._may_speculate(b):
            return None
        return Entry(b, None, 0, state, config, self._source(info), owner=None)

    def _claim_or_mark(
        self, b: Binding, key: str, state: Any, config: RunnableConfig, info: Any
    ) -> tuple[Entry | None, Entry | None]:
        """On the loop: (the early call the main run adopts, None), or (None, a marker of the main
        run's own call, cached so that a branch reaching the same call follows it instead of
        launching it a second time: after a hit the branch and the main run are one)."""
        entry = self._claim(b, key, state, config, info)
        if entry is not None:
            return entry, None
        if not self.branches or self.closed or (b.name, key) in self.cache:
            return None, None  # nothing could follow, or another main-run call holds the key
        marker = Entry(b, key, self.main_level, state, config, None, owner=None, main=True)
        self.cache[(b.name, key)] = marker
        self.cache_names[b.name] += 1
        return None, marker

    def _unmark(self, marker: Entry, result: Any, exc: BaseException | None) -> None:
        """On the loop: the main run's own call is over: branches that followed it get its outcome."""
        settle(marker.result, result=result, exc=exc)
        self._uncache(marker)

    def _claim(self, b: Binding, key: str, state: Any, config: RunnableConfig, info: Any) -> Entry | None:
        """On the loop: take the early call the main run can adopt for (node, key), if any."""
        entry = self.cache.get((b.name, key))
        if entry is None or entry.cancelled or entry.main:
            return None
        res = entry.result
        if res.done() and (res.cancelled() or res.exception() is not None):
            self._cancel_entry(entry, "failed")
            return None
        if not self._still_current(entry):
            self.emit("stale", b.name, key=key, reason="the store was written after the call read it")
            self._cancel_entry(entry, "stale")
            return None
        self._uncache(entry)
        entry.adopted = True
        stats = self.report.node(b.name)
        if b.speculative:
            stats.calls += 1
        stats.adopted += 1
        entry.hidden = max(0.0, (entry.finished or time.monotonic()) - entry.started)
        stats.time_saved_s += entry.hidden
        self.main_level = max(self.main_level, entry.level)
        self.emit("adopted", b.name, key=key, hidden_s=round(entry.hidden, 6), done=res.done())
        entry.remap = adoption_map(entry.state, state)  # its result gets the run's ids and messages
        if not entry.speculated:
            # Equal keys need not mean equal inputs (a custom key may ignore fields): its
            # speculation forks the main run's checkpoint, not the branch's.
            entry.state, entry.config, entry.source = state, config, self._source(info)
        self._prune()
        if not res.done():
            self.guesser.maybe_speculate(entry)
        self.guesser.deepen(entry)
        return entry

    def _still_current(self, entry: Entry) -> bool:
        """Did the main run leave the store as the early call found it (nothing written since it
        started)? Otherwise what it read may differ from what the main run's call would read."""
        store = self.run.store
        if store is None or not (entry.read_store or entry.store_ops):
            return True
        return bool(store.version == entry.store_version)

    def _begin_fresh(self, call: Entry) -> None:
        """On the loop: the main run makes this call itself; speculate beside it."""
        self.report.node(call.name).calls += 1
        self.main_level += 1
        call.level = self.main_level
        self._prune()
        self.guesser.maybe_speculate(call)

    def _adoption_failed(self, entry: Entry, exc: BaseException) -> None:
        self.emit("adopted_failed", entry.name, error=describe(exc))
        stats = self.report.node(entry.name)
        stats.adopted -= 1
        stats.time_saved_s -= getattr(entry, "hidden", 0.0)
        if entry.binding.speculative:
            stats.calls -= 1

    def _abandon(self, call: Entry, exc: BaseException) -> None:
        call.resolved = True
        self._cancel_entry(call, "interrupted" if isinstance(exc, GraphInterrupt) else "actor_failed")

    def _finish(self, entry: Entry, result: Any) -> None:
        """On the loop: the actor answered. Keep the branch whose guess matched, cancel the rest."""
        entry.resolved = True
        entry.finished = entry.finished or time.monotonic()
        if entry.spec_task is not None and not entry.spec_task.done():
            entry.spec_task.cancel()
            self.emit("speculator_late", entry.name)
        self.adaptive.observe(self, entry, result)  # adaptive speculation: learn (issue 18)
        live = [br for br in entry.branches if not br.cancelled]
        if not live:
            return
        hit: Branch | None = None
        for branch in live:
            try:
                ok = hit is None and bool(entry.binding.match(branch.guess.update, result))
            except BaseException as exc:  # a failing match is a miss, never the run's error
                ok = False
                self.emit("match_error", entry.name, error=describe(exc))
            if ok:
                hit = branch
                branch.outcome = "hit"
                branch.decided.set()
            else:
                self._cancel_branch(branch, "miss")
        stats = self.report.node(entry.name)
        if hit is not None:
            stats.hits += 1
            self.emit("hit", entry.name, rank=hit.rank, guesses=len(live))
            if not hit.entries:  # nothing launched yet: the main run is already where it would be
                hit.late = True
                self._cancel_branch(hit, "late")
        else:
            stats.misses += 1
            self.emit("miss", entry.name, guesses=len(live))

    def maybe_speculate(self, entry: Entry) -> None:
        """Start the speculator beside `entry` once `depth` allows (see `Guesser`)."""
        self.guesser.maybe_speculate(entry)


def _now(fn: Any, *args: Any) -> None:
    """Run a step of the main run's bookkeeping at once (async runs are on the session's loop)."""
    fn(*args)
