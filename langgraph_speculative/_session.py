"""The speculation session: everything speculation starts in one run.

One session lives for exactly one `invoke`/`stream` (or async twin) of a
speculative graph. It owns every task it starts: speculator calls, branch runs
and actor calls launched early on branches; `close`/`aclose` cancels them all
and, in sync mode, joins every thread it used (see `_lifecycle`). All session
state is touched only on the session's event loop (the caller's loop in async
mode, a private loop thread in sync mode), except one read: in sync mode the
calling thread looks a key up in the cache to decide whether it must wait for
the loop, and the deletion of a lost branch's thread runs on the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.runnables import RunnableConfig, RunnableLambda

from ._entries import (
    CONF_KEY,
    BranchStop,
    _Branch,
    _Ctx,
    _current_run_tree,
    _Entry,
    _node_name,
    _quiet,
    _source,
    _writer,
    context_of,
)
from ._fork import afork_thread, fork_thread
from ._guesses import coerce_guesses, describe
from ._lifecycle import Lifecycle
from ._report import SpeculationReport

if TYPE_CHECKING:
    from ._compile import _Plan
    from ._node import SpeculativeNode

__all__ = ("CONF_KEY", "BranchStop", "Session", "context_of")

THREAD_PREFIX = "langgraph-speculative"


class Session(Lifecycle):
    """Runs and tracks the speculation of one graph run."""

    def __init__(self, plan: _Plan, mode: Literal["sync", "async"], root_thread: str) -> None:
        self.plan = plan
        self.mode = mode
        self.root_thread = root_thread
        self.report = SpeculationReport()
        self.cache: dict[tuple[str, str], _Entry] = {}
        self.tasks: set[asyncio.Future[Any]] = set()
        self.discards: set[asyncio.Future[Any]] = set()
        self._discard_lock = threading.Lock()
        self.branches: dict[str, _Branch] = {}  # live, by thread id
        self.settled: list[tuple[str, str]] = []  # (thread id, outcome) of deleted branches
        self.main_level = 0
        self.inflight = 0
        self.closed = False
        self.writer: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if mode == "sync":
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4 + 2 * plan.max_inflight, thread_name_prefix=f"{THREAD_PREFIX}-work"
            )
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self.loop.run_forever, name=f"{THREAD_PREFIX}-loop", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ plumbing

    def ctx(self, branch: _Branch | None = None) -> _Ctx:
        return _Ctx(self, branch)

    def emit(self, event: str, node: str, **data: Any) -> None:
        ev = self.report._record({"type": "speculation", "event": event, "node": node, **data})
        if self.writer is not None and not self.closed:
            try:
                self.writer(dict(ev))
            except Exception:  # the stream may be gone; the report keeps the event
                self.writer = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        """Run a blocking call on the session's pool, in a copy of this context."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await loop.run_in_executor(self._pool, call)

    async def _branch_work(self, branch: _Branch, fn: Any, *args: Any) -> Any:
        """`_in_thread` for a branch's fork and run: tracked, so the branch is
        deleted only after they stop."""
        assert self._pool is not None
        future = self._pool.submit(functools.partial(contextvars.copy_context().run, fn, *args))
        branch.work.append(future)
        future.add_done_callback(lambda _: self._discard(branch))
        return await asyncio.wrap_future(future)

    def _submit(self, coro: Any) -> Any:
        """From a worker thread (sync mode): run `coro` on the loop and wait."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _post(self, coro: Any) -> None:
        """From a worker thread (sync mode): run `coro` on the loop without waiting.

        The loop runs what is posted in order, and the coroutines posted here
        (`_begin_fresh`, `_finish`, `_abandon`) never await, so each one is
        complete before anything posted or submitted after it starts. Their
        errors are kept as events.
        """
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        future.add_done_callback(self._posted_done)

    def _posted_done(self, future: concurrent.futures.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.emit("internal_error", "", error=describe(future.exception()))

    # ------------------------------------------------------------------ main run

    def call_sync(self, node: SpeculativeNode, state: Any, config: RunnableConfig) -> Any:
        """A speculative node on the main run, sync mode (a LangGraph worker thread).

        Only a call that may be adopted waits for the session's loop; otherwise
        the actor starts at once and the loop is told afterwards (it runs what
        is posted in order, so it sees this call before its `_finish`).
        """
        self.writer = _writer()
        name, key, source = _node_name(node, config), node.key(state), _source(config)
        if (name, key) in self.cache:
            entry, adopted = self._submit(self._begin(node, name, key, state, config, source))
        else:
            entry = _Entry(node, name, key, 0, state, config, source, owner=None)
            self._post(self._begin_fresh(entry))
            adopted = False
        if adopted:
            try:
                result = self._submit(_await(entry.task))
            except Exception as exc:
                self._submit(self._adoption_failed(entry, exc))
                adopted = False
        if not adopted:
            try:
                result = node.action.invoke(state, config)
            except BaseException:
                self._post(self._abandon(entry))
                raise
        self._post(self._finish(entry, result))
        return result

    async def call_async(self, node: SpeculativeNode, state: Any, config: RunnableConfig) -> Any:
        """A speculative node on the main run, async mode."""
        self.writer = _writer()
        name, key = _node_name(node, config), node.key(state)
        entry, adopted = await self._begin(node, name, key, state, config, _source(config))
        if adopted:
            try:
                assert entry.task is not None
                result = await entry.task
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._adoption_failed(entry, exc)
                adopted = False
        if not adopted:
            try:
                result = await node.action.ainvoke(state, config)
            except BaseException:
                await self._abandon(entry)
                raise
        await self._finish(entry, result)
        return result

    async def _begin(
        self,
        node: SpeculativeNode,
        name: str,
        key: str,
        state: Any,
        config: RunnableConfig,
        source: RunnableConfig | None,
    ) -> tuple[_Entry, bool]:
        entry = self.cache.pop((name, key), None)
        if entry is not None and not entry.cancelled and entry.task is not None:
            stats = self.report.node(name)
            stats.calls += 1
            self.main_level = entry.level
            hidden = max(0.0, (entry.finished or time.monotonic()) - entry.started)
            stats.adopted += 1
            stats.time_saved_s += hidden
            entry.owner = None
            if not entry.speculated:
                # Equal keys need not mean equal inputs (a custom key may ignore fields): its
                # speculation starts from the main run's input and checkpoint, not the branch's,
                # so what its branches launch is keyed as the main run will ask for it.
                entry.state, entry.config, entry.source = state, config, source
            self.emit("adopted", name, key=key, hidden_s=round(hidden, 6), done=entry.finished is not None)
            self._prune()
            if not entry.task.done():
                self._maybe_speculate(entry)
            self._deepen(entry)
            return entry, True
        entry = _Entry(node, name, key, 0, state, config, source, owner=None)
        await self._begin_fresh(entry)
        return entry, False

    async def _begin_fresh(self, entry: _Entry) -> None:
        """The main run reached a node it will run itself: speculate beside it."""
        self.report.node(entry.name).calls += 1
        self.main_level += 1
        entry.level = self.main_level
        self._prune()
        self._maybe_speculate(entry)

    async def _adoption_failed(self, entry: _Entry, exc: BaseException) -> None:
        self.emit("adopted_failed", entry.name, error=describe(exc))
        self.report.node(entry.name).adopted -= 1
        entry.task = None

    async def _abandon(self, entry: _Entry) -> None:
        entry.resolved = True
        self._cancel_entry(entry, "actor_failed")

    async def _finish(self, entry: _Entry, result: Any) -> None:
        """The actor answered: keep the branches whose guess matched, cancel the rest."""
        entry.resolved = True
        entry.finished = entry.finished or time.monotonic()
        stats = self.report.node(entry.name)
        if entry.spec_task is not None and not entry.spec_task.done():
            entry.spec_task.cancel()
            self.emit("speculator_late", entry.name)
        if not entry.branches:
            return
        hit_rank = None
        for branch in entry.branches:
            if branch.cancelled:
                continue
            try:
                ok = bool(entry.node.match(branch.update, result))
            except Exception as exc:
                ok = False
                self.emit("match_error", entry.name, error=describe(exc))
            if ok and hit_rank is None:
                hit_rank = branch.rank
                branch.outcome = "hit"
                branch.decided.set()
            else:
                self._cancel_branch(branch, "miss")
        if hit_rank is not None:
            stats.hits += 1
            self.emit("hit", entry.name, rank=hit_rank, guesses=len(entry.branches))
        else:
            stats.misses += 1
            self.emit("miss", entry.name, guesses=len(entry.branches))

    # ------------------------------------------------------------------ branches

    def branch_sync(self, node: SpeculativeNode, state: Any, config: RunnableConfig, branch: _Branch) -> Any:
        """A speculative node reached on a branch, sync mode: launch it early, stop."""
        self._submit(self._launch_on_branch(node, state, config, branch))
        raise BranchStop()

    async def branch_async(
        self, node: SpeculativeNode, state: Any, config: RunnableConfig, branch: _Branch
    ) -> Any:
        """Async twin of `branch_sync`."""
        await self._launch_on_branch(node, state, config, branch)
        raise BranchStop()

    async def _launch_on_branch(
        self, node: SpeculativeNode, state: Any, config: RunnableConfig, branch: _Branch
    ) -> None:
        if branch.cancelled or self.closed:
            return
        name = _node_name(node, config)
        key = node.key(state)
        existing = self.cache.get((name, key))
        if existing is not None and not existing.cancelled:
            branch.entries.append(existing)
            return
        if self.inflight >= self.plan.max_inflight:
            self.emit("budget", name, inflight=self.inflight)
            return
        entry = _Entry(node, name, key, branch.level, state, config, _source(config), owner=branch)
        entry.task = self._spawn(self._early_call(entry))
        self.cache[(name, key)] = entry
        branch.entries.append(entry)
        self.report.node(name).launched += 1
        self.emit("launch", name, key=key, branch=branch.thread_id, level=branch.level)
        self._maybe_speculate(entry)

    async def _early_call(self, entry: _Entry) -> Any:
        self.inflight += 1
        try:
            if self.mode == "async":
                return await entry.node.action.ainvoke(entry.state, entry.config)
            return await self._in_thread(entry.node.action.invoke, entry.state, entry.config)
        finally:
            self.inflight -= 1
            entry.finished = time.monotonic()

    def _eligible(self, entry: _Entry) -> bool:
        """May `entry` branch now? Branches reach at most `depth` slow nodes ahead."""
        return entry.level - self.main_level < entry.node.policy.depth

    def _maybe_speculate(self, entry: _Entry) -> None:
        """Start the speculator beside the actor once `depth` allows branching.

        Early-launched calls start theirs only when the main run comes within
        `depth` slow nodes: a speculator on a branch that may lose is wasted work.
        """
        node = entry.node
        if (
            not self._eligible(entry)
            or entry.speculated
            or self.closed
            or node.speculator is None
            or not node.policy.enabled
            or entry.source is None
        ):
            return
        entry.speculated = True
        entry.spec_task = self._spawn(self._speculate(entry))

    def _deepen(self, entry: _Entry) -> None:
        """The main run moved to `entry`: calls below it may now branch deeper."""
        for branch in entry.branches:
            if branch.cancelled:
                continue
            for child in branch.entries:
                if not child.cancelled and self._eligible(child):
                    self._maybe_speculate(child)
                    self._deepen(child)

    async def _speculate(self, entry: _Entry) -> None:
        node, name = entry.node, entry.name
        stats = self.report.node(name)
        policy = node.policy
        assert node.speculator is not None
        cfg: RunnableConfig = {
            **entry.config,
            "callbacks": _quiet(entry.config.get("callbacks")),
            "run_name": f"{name}:speculator",
            "tags": ["speculator"],
        }
        t0 = time.monotonic()
        try:
            if self.mode == "async":
                call = node.speculator.ainvoke(entry.state, cfg)
            else:
                call = self._in_thread(node.speculator.invoke, entry.state, cfg)
            raw = await asyncio.wait_for(call, policy.speculator_timeout)
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            stats.speculator_errors += 1
            self.emit("speculator_timeout", name, timeout_s=policy.speculator_timeout)
            return
        except Exception as exc:
            stats.speculator_errors += 1
            self.emit("speculator_error", name, error=describe(exc))
            return
        guesses, problems = coerce_guesses(raw, self.plan.channels)
        if problems:
            stats.speculator_errors += 1
            self.emit("invalid_guess", name, problems=problems)
        guesses = [
            g
            for g in guesses
            if policy.min_confidence is None or g.confidence is None or g.confidence >= policy.min_confidence
        ][: policy.k]
        self.emit(
            "guesses",
            name,
            guesses=[describe(g.update) for g in guesses],
            speculator_s=round(time.monotonic() - t0, 6),
            level=entry.level,
        )
        if (
            self.closed
            or entry.resolved
            or (entry.owner is None and entry.task is not None and entry.task.done())
        ):
            return
        for rank, guess in enumerate(guesses, 1):
            if self.inflight >= policy.max_inflight:
                self.emit("budget", name, inflight=self.inflight)
                break
            branch = _Branch(
                entry,
                guess.update,
                guess.confidence,
                entry.level + 1,
                f"{self.root_thread}:spec:{uuid.uuid4().hex[:12]}",
                rank,
            )
            entry.branches.append(branch)
            self.branches[branch.thread_id] = branch
            stats.guesses += 1
            branch.task = self._spawn(self._run_branch(branch))
            branch.task.add_done_callback(lambda _, b=branch: self._discard(b))  # type: ignore[misc]

    async def _run_branch(self, branch: _Branch) -> None:
        """Fork, run the branch to the next slow node, then wait for its verdict.

        The whole branch is one traced run (a child of the speculative node)
        whose metadata says `speculative=True`, the guess, and, once the main
        run has decided, `spec_outcome` in {hit, miss, cancelled}.
        """
        entry = branch.entry
        cfg: RunnableConfig = {
            "callbacks": _quiet(entry.config.get("callbacks")),
            "run_name": f"{entry.name}:speculative_branch",
            "tags": ["speculative"],
            "metadata": {
                "speculative": True,
                "spec_node": entry.name,
                "spec_guess": describe(branch.update),
                "spec_rank": branch.rank,
                "spec_thread": branch.thread_id,
            },
        }
        try:
            await RunnableLambda(self._branch_body, name=cfg["run_name"]).ainvoke(branch, cfg)
        except (asyncio.CancelledError, BranchStop):
            pass

    async def _branch_body(self, branch: _Branch, config: RunnableConfig) -> dict[str, Any]:
        run_tree = _current_run_tree()
        try:
            await self._branch_run(branch, config)
            await branch.decided.wait()
        finally:
            outcome = branch.outcome if branch.outcome in ("hit", "miss") else "cancelled"
            if run_tree is not None:
                run_tree.metadata["spec_outcome"] = outcome
        return {"spec_outcome": outcome}

    async def _branch_run(self, branch: _Branch, config: RunnableConfig) -> None:
        entry = branch.entry
        plan = self.plan
        assert entry.source is not None
        self.inflight += 1
        try:
            if self.mode == "async":
                cfg = await afork_thread(plan.saver, entry.source, branch.thread_id, lambda: branch.cancelled)
                cfg = await plan.branch_graph.aupdate_state(cfg, branch.update, as_node=entry.name)
            else:
                cfg = await self._branch_work(branch, _sync_fork, plan, entry.source, branch, entry.name)
            if branch.cancelled:
                return
            run_cfg: RunnableConfig = {
                "configurable": {
                    "thread_id": branch.thread_id,
                    "checkpoint_ns": "",
                    CONF_KEY: self.ctx(branch),
                },
                "callbacks": config.get("callbacks"),
                "recursion_limit": plan.recursion_limit,
                # nodes and actors on a branch can tell (e.g. to run at lower priority)
                "metadata": {"speculative": True, "spec_rank": branch.rank, "spec_level": branch.level},
            }
            self.emit("branch", entry.name, thread=branch.thread_id, rank=branch.rank, level=branch.level)
            if self.mode == "async":
                await plan.branch_graph.ainvoke(None, run_cfg)
            else:
                await self._branch_work(branch, plan.branch_graph.invoke, None, run_cfg)
        except BranchStop as stop:
            # The traceback holds the branch's frames, and they hold the futures that
            # hold this exception: drop it, or every branch leaves a cycle to collect.
            stop.__traceback__ = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not branch.cancelled:
                self.emit("branch_error", entry.name, thread=branch.thread_id, error=describe(exc))
        finally:
            self.inflight -= 1


async def _await(task: asyncio.Future[Any] | None) -> Any:
    assert task is not None
    return await task


def _sync_fork(plan: _Plan, source: RunnableConfig, branch: _Branch, node: str) -> RunnableConfig:
    cfg = fork_thread(plan.saver, source, branch.thread_id)
    return plan.branch_graph.update_state(cfg, branch.update, as_node=node)
