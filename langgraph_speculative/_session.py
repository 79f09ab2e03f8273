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
import copy
import functools
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphInterrupt

from ._adaptive import RunTuning
from ._branches import Branches
from ._budget import process_budget
from ._context import Ctx, exec_info
from ._futures import Stale, cancelling, contained, flush, raised_by, settle, unwrap, wait
from ._guesses import coerce_guesses, describe, jsonable
from ._keys import remap, tool_call_ids
from ._lifecycle import Lifecycle
from ._report import SpeculationReport
from ._state import Binding, Branch, Entry, Source
from ._tee import RecordingSaver
from ._threads import SessionLoop, shared_loop
from ._trace import quiet, stream_writer, streams_messages

if TYPE_CHECKING:
    from ._plan import Plan

__all__ = ("Run", "Session")

_REGISTRY = 512  # task results kept for branches resuming the superstep they forked in


@dataclass
class Run:
    """What one run of a speculative graph is: its graph, config and everything branches share."""

    graph: Any  # the main run's graph: the compiled graph with the recording saver and store
    config: RunnableConfig
    recorder: RecordingSaver
    thread_id: str | None
    store: Any  # MainStore or None
    cache: Any
    context: Any
    before: frozenset[str]
    after: frozenset[str]
    recursion_limit: int
    conf: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Session(Branches, Lifecycle):
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
        self.settled: list[tuple[str, str]] = []
        self.main_level = 0
        self.inflight = 0
        self.closed = False
        self.writer: Any = None
        self.writer_ctx: contextvars.Context | None = None
        self.main_ctx: Ctx | None = Ctx(self)
        self.budget = process_budget()  # the run is counted by whoever opened it (shed_run)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sloop: SessionLoop | None = None
        self.pool_work: set[concurrent.futures.Future[Any]] = set()
        self._loop_lock = threading.Lock()
        self._results_lock = threading.Lock()
        self.run_id = ""
        self.streams_messages: bool | None = None  # is the main run streaming `messages`?
        self.adaptive = RunTuning(self)  # adaptive speculation and cost accounting (issue 18)

    def release(self) -> None:
        """After the run: break the session's reference cycles, so that what the run held (its
        recorded checkpoints, its graph, its state) is freed at once rather than by the cyclic
        collector, whose full passes cost every run of a busy process."""
        self.main_ctx = None
        self.writer = self.writer_ctx = None
        self.results.clear()
        self.cache.clear()
        self.tasks.clear()

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

    def track(self, future: concurrent.futures.Future[Any]) -> None:
        """A sync call of this run's speculation, on the shared pool: waited for at the end."""
        self.pool_work.add(future)
        future.add_done_callback(self.pool_work.discard)

    def _spawn(self, coro: Any, holder: Branch | Entry | None = None) -> asyncio.Task[Any]:
        """Run `coro` as one of the session's tasks; with `holder`, give back the budget slot it
        holds when the task ends, however it ends (a task cancelled before it started never
        runs its own `finally`)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if holder is not None:
            task.add_done_callback(lambda _: self._release_slot(holder))
        return task

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            with self._loop_lock:
                if self.loop is None:
                    self._sloop = shared_loop()
                    self.loop = self._sloop.loop
        return self.loop

    def _soon(self, fn: Callable[..., Any], *args: Any, ctx: contextvars.Context | None = None) -> None:
        """From a worker thread (sync runs): run `fn(*args)` on the loop, in order, without waiting."""

        def call() -> None:
            try:
                (ctx.run(fn, *args) if ctx is not None else fn(*args))
            except BaseException as exc:  # kept as an event: the loop must go on
                self.emit("internal_error", "", error=describe(exc))

        self._ensure_loop().call_soon_threadsafe(call)

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From a worker thread (sync runs): run `fn(*args)` on the loop and wait for its value."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:
                done.set_exception(exc)

        self._ensure_loop().call_soon_threadsafe(call)
        return done.result()

    def _register(self, info: Any) -> concurrent.futures.Future[Any] | None:
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

    def _source(self, info: Any) -> Source | None:
        """Where a main-run call's branches fork from: the root checkpoint its task read."""
        if info is None or info.task_id is None or "|" in (info.checkpoint_ns or ""):
            return None
        return Source(self.run.recorder, info.checkpoint_id, info.task_id)

    def _acquire(self) -> str | None:
        if self.inflight >= self.plan.max_inflight:
            return "budget"
        why = self.budget.acquire()
        if why is None:
            self.inflight += 1
            self.report.peak_inflight = max(self.report.peak_inflight, self.inflight)
        return why

    def _not_started(self, node: str, why: str) -> None:
        """Speculation not started: over `max_inflight` or the process budget, or a busy process."""
        self.report.node(node).shed += 1
        self.emit("budget" if why == "budget" else "shed", node, inflight=self.inflight)

    def _release(self) -> None:
        self.inflight -= 1
        self.budget.release()

    # ------------------------------------------------------------------ the main run

    def main_sync(self, b: Binding, state: Any, config: RunnableConfig) -> Any:
        """A node on the main run, sync mode (in a LangGraph worker thread)."""
        self._note_writer(config)
        if self._shed_outright(b):
            try:
                return b.action.invoke(state, config)
            except GraphInterrupt:
                self.plan.learn_gate(b.name)
                raise
        info = exec_info()
        fut = self._register(info)
        try:
            result = self._main_sync(b, state, config, info)
        except BaseException as exc:
            settle(fut, exc=exc)
            if isinstance(exc, GraphInterrupt):
                self.plan.learn_gate(b.name)
            raise
        settle(fut, result=result)
        return result

    def _main_sync(self, b: Binding, state: Any, config: RunnableConfig, info: Any) -> Any:
        key = self._key(b, state) if self.cache_names.get(b.name) else None
        # A round trip to the loop only when an early call is there to claim (a dict lookup is
        # atomic; one launched just after it is not adopted, and the run makes the call itself).
        if key is not None and (b.name, key) in self.cache:
            entry = self._on_loop(self._claim, b, key, state, config, info)
            if entry is not None:
                try:
                    result = entry.result.result()
                except BaseException as exc:
                    if not raised_by(entry, exc):
                        raise
                    self._soon(self._adoption_failed, entry, exc)
                else:
                    if self._still_current(entry):
                        if entry.store_ops:
                            self.run.store.batch(entry.store_ops)
                        flush(entry, config)
                        result = remap(result, entry.remap)
                        self._soon(self._finish, entry, result)
                        return result
                    self._soon(self._adoption_failed, entry, Stale())
        call = self._fresh(b, state, config, info)
        if call is not None:
            self._soon(self._begin_fresh, call, ctx=contextvars.copy_context())
        try:
            result = b.action.invoke(state, config)
        except BaseException as exc:
            if call is not None:
                self._soon(self._abandon, call, exc)
            raise
        if call is not None:
            self._soon(self._finish, call, result)
        return result

    async def main_async(self, b: Binding, state: Any, config: RunnableConfig) -> Any:
        """A node on the main run, async mode."""
        self._note_writer(config)
        if self._shed_outright(b):
            try:
                return await b.action.ainvoke(state, config)
            except GraphInterrupt:
                self.plan.learn_gate(b.name)
                raise
        info = exec_info()
        fut = self._register(info)
        try:
            result = await self._main_async(b, state, config, info)
        except BaseException as exc:
            settle(fut, exc=exc)
            if isinstance(exc, GraphInterrupt):
                self.plan.learn_gate(b.name)
            raise
        settle(fut, result=result)
        return result

    async def _main_async(self, b: Binding, state: Any, config: RunnableConfig, info: Any) -> Any:
        key = self._key(b, state) if self.cache_names.get(b.name) else None
        if key is not None:
            entry = self._claim(b, key, state, config, info)
            if entry is not None:
                try:
                    result = await wait(entry.result)
                except BaseException as exc:
                    if not raised_by(entry, exc):
                        raise
                    self._adoption_failed(entry, exc)
                else:
                    if self._still_current(entry):
                        if entry.store_ops:
                            await self.run.store.abatch(entry.store_ops)
                        flush(entry, config)
                        result = remap(result, entry.remap)
                        self._finish(entry, result)
                        return result
                    self._adoption_failed(entry, Stale())
        call = self._fresh(b, state, config, info)
        if call is not None:
            self._begin_fresh(call)
        try:
            result = await b.action.ainvoke(state, config)
        except BaseException as exc:
            if call is not None:
                self._abandon(call, exc)
            raise
        if call is not None:
            self._finish(call, result)
        return result

    def _shed_outright(self, b: Binding) -> bool:
        """Should this main-run call skip speculation altogether? When the process is busy and
        nothing the run speculated could use it (no branch, no early call): it then costs what
        the plain graph's call costs (no registry, no entry, no trip to the session's loop)."""
        if self.branches or self.cache or self.closed:
            return False
        if not self.budget.shedding():
            return False
        if self._may_speculate(b):
            stats = self.report.node(b.name)  # counted as `_begin_fresh` would have
            with self._results_lock:  # sync runs count from LangGraph's worker threads
                stats.calls += 1
                stats.shed += 1
        return True

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

    def _claim(self, b: Binding, key: str, state: Any, config: RunnableConfig, info: Any) -> Entry | None:
        """On the loop: take the early call the main run can adopt for (node, key), if any."""
        entry = self.cache.get((b.name, key))
        if entry is None or entry.cancelled:
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
        early_ids, main_ids = tool_call_ids(entry.state), tool_call_ids(state)
        entry.remap = {e: m for e, m in zip(early_ids, main_ids) if e != m}  # its result gets the run's ids
        if not entry.speculated:
            # Equal keys need not mean equal inputs (a custom key may ignore fields): its
            # speculation forks the main run's checkpoint, not the branch's.
            entry.state, entry.config, entry.source = state, config, self._source(info)
        self._prune()
        if not res.done():
            self._maybe_speculate(entry)
        self._deepen(entry)
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
        self._maybe_speculate(call)

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

    # ------------------------------------------------------------------ speculating

    def _eligible(self, entry: Entry) -> bool:
        """May `entry` branch now? Branches reach at most `depth` speculative nodes ahead."""
        policy = entry.binding.policy
        return policy is not None and entry.level - self.main_level < policy.depth

    def _maybe_speculate(self, entry: Entry) -> None:
        """Start the speculator beside the call once `depth` allows branching.

        Early calls start theirs only when the main run comes within `depth` speculative
        nodes: a speculator on a branch that may lose is wasted work.
        """
        b = entry.binding
        if (
            entry.speculated
            or self.closed
            or not b.speculative
            or entry.source is None
            or b.name in self.run.after
            or b.name in self.plan.gates
            or not self._eligible(entry)
        ):
            return
        entry.speculated = True
        if self.budget.shedding():  # a busy server: not even the speculator runs
            self._not_started(b.name, "busy")
            return
        entry.spec_task = self._spawn(self._speculate(entry))

    def _deepen(self, entry: Entry) -> None:
        """The main run moved to `entry`: calls below it may now branch deeper."""
        for branch in entry.branches:
            if branch.cancelled:
                continue
            for child in branch.entries:
                if not child.cancelled and self._eligible(child):
                    self._maybe_speculate(child)
                    self._deepen(child)

    async def _speculate(self, entry: Entry) -> None:
        b = entry.binding
        assert b.speculator is not None and b.policy is not None
        policy, stats = b.policy, self.report.node(b.name)
        if not self.adaptive.begin(self, entry):  # adaptive speculation: off this step (issue 18)
            return
        t0 = time.monotonic()
        try:
            state = copy.deepcopy(entry.state)  # the speculator cannot change the run's state
        except Exception as exc:
            stats.speculator_errors += 1
            self.emit("speculator_error", b.name, error=f"its input could not be copied: {describe(exc)}")
            return
        cfg: RunnableConfig = {
            **entry.config,
            "callbacks": quiet(entry.config.get("callbacks")),
            "run_name": f"{b.name}:speculator",
        }
        cfg = self.adaptive.speculator_config(entry, cfg)  # counts its tokens (issue 18)
        try:
            raw = await asyncio.wait_for(
                contained(b.speculator.ainvoke(state, cfg)), policy.speculator_timeout
            )
        except asyncio.CancelledError:
            if cancelling():
                raise
            stats.speculator_errors += 1
            self.emit("speculator_error", b.name, error="CancelledError raised by the speculator")
            return
        except (asyncio.TimeoutError, TimeoutError):
            stats.speculator_errors += 1
            self.emit("speculator_timeout", b.name, timeout_s=policy.speculator_timeout)
            return
        except BaseException as exc:
            stats.speculator_errors += 1
            self.emit("speculator_error", b.name, error=describe(unwrap(exc)))
            return
        guesses, problems = coerce_guesses(raw, self.plan.channels, self.plan.node_names)
        if problems:
            stats.speculator_errors += 1
            self.emit("invalid_guess", b.name, problems=problems)
        guesses = [
            g
            for g in guesses
            if policy.min_confidence is None or g.confidence is None or g.confidence >= policy.min_confidence
        ][: policy.k]
        self.emit(
            "guesses",
            b.name,
            guesses=[jsonable(g.update) for g in guesses],
            confidences=[g.confidence for g in guesses],
            speculator_s=round(time.monotonic() - t0, 6),
            level=entry.level,
        )
        chosen = self.adaptive.choose(self, entry, guesses)  # adaptive speculation (issue 18)
        if self.closed or entry.resolved or (entry.owner is None and entry.adopted and entry.result.done()):
            return
        for rank, guess in chosen:
            why = self._acquire()
            if why is not None:
                self._not_started(b.name, why)
                break
            branch = Branch(
                entry,
                guess,
                rank,
                entry.level + 1,
                f"{self.run.thread_id or 'run'}:spec:{uuid.uuid4().hex[:12]}",
            )
            entry.branches.append(branch)
            self.branches[branch.bid] = branch
            stats.guesses += 1
            branch.task = self._spawn(self._run_branch(branch), holder=branch)
