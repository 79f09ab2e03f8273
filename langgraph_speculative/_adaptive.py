"""Adaptive speculation at run time, and the cost accounting of every run.

`Tuner` (one per compiled graph, on its `Plan`) keeps each adaptive node's estimates, shared by
all runs of the graph (a server learns across requests) and guarded by a lock per node.
`RunTuning` (one per session) is what the session calls, all on the session's event loop:

- `begin`: the speculator is about to be called for a call. Counts it; for an adaptive node
  decides on / probe / off, and False means: do not call it this time.
- `speculator_config`: the speculator's config, with a token counter.
- `choose`: of the speculator's guesses, which get branches (the speculator's ranks kept).
- `may_launch` / `launched`: the run's budget of speculative calls and tokens; an early call's
  config, with a token counter.
- `observe`: the actor answered. Every guess is checked (branched or not), the estimates learn.
- `finish`: the run ended: the tokens of early calls never adopted count as wasted.

None of this touches what is committed: it only decides whether the speculator is called and
how many of its guesses get branches.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from . import _estimate as est
from ._adaptive_policy import AdaptivePolicy
from ._costs import TokenCounter, output_tokens, with_handler
from ._runtrace import RunSummary, TracedRun, find_tracers

if TYPE_CHECKING:
    import concurrent.futures

    from langchain_core.runnables import RunnableConfig

    from ._policy import Guess
    from ._state import Binding, Entry

__all__ = ("NodeTuning", "RunTuning", "SpeculatingRun", "Tuner")


class _PlanView(Protocol):
    @property
    def tuning(self) -> Tuner: ...

    @property
    def bindings(self) -> dict[str, Binding]: ...


class SpeculatingRun(TracedRun, Protocol):
    """What adaptive speculation reads of a speculating run (a `Session`): its plan's tuning,
    its report and its events; the session depends on this module, never the other way."""

    @property
    def plan(self) -> _PlanView: ...

    def emit(self, event: str, node: str, **data: Any) -> None: ...


def adaptive_policy(binding: Binding) -> AdaptivePolicy | None:
    """The binding's adaptive policy, if it has one."""
    policy = binding.policy
    adaptive = getattr(policy, "adaptive", None) if policy is not None else None
    return adaptive if isinstance(adaptive, AdaptivePolicy) else None


class NodeTuning:
    """One node's estimates and decisions (thread-safe)."""

    def __init__(self, name: str, policy: AdaptivePolicy) -> None:
        self.name = name
        self.policy = policy
        self.estimates = est.Estimates()
        self.successors = est.Successors()  # what prefetching its successors showed
        self.rng = random.Random(f"{policy.seed}:{name}")
        self._lock = threading.Lock()

    def gate(self, *, path: float, k: int, may_probe: bool) -> est.Gate:
        """Call the speculator to branch, only to check it, or not at all."""
        with self._lock:
            return est.gate(self.estimates, self.policy, self.rng, path=path, k=k, may_probe=may_probe)

    def choose(
        self, confidences: Sequence[float | None], *, path: float, limit: int | None
    ) -> tuple[list[int], list[float], float]:
        """The ranks worth a branch, with every guess's hit rate and the expected saving."""
        with self._lock:
            ranks = est.choose(self.estimates, confidences, self.policy, path=path, limit=limit)
            rates = [
                est.hit_rate(self.estimates, r, c, self.policy.prior) for r, c in enumerate(confidences, 1)
            ]
            return ranks, rates, est.saved_s(self.estimates)

    def hit_rate(self, rank: int, confidence: float | None) -> float:
        """The current chance that a guess at `rank` with `confidence` is right."""
        with self._lock:
            return est.hit_rate(self.estimates, rank, confidence, self.policy.prior)

    def observe(self, outcome: est.Outcome) -> None:
        """Learn from one answered call."""
        with self._lock:
            est.observe(self.estimates, outcome, self.policy)

    def choose_successors(self, names: Sequence[str]) -> list[str]:
        """Of the successors a prefetch could launch, those worth an early call, likeliest first."""
        with self._lock:
            tokens = self.estimates.call_tokens.get(0.0)
            return est.choose_successors(self.successors, names, self.policy, tokens=tokens)

    def observe_successors(self, hits: dict[str, bool], saved: float | None) -> None:
        """Learn from one prefetch: per successor checked, whether the main run adopted (or would
        have adopted) its early call."""
        with self._lock:
            est.observe_successors(self.successors, hits, saved, self.policy)

    def add_tokens(self, kind: str, tokens: int) -> None:
        """Learn the tokens of one speculative call ("call") or speculator call ("speculator")."""
        keep = 1.0 - 1.0 / self.policy.window
        with self._lock:
            mean = self.estimates.call_tokens if kind == "call" else self.estimates.speculator_tokens
            mean.add(float(tokens), keep)

    def snapshot(self) -> dict[str, Any]:
        """The estimates as plain data."""
        with self._lock:
            e, prior = self.estimates, self.policy.prior
            out: dict[str, Any] = {
                "hit_rates": [round(est.hit_rate(e, r, None, prior), 4) for r in range(1, len(e.ranks) + 1)],
                "checked": round(e.steps, 3),
                "actor_s": round(e.actor_s.get(0.0), 6),
                "speculator_s": round(e.speculator_s.get(0.0), 6),
                "saved_s": round(est.saved_s(e), 6),
                "call_tokens": round(e.call_tokens.get(0.0), 1),
                "speculator_tokens": round(e.speculator_tokens.get(0.0), 1),
            }
            if self.successors.rates:  # a prefetch= node: each successor's adoption rate
                out["prefetch_hit_rates"] = {
                    n: round(self.successors.rate(n, prior), 4) for n in sorted(self.successors.rates)
                }
            return out


class Tuner:
    """The adaptive estimates of one compiled graph, per node, shared by all its runs."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeTuning] = {}
        self._lock = threading.Lock()
        self._budgets: tuple[int | None, int | None] | None = None

    def node(self, binding: Binding) -> NodeTuning | None:
        """The tuning of `binding`'s node (created on first use), None if it is not adaptive."""
        policy = adaptive_policy(binding)
        if policy is None:
            return None
        tuning = self._nodes.get(binding.name)
        if tuning is None:
            with self._lock:
                tuning = self._nodes.setdefault(binding.name, NodeTuning(binding.name, policy))
        return tuning

    def budgets(self, bindings: dict[str, Binding]) -> tuple[int | None, int | None]:
        """The per-run budgets of calls and tokens: the smallest among the adaptive policies."""
        if self._budgets is None:
            policies = [p for b in bindings.values() if (p := adaptive_policy(b)) is not None]
            calls = [p.max_calls for p in policies if p.max_calls is not None]
            tokens = [p.max_tokens for p in policies if p.max_tokens is not None]
            self._budgets = (min(calls) if calls else None, min(tokens) if tokens else None)
        return self._budgets

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every adaptive node's estimates as plain data: hit rate by rank, latencies, tokens."""
        with self._lock:
            nodes = dict(self._nodes)
        return {name: t.snapshot() for name, t in sorted(nodes.items())}


@dataclass(eq=False)
class _Step:
    """One speculator call of a run."""

    tuning: NodeTuning | None  # None: a node with a static policy (accounting only)
    started: float
    mode: str
    arrived: float | None = None
    ended: float | None = None
    guesses: list[Guess] = field(default_factory=list)
    tokens: TokenCounter | None = None


@dataclass(eq=False)
class _Call:
    """One early call of a run, for its tokens."""

    name: str
    parent: NodeTuning | None  # the tuning of the node whose branch launched it
    tokens: TokenCounter
    result: concurrent.futures.Future[Any]
    adopted: bool = False

    def total(self) -> int:
        """Its tokens: what its callbacks saw, else the usage in its update."""
        if self.tokens.tokens or not self.result.done() or self.result.cancelled():
            return self.tokens.tokens
        if self.result.exception() is not None:
            return 0
        return output_tokens(self.result.result())


class RunTuning:
    """A session's adaptive decisions and cost accounting (see the module docstring)."""

    def __init__(self, session: SpeculatingRun) -> None:
        self.tuner: Tuner = session.plan.tuning
        self.max_calls, self.max_tokens = self.tuner.budgets(session.plan.bindings)
        self.tokens = 0  # tokens of this run's speculative work so far (early calls and speculators)
        self.spent = False
        self._steps: weakref.WeakKeyDictionary[Entry, _Step] = weakref.WeakKeyDictionary()
        self._calls: list[_Call] = []
        self._by_entry: weakref.WeakKeyDictionary[Entry, _Call] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.summary = RunSummary.install(session)
        self.tracers: list[Any] = []

    # ------------------------------------------------------------------ budget

    def _add_tokens(self, n: int) -> None:
        with self._lock:
            self.tokens += n

    def _within_budget(self, session: SpeculatingRun) -> bool:
        if self.spent:
            return False
        over = (self.max_calls is not None and session.report.launched >= self.max_calls) or (
            self.max_tokens is not None and self.tokens >= self.max_tokens
        )
        if over:
            self.spent = True
            session.emit("budget_spent", "", launched=session.report.launched, tokens=self.tokens)
        return not over

    def may_launch(self, session: SpeculatingRun) -> bool:
        """May the run launch another speculative call (its budget not spent)?"""
        if self.max_calls is None and self.max_tokens is None:
            return True
        return self._within_budget(session)

    # ------------------------------------------------------------------ the speculator

    def begin(self, session: SpeculatingRun, entry: Entry) -> bool:
        """The speculator is about to run for `entry`: count it, and decide whether it should."""
        tuning = self.tuner.node(entry.binding)
        mode = "static"
        if tuning is not None:
            main = entry.owner is None or entry.adopted
            if (self.max_calls is not None or self.max_tokens is not None) and not self._within_budget(
                session
            ):
                mode = "off"
            else:
                policy = entry.binding.policy
                k = policy.k if policy is not None else 1
                mode = tuning.gate(path=self._path(entry), k=k, may_probe=main)
            if mode == "off":
                session.emit("adaptive", entry.name, mode="off", level=entry.level)
                return False
        step = _Step(tuning, time.monotonic(), mode)
        self._steps[entry] = step
        stats = session.report.node(entry.name)
        stats.speculator_calls += 1
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: self._speculator_done(session, entry.name, step))
        return True

    def _speculator_done(self, session: SpeculatingRun, name: str, step: _Step) -> None:
        step.ended = step.ended or time.monotonic()
        stats = session.report.node(name)
        stats.speculator_s += step.ended - step.started
        if step.tokens is not None and step.tokens.tokens:
            stats.speculator_tokens += step.tokens.tokens
            if step.tuning is not None and step.arrived is not None:
                step.tuning.add_tokens("speculator", step.tokens.tokens)

    def speculator_config(self, entry: Entry, cfg: RunnableConfig) -> RunnableConfig:
        """The speculator's config, counting its tokens."""
        step = self._steps.get(entry)
        if step is None:
            return cfg
        step.tokens = TokenCounter(self._add_tokens)
        return with_handler(cfg, step.tokens)

    def choose(self, session: SpeculatingRun, entry: Entry, guesses: list[Guess]) -> list[tuple[int, Guess]]:
        """The guesses that get branches, with the speculator's ranks: all of them for a static
        policy, those worth their price for an adaptive one."""
        step = self._steps.get(entry)
        if step is None:
            return list(enumerate(guesses, 1))
        step.arrived = step.ended = time.monotonic()
        step.guesses = list(guesses)
        if step.tuning is None or not guesses:
            return list(enumerate(guesses, 1))
        limit = None
        if self.max_calls is not None:
            limit = max(0, self.max_calls - session.report.launched)
        if not self.may_launch(session):
            limit = 0
        path = self._path(entry)
        ranks, rates, saved = step.tuning.choose([g.confidence for g in guesses], path=path, limit=limit)
        session.emit(
            "adaptive",
            entry.name,
            mode=step.mode,
            branched=ranks,
            hit_rates=[round(q, 4) for q in rates],
            saved_s=round(saved, 6),
            path=round(path, 4),
            level=entry.level,
        )
        return [(r, guesses[r - 1]) for r in ranks]

    def _path(self, entry: Entry) -> float:
        """The chance that `entry`'s branch (and every branch above it) is right: the product of
        the hit rates of the guesses not yet confirmed on the way up to the main run."""
        p, e = 1.0, entry
        while e.owner is not None and not e.adopted:
            branch = e.owner
            if branch.outcome != "hit":
                parent = self.tuner.node(branch.parent.binding)
                if parent is not None:
                    p *= parent.hit_rate(branch.rank, branch.guess.confidence)
            e = branch.parent
        return p

    # ------------------------------------------------------------------ early calls

    def launched(self, entry: Entry) -> None:
        """`entry` is launched early on a branch: count its tokens."""
        owner = entry.owner
        parent = self.tuner.node(owner.parent.binding) if owner is not None else None
        counter = TokenCounter(self._add_tokens)
        entry.config = with_handler(entry.config, counter)
        call = _Call(entry.name, parent, counter, entry.result)
        self._calls.append(call)
        self._by_entry[entry] = call

    # ------------------------------------------------------------------ outcomes

    def observe(self, session: SpeculatingRun, entry: Entry, result: Any) -> None:
        """`entry`'s actor answered `result` (on the main run): learn, and count tokens."""
        call = self._by_entry.pop(entry, None)
        if call is not None and not call.adopted:
            call.adopted = True
            tokens = call.tokens.tokens or output_tokens(result)
            session.report.node(call.name).tokens_adopted += tokens
            if call.parent is not None:
                call.parent.add_tokens("call", tokens)
        if self.summary is not None and not self.tracers and entry.owner is None:
            self.tracers = find_tracers(entry.config.get("callbacks"))
        step = self._steps.pop(entry, None)
        now = time.monotonic()
        actor_end = entry.finished or now
        if step is None:  # the speculator was not called: only the actor's latency to learn
            tuning = self.tuner.node(entry.binding)
            if tuning is not None and entry.binding.speculative:
                tuning.observe(est.Outcome(actor_s=actor_end - entry.started))
            return
        if step.tuning is None:
            return
        lead = lag = None
        hits: list[bool] = []
        if step.arrived is not None:
            lead = actor_end - step.arrived
            found = False
            for guess in step.guesses:
                ok = not found and _matches(entry.binding, guess.update, result)
                found = found or ok
                hits.append(ok)
            starts = [br.entries[0].started for br in entry.branches if br.entries]
            lag = (min(starts) - step.arrived) if starts else None
        elif step.ended is None:
            lead = 0.0  # the speculator had not answered: a branch would have hidden nothing
        step.tuning.observe(
            est.Outcome(
                hits=tuple(hits),
                confidences=tuple(g.confidence for g in step.guesses),
                actor_s=actor_end - entry.started,
                speculator_s=(step.ended or now) - step.started,
                lead_s=lead,
                lag_s=lag,
            )
        )

    def pending_tokens_wasted(self) -> dict[str, int]:
        """Tokens, per node, of the run's early calls not adopted (so far)."""
        out: dict[str, int] = {}
        for call in self._calls:
            if not call.adopted:
                out[call.name] = out.get(call.name, 0) + call.total()
        return out

    def finish(self, session: SpeculatingRun) -> None:
        """The run ended: the tokens of early calls never adopted are wasted."""
        for call in self._calls:
            if call.adopted:
                continue
            tokens = call.total()
            if tokens:
                session.report.node(call.name).tokens_wasted += tokens
            done = call.result.done() and not call.result.cancelled() and call.result.exception() is None
            if call.parent is not None and done:
                call.parent.add_tokens("call", tokens)
        self._calls.clear()


def _matches(binding: Binding, guess: Any, actual: Any) -> bool:
    try:
        return bool(binding.match(guess, actual))
    except BaseException:  # a failing match is a miss (the session reports it for branches)
        return False
