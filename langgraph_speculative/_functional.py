"""Speculation for LangGraph's functional API (`@entrypoint` / `@task`): `speculate_tasks`.

A workflow built with `@entrypoint` is one Pregel node that runs the user's function; every
`@task` call inside it becomes a call of LangGraph's task-call hook, which schedules the call as
a task of its own (its result saved as a write of the run, replayed on resume). Speculation puts
itself in two places, and nowhere else:

- **The real run.** The entrypoint's node runs the user's function with the task-call hook
  wrapped. Every task call still goes through LangGraph's own hook (same task ids, same writes,
  same checkpoints, same replay on resume); only the function the task runs is wrapped. The
  wrapper of a call that a confirmed branch launched early waits for that early call and returns
  its result (*adoption*); the wrapper of a speculated task asks its speculator for guesses of the
  call's return value and starts one branch per guess while the real call runs, then compares.
- **A branch.** The same function runs again from its start, outside Pregel, with a task-call hook
  of its own: a call the real run already made gets the real run's result; the speculated call
  gets the guess at once; any other task call starts early (keyed by task name, a stable key of
  its arguments and its occurrence), except an `unsafe` task, where the branch stops. It stops too
  at `interrupt()` (unless the real run already has the answer), and at the end. A branch has no
  checkpointer, its store refuses writes, its stream output and callbacks go nowhere.

When the real call returns a value equal to a guess (`default_match`), that branch is confirmed
and the real run's later task calls with the same name, arguments and occurrence adopt its early
calls; every other branch and early call is cancelled. The real run's return value, checkpoints
and task writes are those of the plain workflow; unsafe tasks are called only by the real run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import dataclasses
import functools
import inspect
import itertools
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langgraph.config import get_stream_writer
from langgraph.constants import START
from langgraph.errors import GraphInterrupt
from langgraph.func import _TaskFunction
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore, Op, PutOp, Result

from ._budget import process_budget
from ._guesses import describe, jsonable, sift_guesses
from ._keys import default_key, default_match
from ._policy import Guess, SpeculationPolicy
from ._report import SpeculationReport, graph_report
from ._threads import has_sync_path, offload, process_loop

__all__ = ("SpeculativeWorkflow", "speculate_tasks")

# The configurable keys through which LangGraph hands a running entrypoint its task-call hook, its
# runtime (store, stream writer, previous), its interrupt bookkeeping and its write channel. They
# are not public constants; `_Driver` checks the hook is there and says so when it is not.
_CALL = "__pregel_call"
_RUNTIME = "__pregel_runtime"
_SCRATCHPAD = "__pregel_scratchpad"
_SEND = "__pregel_send"
_PREVIOUS_CHANNEL = "__previous__"

_Ident = tuple[str, str, int]  # (task name, key of its arguments, occurrence of that pair)


class _BranchStopped(Exception):
    """Raised into a branch's function where the branch must go no further."""


def speculate_tasks(
    workflow: Pregel,
    speculators: Mapping[str, Callable[[dict[str, Any]], Any]],
    *,
    unsafe: Iterable[str] = (),
    policy: SpeculationPolicy | None = None,
) -> SpeculativeWorkflow:
    """Speculate the slow tasks of a functional-API workflow.

    Args:
        workflow: What `@entrypoint(...)` returned. Its checkpointer, store, cache, policies and
            config are kept.
        speculators: Task name (the task function's `__name__`, or its `name=`) to speculator.
            A speculator receives `{"args": tuple, "kwargs": dict}` (a deep copy of one call's
            arguments), may be sync or async, and returns guesses of that call's **return
            value**, best first: a list of plain values or `Guess(value, confidence=...)`
            (a single `Guess` is one guess; None is none). At most `policy.k` are used.
        unsafe: Names of tasks with side effects (payments, messages, writes). They never run
            early: a branch stops where it would call one; the real run calls them as the plain
            workflow does.
        policy: `SpeculationPolicy` (k, min_confidence, max_inflight, speculator_timeout,
            enabled). A branch always runs the function to its end or to its first stop, so
            `depth` and `adaptive` do not apply here.

    Returns:
        A `SpeculativeWorkflow`: a `Pregel` used like the entrypoint (`invoke`, `ainvoke`,
        `stream`, `astream`, `get_state`, `get_state_history`) on the same threads, with
        `last_report` (the last finished run's `SpeculationReport`) and `report` (merged).

    Raises:
        TypeError: `workflow` is not an entrypoint, a speculator is not callable, `policy` is not
            a `SpeculationPolicy`.
        ValueError: a speculator or unsafe name is not a task the entrypoint calls.
    """
    if isinstance(workflow, SpeculativeWorkflow):
        raise TypeError(
            "speculate_tasks(workflow=...): this workflow is already speculative; "
            "pass the workflow @entrypoint(...) returned, once."
        )
    if not _is_entrypoint(workflow):
        raise TypeError(
            f"speculate_tasks(workflow={type(workflow).__name__}): pass what @entrypoint(...) returned "
            "(a Pregel with one node running your function). For a StateGraph, use speculate(builder, ...)."
        )
    if policy is None:
        policy = SpeculationPolicy()
    elif not isinstance(policy, SpeculationPolicy):
        raise TypeError(
            f"speculate_tasks(policy={policy!r}): use SpeculationPolicy(k=..., ...) or None for the defaults."
        )
    if not isinstance(speculators, Mapping):
        raise TypeError(
            f"speculate_tasks(speculators={type(speculators).__name__}): use a dict of task name to "
            'speculator, e.g. {"model_step": guess_model_step}.'
        )
    if isinstance(unsafe, str):
        raise TypeError(f"speculate_tasks(unsafe={unsafe!r}): use a list of task names, e.g. [{unsafe!r}].")
    unsafe_names = frozenset(unsafe)
    ((node_name, node),) = workflow.nodes.items()
    bound = node.bound
    func = getattr(bound, "afunc", None) if not has_sync_path(bound) else getattr(bound, "func", None)
    known = _task_names(func) if func is not None else set()
    for name, speculator in speculators.items():
        if not isinstance(name, str):
            raise TypeError(f"speculate_tasks(speculators=...): key {name!r} is not a task name (a str).")
        if not callable(speculator):
            raise TypeError(
                f"speculate_tasks(speculators={{{name!r}: {speculator!r}}}): a speculator must be a "
                "function (sync or async) taking {'args': ..., 'kwargs': ...} and returning a list "
                "of guesses."
            )
    for name in [*speculators, *sorted(unsafe_names)]:
        if not isinstance(name, str):
            raise TypeError(f"speculate_tasks(unsafe=...): {name!r} is not a task name (a str).")
        if name not in known:
            raise ValueError(
                f"speculate_tasks: {name!r} is not a task the entrypoint {node_name!r} calls; "
                f"the tasks found are {sorted(known)}. A task's name is its function's __name__, "
                "or the name= given to @task."
            )
    spec = _Spec(
        bound=bound,
        is_async=not has_sync_path(bound),
        speculators=dict(speculators),
        unsafe=unsafe_names,
        policy=policy,
    )
    driver = _Driver(bound, spec)
    nodes = {node_name: node.copy({"bound": driver})}
    attrs = {k: v for k, v in workflow.__dict__.items() if k != "__orig_class__"}
    attrs["nodes"] = nodes
    return SpeculativeWorkflow(_speculation=spec, **attrs)


class SpeculativeWorkflow(Pregel):  # type: ignore[type-arg]
    """An entrypoint whose tasks are speculated (what `speculate_tasks` returns).

    A `Pregel` like the workflow it was made from, with the same node name, checkpointer, store
    and cache: run it, stream it, read its state and history exactly as the entrypoint's.
    """

    def __init__(self, *, _speculation: _Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._speculation = _speculation

    @property
    def last_report(self) -> SpeculationReport | None:
        """The `SpeculationReport` of the last run that finished (None before any)."""
        return self._speculation.last_report

    @property
    def report(self) -> SpeculationReport:
        """Counters of every run, and their most recent events."""
        return self._speculation.merged


@dataclasses.dataclass
class _Spec:
    """What `speculate_tasks` was given, shared by every run of the workflow."""

    bound: Runnable[Any, Any]
    is_async: bool
    speculators: dict[str, Callable[[dict[str, Any]], Any]]
    unsafe: frozenset[str]
    policy: SpeculationPolicy
    last_report: SpeculationReport | None = None
    merged: SpeculationReport = dataclasses.field(default_factory=graph_report)
    ids: Iterator[int] = dataclasses.field(default_factory=itertools.count)


class _Driver(Runnable[Any, Any]):
    """The entrypoint node's runnable: the user's function with the task-call hook wrapped."""

    def __init__(self, bound: Runnable[Any, Any], spec: _Spec) -> None:
        self.bound = bound
        self.spec = spec
        self.name = bound.get_name()

    def _setup(self, input: Any, config: RunnableConfig | None, loop: asyncio.AbstractEventLoop) -> Any:
        config = ensure_config(config)
        conf = config.get("configurable") or {}
        hook = conf.get(_CALL)
        if hook is None:
            raise RuntimeError(
                "speculate_tasks: the installed LangGraph did not hand the entrypoint its task-call "
                f"hook ({_CALL!r}); run the workflow through invoke/stream, or use a LangGraph "
                "version this library supports."
            )
        if not self.spec.policy.enabled:
            return config, None
        run = _Run(self.spec, input, config, loop)
        if run.shed:
            run.close()
            return config, None
        new = {**config, "configurable": {**conf, _CALL: run.real_hook(hook)}}
        return new, run

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        new, run = self._setup(input, config, process_loop())
        token = var_child_runnable_config.set(new)
        try:
            return self.bound.invoke(input, new, **kwargs)
        finally:
            var_child_runnable_config.reset(token)
            if run is not None:
                run.close()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        new, run = self._setup(input, config, asyncio.get_running_loop())
        token = var_child_runnable_config.set(new)
        try:
            return await self.bound.ainvoke(input, new, **kwargs)
        finally:
            var_child_runnable_config.reset(token)
            if run is not None:
                run.close()


class _Early:
    """One task call launched early on a branch."""

    def __init__(
        self, ident: _Ident, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ):
        self.ident = ident
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.owners: set[int] = set()
        self.adopted = False
        self.started = time.monotonic()
        self.ended: float | None = None
        self.chunks: list[Any] = []
        self.task: asyncio.Future[Any] | None = None


class _Branch:
    """The function run ahead from one guess."""

    def __init__(self, bid: int, spec: _Speculation, rank: int, guess: Guess) -> None:
        self.id = bid
        self.spec = spec
        self.rank = rank
        self.guess = guess
        self.counts: dict[tuple[str, str], int] = {}
        self.stopped = False
        self.outcome = "running"
        self.futures: list[Any] = []
        self.task: asyncio.Future[Any] | None = None
        self.slot = False


class _Speculation:
    """One real call of a speculated task, its guesses and its branches."""

    def __init__(self, ident: _Ident, inp: dict[str, Any]) -> None:
        self.ident = ident
        self.input = inp
        self.resolved = False
        self.branches: list[_Branch] = []
        self.future: concurrent.futures.Future[Any] | None = None
        self.started = time.monotonic()


class _Run:
    """One execution of the entrypoint function: its real calls, branches and early calls."""

    def __init__(
        self, spec: _Spec, input: Any, config: RunnableConfig, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.spec = spec
        self.policy = spec.policy
        self.config = config
        self.loop = loop
        self.lock = threading.RLock()
        self.report = SpeculationReport()
        self.real: dict[_Ident, concurrent.futures.Future[Any]] = {}
        self.real_counts: dict[tuple[str, str], int] = {}
        self.early: dict[_Ident, _Early] = {}
        self.speculations: list[_Speculation] = []
        self.branches: list[_Branch] = []
        self.confirmed: set[int] = set()
        self.cancelled: set[int] = set()
        self.inflight = 0
        self.closed = False
        self.budget = process_budget()
        self.forks = _Forks(self)
        self.shed = self.budget.shed_run()
        if self.shed:
            self.report.shed_runs += 1
        try:
            self.input = copy.deepcopy(input)
        except Exception as exc:  # the function's input cannot be copied for branches
            self.emit("not_copyable", "", error=describe(exc))
            self.shed = True

    # -- events ------------------------------------------------------------------------------

    def emit(self, event: str, task: str, **data: Any) -> None:
        self.report.add_event({"type": "speculation", "event": event, "node": task, **data})

    def stats(self, task: str) -> Any:
        return self.report.node(task)

    # -- slots ---------------------------------------------------------------------------------

    def _take_slot(self, task: str) -> bool:
        with self.lock:
            if self.closed:
                return False
            if self.inflight >= self.policy.max_inflight:
                self.stats(task).shed += 1
                self.emit("budget", task, inflight=self.inflight)
                return False
            why = self.budget.acquire()
            if why is not None:
                self.stats(task).shed += 1
                self.emit("budget" if why == "budget" else "shed", task, inflight=self.inflight)
                return False
            self.inflight += 1
            self.report.peak_inflight = max(self.report.peak_inflight, self.inflight)
            return True

    def _give_slot(self) -> None:
        with self.lock:
            self.inflight -= 1
        self.budget.release()

    # -- the real run --------------------------------------------------------------------------

    def real_hook(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        """The task-call hook of the real run: LangGraph's own, with the task function wrapped."""

        def call(func: Callable[..., Any], input: tuple[tuple[Any, ...], dict[str, Any]], **opts: Any) -> Any:
            args, kwargs = input
            name = _name_of(func)
            key = _key(args, kwargs)
            if name is None or key is None or self.closed:
                return hook(func, input, **opts)
            with self.lock:
                n = self.real_counts.get((name, key), 0)
                self.real_counts[(name, key)] = n + 1
            ident = (name, key, n)
            fut = hook(self._wrap(func, ident, args, kwargs), input, **opts)
            mirror: concurrent.futures.Future[Any] = concurrent.futures.Future()
            _chain(fut, mirror)
            with self.lock:
                self.real[ident] = mirror
            return fut

        return call

    def _wrap(
        self, func: Callable[..., Any], ident: _Ident, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Callable[..., Any]:
        name = ident[0]
        first = [True]

        def start() -> _Speculation | None:
            if not first[0] or name not in self.spec.speculators:
                return None
            first[0] = False
            return self._speculate(ident, args, kwargs)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapped(*a: Any, **kw: Any) -> Any:
                early = self._adoptable(ident)
                if early is not None:
                    try:
                        value = await asyncio.wrap_future(early.result)
                    except BaseException as exc:  # noqa: BLE001 - the real call is made instead
                        self._adopt_failed(early, exc)
                    else:
                        return self._adopted(early, value)
                with self._real_call(name, start) as done:
                    return done(await func(*a, **kw))

            return awrapped

        @functools.wraps(func)
        def wrapped(*a: Any, **kw: Any) -> Any:
            early = self._adoptable(ident)
            if early is not None:
                try:
                    value = early.result.result()
                except BaseException as exc:  # noqa: BLE001 - the real call is made instead
                    self._adopt_failed(early, exc)
                else:
                    return self._adopted(early, value)
            with self._real_call(name, start) as done:
                return done(func(*a, **kw))

        return wrapped

    @contextlib.contextmanager
    def _real_call(
        self, name: str, start: Callable[[], _Speculation | None]
    ) -> Iterator[Callable[[Any], Any]]:
        """The task's own call (not adopted): counted, speculated on (`start`), its value passed
        through `done` to the speculation waiting for it, or its failure if it raises."""
        self._count_call(name)
        spec = start()

        def done(value: Any) -> Any:
            if spec is not None:
                self._resolve(spec, value)
            return value

        try:
            yield done
        except BaseException:
            if spec is not None:
                self._resolve(spec, _FAILED)
            raise

    def _count_call(self, name: str) -> None:
        if name in self.spec.speculators:
            self.stats(name).calls += 1

    def _adoptable(self, ident: _Ident) -> _Early | None:
        with self.lock:
            early = self.early.get(ident)
            if early is None or early.adopted or not (early.owners & self.confirmed):
                return None
            early.adopted = True
            return early

    def _adopted(self, early: _Early, value: Any) -> Any:
        name = early.ident[0]
        now = time.monotonic()
        ended = early.ended if early.ended is not None else now
        hidden = max(0.0, min(now, ended) - early.started)
        stats = self.stats(name)
        stats.adopted += 1
        stats.time_saved_s += hidden
        self.emit("adopted", name, key=early.ident[1][:12], hidden_s=round(hidden, 6), done=True)
        if early.chunks:  # what the call wrote to the custom stream, written by the real task
            try:
                writer = get_stream_writer()
                for chunk in early.chunks:
                    writer(chunk)
            except Exception:  # pragma: no cover - no stream to write to
                pass
        return value

    def _adopt_failed(self, early: _Early, exc: BaseException) -> None:
        self.emit("adopted_failed", early.ident[0], error=describe(exc))

    # -- speculating ---------------------------------------------------------------------------

    def _speculate(self, ident: _Ident, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Speculation | None:
        name = ident[0]
        if self.shed or self.closed:
            return None
        try:
            inp = {"args": copy.deepcopy(tuple(args)), "kwargs": copy.deepcopy(dict(kwargs))}
        except Exception as exc:
            self.emit("not_copyable", name, error=describe(exc))
            return None
        spec = _Speculation(ident, inp)
        with self.lock:
            self.speculations.append(spec)
        spec.future = asyncio.run_coroutine_threadsafe(self._guess(spec), self.loop)
        return spec

    async def _guess(self, spec: _Speculation) -> None:
        name = spec.ident[0]
        speculator = self.spec.speculators[name]
        stats = self.stats(name)
        stats.speculator_calls += 1
        t0 = time.monotonic()
        timeout = self.policy.speculator_timeout
        try:
            if _is_async(speculator):
                raw = await asyncio.wait_for(speculator(spec.input), timeout)
            else:
                raw = await asyncio.wait_for(offload(speculator, spec.input), timeout)
                if inspect.isawaitable(raw):
                    raw = await asyncio.wait_for(raw, timeout)
        except asyncio.TimeoutError:
            stats.speculator_errors += 1
            self.emit("speculator_timeout", name, timeout_s=timeout)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.speculator_errors += 1
            self.emit("speculator_error", name, error=describe(exc))
            return
        finally:
            stats.speculator_s += time.monotonic() - t0
        guesses, problems = _coerce(raw, self.policy)
        if problems:
            stats.speculator_errors += 1
            self.emit("invalid_guess", name, problems=problems)
        with self.lock:
            if spec.resolved or self.closed:
                self.emit("speculator_late", name)
                return
            self.emit(
                "guesses",
                name,
                guesses=[jsonable(g.update) for g in guesses],
                speculator_s=round(time.monotonic() - t0, 6),
            )
            for rank, guess in enumerate(guesses):
                if not self._take_slot(name):
                    break
                branch = _Branch(next(self.spec.ids), spec, rank, guess)
                branch.slot = True
                spec.branches.append(branch)
                self.branches.append(branch)
                stats.guesses += 1
        for branch in list(spec.branches):
            self.forks._start_branch(branch)

    def _resolve(self, spec: _Speculation, value: Any) -> None:
        """The real call returned (or failed, `_FAILED`): confirm the matching branch, cancel the rest."""
        name = spec.ident[0]
        with self.lock:
            spec.resolved = True
            branches = list(spec.branches)
            hit: _Branch | None = None
            if value is not _FAILED:
                for branch in branches:
                    if _matches(branch.guess.update, value):
                        hit = branch
                        break
            if hit is not None:
                self.confirmed.add(hit.id)
            stats = self.stats(name)
            if branches:
                if hit is not None:
                    stats.hits += 1
                    self.emit("hit", name, rank=hit.rank, guesses=len(branches))
                else:
                    stats.misses += 1
                    self.emit("miss", name, guesses=len(branches))
            losers = [b for b in branches if b is not hit]
        if spec.future is not None and not spec.future.done():
            self.loop.call_soon_threadsafe(spec.future.cancel)
        for branch in losers:
            self.forks._cancel_branch(branch, "miss" if value is not _FAILED else "actor_failed")

    # -- branches ------------------------------------------------------------------------------

    def close(self) -> None:
        """The function returned, raised or was interrupted: cancel everything left, keep the report."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            live = [b for b in self.branches if b.id not in self.cancelled]
            specs = list(self.speculations)
        for spec in specs:
            if spec.future is not None and not spec.future.done():
                self.loop.call_soon_threadsafe(spec.future.cancel)
        for branch in live:
            if branch.id in self.confirmed:
                with self.lock:
                    self.cancelled.add(branch.id)
                    self.report.branches.append((f"branch-{branch.id}", "committed"))
                    pending = list(branch.futures)
                for fut in pending:
                    self.forks._stop_future(fut)
                if branch.task is not None:
                    self.loop.call_soon_threadsafe(branch.task.cancel)
            else:
                self.forks._cancel_branch(branch, "run_ended")
        with self.lock:
            leftovers = [e for e in self.early.values() if not e.adopted]
            self.early.clear()
        for early in leftovers:
            self.forks._cancel_early(early)
        self.budget.run_ended()
        self.report.wall_time_s = time.monotonic() - self.report._start
        self.report.runs = 1
        self.spec.last_report = self.report
        self.spec.merged.merge(self.report)


# -- helpers -----------------------------------------------------------------------------------

_FAILED = object()


class _Forks:
    """The branches of one run of a speculative workflow and the task calls they start early:
    starting, running (sync or async), ending and cancelling them."""

    def __init__(self, run: _Run) -> None:
        self.r = run

    def _start_branch(self, branch: _Branch) -> None:
        name = branch.spec.ident[0]
        if branch.stopped:
            self._end_branch(branch, None)
            return
        self.r.emit("branch", name, thread=f"branch-{branch.id}", rank=branch.rank)
        config = self._branch_config(branch)
        try:
            inp = copy.deepcopy(self.r.input)
        except Exception:  # pragma: no cover - copied once already
            inp = self.r.input
        if self.r.spec.is_async:
            branch.task = self.r.loop.create_task(self._run_async(branch, inp, config))
        else:
            branch.task = offload(self._run_sync, branch, inp, config)
        branch.task.add_done_callback(lambda f: self._end_branch(branch, f))

    def _run_sync(self, branch: _Branch, inp: Any, config: RunnableConfig) -> str:
        if branch.stopped:
            return branch.outcome
        token = var_child_runnable_config.set(config)
        try:
            self.r.spec.bound.invoke(inp, config)
            return "end"
        except _BranchStopped:
            return "stopped"
        except GraphInterrupt:
            return "interrupt"
        except Exception as exc:
            return f"error: {describe(exc)}"
        finally:
            var_child_runnable_config.reset(token)

    async def _run_async(self, branch: _Branch, inp: Any, config: RunnableConfig) -> str:
        if branch.stopped:
            return branch.outcome
        token = var_child_runnable_config.set(config)
        try:
            await self.r.spec.bound.ainvoke(inp, config)
            return "end"
        except _BranchStopped:
            return "stopped"
        except GraphInterrupt:
            return "interrupt"
        except Exception as exc:
            return f"error: {describe(exc)}"
        finally:
            var_child_runnable_config.reset(token)

    def _end_branch(self, branch: _Branch, fut: asyncio.Future[Any] | None) -> None:
        with self.r.lock:
            if branch.slot:
                branch.slot = False
                release = True
            else:
                release = False
            if (
                branch.outcome == "running"
                and fut is not None
                and not fut.cancelled()
                and fut.exception() is None
            ):
                branch.outcome = str(fut.result())
        if release:
            self.r._give_slot()

    def _cancel_branch(self, branch: _Branch, reason: str) -> None:
        name = branch.spec.ident[0]
        with self.r.lock:
            if branch.id in self.r.cancelled:
                return
            self.r.cancelled.add(branch.id)
            branch.stopped = True
            branch.outcome = reason
            self.r.report.branches.append((f"branch-{branch.id}", reason))
            self.r.stats(name).cancelled += 1
            orphans = []
            for ident, early in list(self.r.early.items()):
                if branch.id in early.owners:
                    early.owners.discard(branch.id)
                    if not early.adopted and not (early.owners - self.r.cancelled):
                        del self.r.early[ident]
                        orphans.append(early)
            pending = list(branch.futures)
        self.r.emit("cancelled", name, thread=f"branch-{branch.id}", reason=reason)
        for early in orphans:
            self._cancel_early(early)
        for fut in pending:
            self._stop_future(fut)
        if branch.task is not None:
            task = branch.task
            self.r.loop.call_soon_threadsafe(task.cancel)

    def _stop_future(self, fut: Any) -> None:
        stop = _BranchStopped("the branch was cancelled")
        if isinstance(fut, asyncio.Future):

            def _set() -> None:
                if not fut.done():
                    fut.set_exception(stop)

            self.r.loop.call_soon_threadsafe(_set)
        elif not fut.done():
            try:
                fut.set_exception(stop)
            except concurrent.futures.InvalidStateError:
                pass

    def _branch_config(self, branch: _Branch) -> RunnableConfig:
        conf = self.r.config.get("configurable") or {}
        user = {k: v for k, v in conf.items() if not str(k).startswith("__pregel_")}
        runtime = conf.get(_RUNTIME)
        extra: dict[str, Any] = {_CALL: functools.partial(self._branch_hook, branch), _SEND: _discard}
        if runtime is not None:
            store = runtime.store
            extra[_RUNTIME] = runtime.override(
                store=_RefusingStore(store) if store is not None else None,
                stream_writer=_discard,
            )
        scratchpad = conf.get(_SCRATCHPAD)
        if scratchpad is not None and dataclasses.is_dataclass(scratchpad):
            try:  # interrupt() on a branch returns what the real run was answered, or stops it
                extra[_SCRATCHPAD] = dataclasses.replace(
                    scratchpad,  # type: ignore[type-var]
                    call_counter=_counter(),
                    interrupt_counter=_counter(),
                    subgraph_counter=_counter(),
                    get_null_resume=_no_resume,
                    resume=list(getattr(scratchpad, "resume", None) or ()),
                )
            except Exception:  # pragma: no cover - another LangGraph: interrupt() then stops the branch
                pass
        return {
            "configurable": {**user, **extra},
            "callbacks": None,
            "tags": [],
            "metadata": {"langgraph_speculative_branch": branch.id},
            "recursion_limit": self.r.config.get("recursion_limit", 25),
        }

    def _branch_hook(
        self,
        branch: _Branch,
        func: Callable[..., Any],
        input: tuple[tuple[Any, ...], dict[str, Any]],
        **_: Any,
    ) -> Any:
        """The task-call hook on a branch: the real result, the guess, an early call, or stop."""
        if branch.stopped or self.r.closed:
            raise _BranchStopped("the branch was cancelled")
        args, kwargs = input
        name = _name_of(func)
        key = _key(args, kwargs)
        if name is None or key is None:
            raise _BranchStopped(f"task call {name!r} cannot be keyed")
        n = branch.counts.get((name, key), 0)
        branch.counts[(name, key)] = n + 1
        ident = (name, key, n)
        if ident == branch.spec.ident:
            return self._branch_future(branch, _done(branch.guess.update))
        with self.r.lock:
            real = self.r.real.get(ident)
        if real is not None:
            return self._branch_future(branch, real)
        if name in self.r.spec.unsafe:
            branch.stopped = True
            self.r.emit("branch_end", name, thread=f"branch-{branch.id}", reason="unsafe")
            raise _BranchStopped(f"{name!r} is unsafe: a branch stops before it")
        early = self._early_call(branch, ident, func, args, kwargs)
        if early is None:
            raise _BranchStopped("no room to launch an early call")
        return self._branch_future(branch, early.result)

    def _branch_future(self, branch: _Branch, source: concurrent.futures.Future[Any]) -> Any:
        """A future for the branch's function that resolves to a deep copy of `source`'s result:
        a branch never holds an object the real run holds."""
        try:
            in_loop = asyncio.get_running_loop() is self.r.loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            afut: asyncio.Future[Any] = self.r.loop.create_future()

            def to_async(src: concurrent.futures.Future[Any]) -> None:
                self.r.loop.call_soon_threadsafe(_settle_async, afut, src)

            source.add_done_callback(to_async)
            with self.r.lock:
                branch.futures.append(afut)
            return afut
        cfut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        source.add_done_callback(lambda src: _settle(cfut, src))
        with self.r.lock:
            branch.futures.append(cfut)
        return cfut

    # -- early calls ---------------------------------------------------------------------------

    def _early_call(
        self,
        branch: _Branch,
        ident: _Ident,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _Early | None:
        name = ident[0]
        with self.r.lock:
            if branch.stopped or self.r.closed:
                return None
            early = self.r.early.get(ident)
            if early is not None:
                early.owners.add(branch.id)
                return early
        if not self.r._take_slot(name):
            return None
        try:
            early = _Early(ident, func, copy.deepcopy(tuple(args)), copy.deepcopy(dict(kwargs)))
        except Exception:
            self.r._give_slot()
            return None
        with self.r.lock:
            if branch.stopped or self.r.closed or ident in self.r.early:
                joined = self.r.early.get(ident)
                if joined is not None and not branch.stopped:
                    joined.owners.add(branch.id)
                self.r._give_slot()
                return joined if not branch.stopped else None
            early.owners.add(branch.id)
            self.r.early[ident] = early
            self.r.stats(name).launched += 1
        self.r.emit("launch", name, key=ident[1][:12], branch=f"branch-{branch.id}")
        self.r.loop.call_soon_threadsafe(self._launch, early, self._branch_config(branch))
        return early

    def _launch(self, early: _Early, config: RunnableConfig) -> None:
        """Start an early call (on the session's loop)."""
        if early.result.done():  # cancelled before it started
            self._finish(early, None)
            return
        conf = dict(config["configurable"])
        runtime = conf.get(_RUNTIME)
        if runtime is not None:
            conf[_RUNTIME] = runtime.override(stream_writer=early.chunks.append)
        conf[_CALL] = _no_nested_calls
        conf.pop(_SCRATCHPAD, None)  # interrupt() in an early call fails it: the real run calls it then
        config = {**config, "configurable": conf}
        kwargs = _inject(early.func, early.args, early.kwargs, config, runtime=conf.get(_RUNTIME))
        early.started = time.monotonic()
        task: asyncio.Future[Any]
        if inspect.iscoroutinefunction(early.func):
            task = self.r.loop.create_task(_acall_in(config, early.func, early.args, kwargs))
        else:
            task = offload(_call_in, config, early.func, early.args, kwargs)
        early.task = task
        task.add_done_callback(lambda f: self._finish(early, f))

    def _finish(self, early: _Early, task: asyncio.Future[Any] | None) -> None:
        early.ended = time.monotonic()
        if task is not None:
            if task.cancelled():
                early.result.cancel()
            elif (exc := task.exception()) is not None:
                if not early.result.done():
                    early.result.set_exception(exc)
                self.r.emit("early_call_error", early.ident[0], key=early.ident[1][:12], error=describe(exc))
            elif not early.result.done():
                early.result.set_result(task.result())
        else:
            early.result.cancel()
        self.r._give_slot()

    def _cancel_early(self, early: _Early) -> None:
        stats = self.r.stats(early.ident[0])
        stats.cancelled += 1
        stats.wasted += 1
        stats.wasted_s += (early.ended or time.monotonic()) - early.started

        def cancel() -> None:
            if early.task is not None:
                early.task.cancel()
            else:
                early.result.cancel()

        self.r.loop.call_soon_threadsafe(cancel)

    # -- the end -------------------------------------------------------------------------------


def _is_entrypoint(workflow: Any) -> bool:
    return (
        isinstance(workflow, Pregel)
        and len(workflow.nodes) == 1
        and workflow.input_channels == START
        and _PREVIOUS_CHANNEL in workflow.channels
    )


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _name_of(func: Any) -> str | None:
    """The task name LangGraph gives a call of `func`."""
    name = getattr(func, "__name__", None)
    if name is None and hasattr(func, "func"):
        name = getattr(func.func, "__name__", None)
    return name if isinstance(name, str) else None


def _key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        return default_key({"args": list(args), "kwargs": dict(kwargs)})
    except Exception:
        return None


def _matches(guess: Any, actual: Any) -> bool:
    try:
        return default_match(guess, actual)
    except Exception:
        return False


def _coerce(raw: Any, policy: SpeculationPolicy) -> tuple[list[Guess], list[str]]:
    """A speculator's answer as at most `policy.k` distinct guesses, and what was wrong with it."""
    if raw is None:
        return [], []
    if isinstance(raw, Guess):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        return [], [
            f"speculator returned {type(raw).__name__}; return a list of guesses of the task's "
            "return value (plain values or Guess(value, confidence=...)), best first"
        ]
    return sift_guesses(
        raw,
        lambda value: None,  # any value can be a task's return value
        fingerprint=default_key,
        min_confidence=policy.min_confidence,
        limit=policy.k,
    )


def _task_names(func: Any) -> set[str]:
    """Names of the tasks `func` can reach: through its globals, closure, defaults, the
    attributes of modules and objects it names, containers (a dict of tasks), and the functions
    those reach in turn."""
    found: set[str] = set()
    seen: set[int] = set()

    def visit_value(value: Any, names: tuple[str, ...], depth: int) -> None:
        if isinstance(value, _TaskFunction):
            task_name = _name_of(value.func)
            if task_name:
                found.add(task_name)
        elif isinstance(value, types.ModuleType):
            for attr in names:
                inner = getattr(value, attr, None)
                if isinstance(inner, _TaskFunction) or inspect.isfunction(inner):
                    visit_value(inner, (), depth + 1)
        elif isinstance(value, (functools.partial,)):
            visit_value(value.func, names, depth)
        elif inspect.ismethod(value):
            visit_value(value.__func__, names, depth)
        elif inspect.isfunction(value) and depth < 6:
            visit_function(value, depth + 1)
        elif isinstance(value, (dict, list, tuple, set, frozenset)) and depth < 6 and id(value) not in seen:
            seen.add(id(value))
            items = value.values() if isinstance(value, dict) else value
            for item in itertools.islice(items, 1000):
                visit_value(item, names, depth + 1)
        elif (
            depth < 3 and not isinstance(value, type) and id(value) not in seen and hasattr(value, "__dict__")
        ):
            seen.add(id(value))  # an object holding tasks as attributes (`self.search`)
            for attr in names:
                inner = getattr(value, "__dict__", {}).get(attr)
                if inner is not None:
                    visit_value(inner, (), depth + 1)

    def code_names(code: types.CodeType) -> tuple[str, ...]:
        names = list(code.co_names) + list(code.co_freevars)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names.extend(code_names(const))
        return tuple(names)

    def visit_function(fn: Any, depth: int) -> None:
        if id(fn) in seen:
            return
        seen.add(id(fn))
        fn = inspect.unwrap(fn)
        code = getattr(fn, "__code__", None)
        if code is None:
            return
        names = code_names(code)
        glob = getattr(fn, "__globals__", {})
        for name in names:
            if name in glob:
                visit_value(glob[name], names, depth)
        for cell in fn.__closure__ or ():
            try:
                visit_value(cell.cell_contents, names, depth)
            except ValueError:  # an empty cell
                continue
        for default in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).values()):
            visit_value(default, names, depth)

    visit_value(func, (), 0)
    return found


def _chain(source: Any, target: concurrent.futures.Future[Any]) -> None:
    """Copy the outcome of `source` (an asyncio or concurrent future) into `target`."""
    source.add_done_callback(lambda src: _settle(target, src))


def _settle(target: concurrent.futures.Future[Any], src: Any) -> None:
    if target.done():
        return
    try:
        if src.cancelled():
            target.set_exception(_BranchStopped("the call was cancelled"))
        elif (exc := src.exception()) is not None:
            target.set_exception(exc)
        else:
            target.set_result(_private(src.result()))
    except concurrent.futures.InvalidStateError:  # settled meanwhile
        pass
    except Exception as exc:  # pragma: no cover - a result that cannot be copied
        if not target.done():
            target.set_exception(exc)


def _settle_async(target: asyncio.Future[Any], src: concurrent.futures.Future[Any]) -> None:
    if target.done():
        return
    if src.cancelled():
        target.set_exception(_BranchStopped("the call was cancelled"))
    elif src.exception() is not None:
        target.set_exception(src.exception())  # type: ignore[arg-type]
    else:
        try:
            target.set_result(_private(src.result()))
        except Exception as exc:  # pragma: no cover - a result that cannot be copied
            target.set_exception(exc)


def _private(value: Any) -> Any:
    """What a branch gets: its own copy, never an object the real run or another branch holds."""
    return copy.deepcopy(value)


def _done(value: Any) -> concurrent.futures.Future[Any]:
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
    fut.set_result(value)
    return fut


def _counter() -> Callable[[], int]:
    counter = itertools.count()
    return lambda: next(counter)


def _no_resume(consume: bool = False) -> None:
    return None


def _discard(*_: Any, **__: Any) -> None:
    return None


def _no_nested_calls(func: Any, *_: Any, **__: Any) -> Any:
    raise _BranchStopped(
        f"task {_name_of(func)!r} was called inside an early call: the real run makes such calls itself"
    )


def _inject(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: RunnableConfig,
    runtime: Any,
) -> dict[str, Any]:
    """`kwargs` with what LangGraph injects into a task function by parameter name."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return kwargs
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs).arguments
    except TypeError:
        return kwargs
    out = dict(kwargs)
    for name, value in (
        ("config", config),
        ("runtime", runtime),
        ("store", getattr(runtime, "store", None)),
        ("writer", getattr(runtime, "stream_writer", None)),
    ):
        if (
            name in params
            and name not in bound
            and params[name].kind is not inspect.Parameter.POSITIONAL_ONLY
        ):
            out[name] = value
    return out


def _call_in(
    config: RunnableConfig, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    token = var_child_runnable_config.set(config)
    try:
        return func(*args, **kwargs)
    finally:
        var_child_runnable_config.reset(token)


async def _acall_in(
    config: RunnableConfig, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    var_child_runnable_config.set(config)  # this task's own context
    return await func(*args, **kwargs)


class _RefusingStore(BaseStore):
    """A branch's store: reads go to the run's store; a write stops the branch."""

    def __init__(self, inner: BaseStore) -> None:
        self.inner = inner

    @staticmethod
    def _check(ops: list[Op]) -> None:
        if any(isinstance(op, PutOp) for op in ops):
            raise _BranchStopped("a branch never writes to the store: the real run makes that write")

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._check(ops)
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._check(ops)
        return await self.inner.abatch(ops)
