"""Guessing: a speculative call's speculator, run beside its actor, and a branch per guess.

When a call may speculate (its node has a speculator, the run is within `depth` of it, and the
budget, the run's `max_concurrency` and a busy process allow it), its speculator runs beside the
actor on a private copy of the call's input (`private_copy`: of a dict state, only the channels
it reads are copied); its guesses, filtered by confidence and `k` and chosen
by adaptive speculation, each become a branch (see `Forks`). A `Session` owns one `Guesser` and
provides what it needs (`GuessHost`).
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.runtime import Runtime

from ._futures import cancelling, contained, unwrap
from ._guesses import coerce_guesses, describe, jsonable
from ._policy import Guess
from ._state import Binding, Branch, Entry, Run, forget_when_done, private_copy
from ._stores import BranchStore
from ._threads import has_sync_path
from ._trace import quiet, untraced

if TYPE_CHECKING:
    from ._adaptive import NodeTuning, RunTuning
    from ._branches import Forks
    from ._budget import ProcessBudget
    from ._concurrency import SharedLimit
    from ._plan import Plan
    from ._report import SpeculationReport

__all__ = ("GuessHost", "Guesser", "step_of")

_NO_GUESS = object()  # the speculator failed, timed out or was cancelled (an event says which)


class GuessHost(Protocol):
    """What guessing needs from the run it speculates for (a `Session`)."""

    plan: Plan
    run: Run
    report: SpeculationReport
    branches: dict[str, Branch]
    speculated: weakref.WeakSet[Entry]
    closed: bool
    main_level: int
    budget: ProcessBudget
    adaptive: RunTuning
    limit: SharedLimit
    forks: Forks

    @property
    def mode(self) -> str: ...

    def emit(self, event: str, node: str, **data: Any) -> None: ...

    def spawn(self, coro: Any, holder: Branch | Entry | None = None) -> asyncio.Task[Any]: ...

    def acquire(self) -> str | None: ...

    def not_started(self, node: str, why: str) -> None: ...

    def call(self, runnable: Any, arg: Any, config: RunnableConfig) -> Any: ...

    def _cancel_branch(self, branch: Branch, why: str) -> None: ...


@dataclass(eq=False)
class _Watch:
    """One prefetch of an adaptive node, checked against what the main run calls next: each
    successor it could launch (launched or not) with the key its early call had."""

    tuning: NodeTuning
    step: int
    keys: dict[str, str]
    started: float
    hits: set[str] = field(default_factory=set)
    saved: float | None = None


class Guesser:
    """Runs speculators and branches out on their guesses, for one run; and launches the
    successors of `prefetch=` nodes early, without a speculator."""

    def __init__(self, session: GuessHost) -> None:
        self.s = session
        self.groups: list[tuple[int | None, Branch]] = []  # prefetch groups, by the step they began
        self.watches: list[_Watch] = []  # adaptive prefetches not yet checked
        self.watched: Counter[str] = Counter()  # successors they check: the main run keys these

    # ------------------------------------------------------------------ prefetch

    def prefetch(self, b: Binding, state: Any, config: RunnableConfig) -> None:
        """On the loop: `b` (listed in `prefetch=`) starts on the main run: launch the nodes that
        can follow it early on its input (at most `policy.k`), each keyed by its own key; the
        main run adopts the one whose key matches on its real input. With an adaptive policy,
        only the successors whose early calls the graph's runs have shown to pay, likeliest
        first; every successor is checked against the main run's next call, launched or not."""
        s = self.s
        if s.closed or b.policy is None or s.budget.shedding():
            return
        step = step_of(config)
        eligible = [
            (name, t)
            for name in b.prefetch
            if (t := s.plan.bindings.get(name)) is not None and _may_prefetch(t, s.run, s.plan.gates)
        ]
        tuning = s.adaptive.tuner.node(b)
        keys: dict[str, str] = {}
        if tuning is not None:  # every successor keyed now, to be checked
            keys = {name: key for name, t in eligible if (key := _key_of(t, state)) is not None}
            if step is not None and keys:
                self.watches.append(_Watch(tuning, step, keys, time.monotonic()))
                self.watched.update(list(keys))
            order = tuning.choose_successors(list(keys))
            eligible = [(name, s.plan.bindings[name]) for name in order]
        parent = Entry(b, None, s.main_level, state, config, None, owner=None)
        bid = f"{s.run.thread_id or 'run'}:prefetch:{uuid.uuid4().hex[:12]}"
        group = Branch(parent, Guess({}), 0, s.main_level + 1, bid, slot=False)
        launched: list[str] = []
        for name, t in eligible:
            if len(launched) >= b.policy.k:
                break
            key = keys[name] if name in keys else _key_of(t, state)
            if key is None:  # a key that cannot read this input: nothing to launch
                continue
            cfg = _prefetch_config(config, name, s.run)
            if s.forks.launch(t, key, state, cfg, group, None) is not None:
                launched.append(name)
        if group.entries:
            s.branches[group.bid] = group
            self.groups.append((step, group))
        if group.entries or keys:
            skipped = sorted(set(keys) - set(launched))
            extra = {"skipped": skipped} if keys else {}
            s.emit("prefetch", b.name, launched=launched, thread=group.bid, **extra)

    def seen(self, name: str, key: str, step: int | None) -> None:
        """On the loop: the main run calls `name` at `step` with `key`: a prefetch made the step
        before whose early call of `name` had this key was (or would have been) adopted."""
        for w in self.watches:
            if step == w.step + 1 and w.keys.get(name) == key:
                w.hits.add(name)
                if w.saved is None:
                    w.saved = time.monotonic() - w.started

    def expire(self, step: int | None) -> None:
        """On the loop: the main run started a call at `step`: prefetches begun two or more steps
        before were not wanted (their successor step has passed): cancel what is left of them,
        and learn what the adaptive ones showed."""
        if step is None:
            return
        self.settle(lambda w: step > w.step + 1)
        if not self.groups:
            return
        keep = []
        for began, group in self.groups:
            if began is not None and step > began + 1:
                self.s._cancel_branch(group, "prefetch_unused")
            else:
                keep.append((began, group))
        self.groups = keep

    def settle(self, due: Callable[[_Watch], bool] = lambda w: True) -> None:
        """Learn from the adaptive prefetches that are `due` (all of them when the run ends):
        each successor they checked was adopted, or would have been, or not."""
        if not self.watches:
            return
        keep = []
        for w in self.watches:
            if due(w):
                w.tuning.observe_successors({n: n in w.hits for n in w.keys}, w.saved)
                self.watched.subtract(list(w.keys))
            else:
                keep.append(w)
        self.watches = keep
        self.watched = +self.watched

    def _eligible(self, entry: Entry) -> bool:
        """May `entry` branch now? Branches reach at most `depth` speculative nodes ahead."""
        policy = entry.binding.policy
        return policy is not None and entry.level - self.s.main_level < policy.depth

    def maybe_speculate(self, entry: Entry) -> None:
        """Start the speculator beside the call once `depth` allows branching.

        Early calls start theirs only when the main run comes within `depth` speculative
        nodes: a speculator on a branch that may lose is wasted work.
        """
        b = entry.binding
        if (
            entry.speculated
            or self.s.closed
            or not b.speculative
            or entry.source is None
            or b.name in self.s.run.after
            or b.name in self.s.plan.gates
            or not self._eligible(entry)
        ):
            return
        entry.speculated = True
        if self.s.budget.shedding():  # a busy server: not even the speculator runs
            self.s.not_started(b.name, "busy")
            return
        entry.spec_task = self.s.spawn(self._speculate(entry))
        forget_when_done(entry.spec_task, entry, "spec_task")

    def deepen(self, entry: Entry) -> None:
        """The main run moved to `entry`: calls below it may now branch deeper."""
        for branch in entry.branches:
            if branch.cancelled:
                continue
            for child in branch.entries:
                if not child.cancelled and self._eligible(child):
                    self.maybe_speculate(child)
                    self.deepen(child)

    async def _speculate(self, entry: Entry) -> None:
        b = entry.binding
        if not self.s.adaptive.begin(
            cast(Any, self.s), entry
        ):  # adaptive speculation: off this step (issue 18)
            return
        if not self.s.limit.try_speculative():  # the main run uses the run's max_concurrency
            self.s.not_started(b.name, "max_concurrency")
            return
        t0 = time.monotonic()
        try:
            raw = await self._guess(entry)
        finally:
            self.s.limit.speculative_ended()
        if raw is not _NO_GUESS:
            self._branch_out(entry, raw, t0)

    async def _guess(self, entry: Entry) -> Any:
        """The speculator's raw answer for `entry`, or `_NO_GUESS` (its failure is an event)."""
        b = entry.binding
        assert b.speculator is not None and b.policy is not None
        policy, stats = b.policy, self.s.report.node(b.name)
        callbacks = quiet(entry.config.get("callbacks"))
        try:
            # the speculator cannot change the run's state: it reads a copy, made as it reads
            # (only the channels it reads), or whole when a tracer records its input
            state = private_copy(entry.state) if untraced(callbacks) else copy.deepcopy(entry.state)
        except Exception as exc:
            stats.speculator_errors += 1
            self.s.emit("speculator_error", b.name, error=f"its input could not be copied: {describe(exc)}")
            return _NO_GUESS
        cfg: RunnableConfig = {
            **_speculative_config(entry.config, self.s.run, speculator=True),
            "callbacks": callbacks,
            "run_name": f"{b.name}:speculator",
        }
        cfg = self.s.adaptive.speculator_config(entry, cfg)  # counts its tokens (issue 18)
        if self.s.mode == "sync" and not has_sync_path(b.speculator):
            self.s.plan.warn_once(
                f"async-speculator:{b.name}",
                f"the speculator of node {b.name!r} is async only, so sync runs (invoke, stream) run "
                "it on the library's event loop: an async client it shares with your own event loop "
                "(LangChain's OpenAI client keeps one per process) can then fail there with 'bound to "
                "a different event loop'. Give it a sync path too: RunnableLambda(sync_fn, "
                "afunc=async_fn), or a Runnable with invoke and ainvoke",
                stacklevel=2,
            )
        # this task runs in a copy of the node's context, whose config holds the run's internals:
        # the speculator's call (which may outlive the run on the process pool) sees its own
        var_child_runnable_config.set(cfg)
        try:
            raw = await asyncio.wait_for(
                contained(self.s.call(b.speculator, state, cfg)), policy.speculator_timeout
            )
        except asyncio.CancelledError:
            if cancelling():
                raise
            stats.speculator_errors += 1
            self.s.emit("speculator_error", b.name, error="CancelledError raised by the speculator")
            return _NO_GUESS
        except (asyncio.TimeoutError, TimeoutError):
            stats.speculator_errors += 1
            self.s.emit("speculator_timeout", b.name, timeout_s=policy.speculator_timeout)
            return _NO_GUESS
        except BaseException as exc:
            stats.speculator_errors += 1
            self.s.emit("speculator_error", b.name, error=describe(unwrap(exc)))
            return _NO_GUESS
        return raw

    def _branch_out(self, entry: Entry, raw: Any, t0: float) -> None:
        """A branch per guess the speculator gave (the best `k` the policy and budget allow)."""
        b = entry.binding
        assert b.policy is not None
        policy, stats = b.policy, self.s.report.node(b.name)
        guesses, problems = coerce_guesses(raw, self.s.plan.channels, self.s.plan.node_names)
        if problems:
            stats.speculator_errors += 1
            self.s.emit("invalid_guess", b.name, problems=problems)
        guesses = [
            g
            for g in guesses
            if policy.min_confidence is None or g.confidence is None or g.confidence >= policy.min_confidence
        ][: policy.k]
        self.s.emit(
            "guesses",
            b.name,
            guesses=[jsonable(g.update) for g in guesses],
            confidences=[g.confidence for g in guesses],
            speculator_s=round(time.monotonic() - t0, 6),
            level=entry.level,
        )
        chosen = self.s.adaptive.choose(cast(Any, self.s), entry, guesses)  # adaptive speculation (issue 18)
        if self.s.closed or entry.resolved or (entry.owner is None and entry.adopted and entry.result.done()):
            return
        for rank, guess in chosen:
            why = self.s.acquire()
            if why is not None:
                self.s.not_started(b.name, why)
                break
            branch = Branch(
                entry,
                guess,
                rank,
                entry.level + 1,
                f"{self.s.run.thread_id or 'run'}:spec:{uuid.uuid4().hex[:12]}",
            )
            entry.branches.append(branch)
            self.s.speculated.add(entry)
            self.s.branches[branch.bid] = branch
            stats.guesses += 1
            branch.task = self.s.spawn(self.s.forks.run_branch(branch), holder=branch)
            forget_when_done(branch.task, branch, "task")


def step_of(config: RunnableConfig) -> int | None:
    """The superstep a node's call belongs to (LangGraph's `langgraph_step` metadata)."""
    step = (config.get("metadata") or {}).get("langgraph_step")
    return step if isinstance(step, int) else None


def _key_of(t: Binding, state: Any) -> str | None:
    """`t`'s key on `state`; None when its key function cannot read it."""
    try:
        return t.key(state)
    except BaseException:
        return None


def _may_prefetch(t: Binding, run: Run, gates: set[str]) -> bool:
    """May `t` be launched early on its predecessor's input? Not a node with side effects, one
    that asks a person or is interrupted around, a tool node (it would read the predecessor's
    tool calls), or one holding a subgraph (whose checkpoints belong in the main thread)."""
    return not (
        t.unsafe
        or t.gate
        or t.inline
        or t.read_only_tools is not None
        or t.name in run.before
        or t.name in run.after
        or t.name in gates
    )


_QUIET_RUNTIME = Runtime()


def _speculative_config(config: RunnableConfig, run: Run, *, speculator: bool = False) -> RunnableConfig:
    """`config` for speculative work: a runtime whose store it reads through and cannot write to
    directly (an early call's writes wait for its adoption; anything else's stop it).

    A speculator's (`speculator=True`) also goes without LangGraph's internals (the `__pregel_*`
    keys: they hold the run's Pregel loop, which a speculator still running on the process pool
    when the run ends must not keep alive, and its checkpointer, which a speculator that is
    itself a graph must never write to), and its runtime's stream writer and heartbeat do
    nothing (a guess never reaches the user's stream)."""
    conf: dict[str, Any] = {}
    for k, v in (config.get("configurable") or {}).items():
        if isinstance(v, Runtime):
            changes: dict[str, Any] = {}
            if run.store is not None:
                changes["store"] = BranchStore(run.store.inner)
            if speculator:
                quiet = _QUIET_RUNTIME
                changes.update(stream_writer=quiet.stream_writer, heartbeat=quiet.heartbeat, control=None)
            conf[k] = v.override(**changes) if changes else v
        elif not (speculator and k.startswith("__pregel_")):
            conf[k] = v
    return {**config, "configurable": conf}


def _prefetch_config(config: RunnableConfig, name: str, run: Run) -> RunnableConfig:
    """The config of an early call of `name` made on its predecessor's input: the predecessor's,
    named for `name`, with a store whose writes wait for adoption."""
    metadata = {**(config.get("metadata") or {}), "langgraph_node": name}
    return {**_speculative_config(config, run), "metadata": metadata}
