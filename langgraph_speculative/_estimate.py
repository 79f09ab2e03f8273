"""Adaptive speculation's arithmetic: a node's online estimates, and the rule that spends guesses.

Pure functions over plain data, no clocks and no I/O: `_adaptive` feeds them what runs observe,
`benchmarks/adaptive.py` a simulated timeline, the tests numbers.

The model, per node. A guess at rank r (with the speculator's confidence c, when it gives one)
is right with probability q(r, c). A branch for a right guess hides about `saved` seconds of the
next slow call: how long the actor still ran after the guesses arrived and the branch launched
(capped at the actor's own latency, the most one call can hide). A branch for a wrong guess
wastes about as many actor-seconds, and the tokens of one speculative call. With
λ = `cost_weight` per wasted second and τ = `token_price` per wasted token, a guess is worth

    v = π·q·saved − (1 − π·q)·(λ·saved + τ·tokens)

where π is the chance that the branch the guess would grow from is right itself: 1 on the main
run, the product of its ancestors' q deeper in a tree. At most one guess is right, so values add
and the best set of branches is every guess with v > 0, at most `k`: that chooses k each step
and, through π, how deep a tree grows (up to `depth`). The speculator is worth calling when the
step's expected value (over ranks, the mean of max(v, 0) over the confidences seen at that rank)
exceeds its own cost λ·speculator_s + τ·speculator_tokens: "on". Otherwise it is called only to
probe: always until about five outcomes are seen, then with the chance that a draw from the
posterior of the rank-1 hit rate would pay, and at least `probe`. A probe branches only guesses
that are worth it on their own (none, usually): learning that speculation pays again costs
speculator calls, not wasted actor calls.

Estimates. Every guess the speculator returned is checked when the actor answers, branched or
not, so hit rates are learned for all ranks at once. They are discounted counts (each outcome
multiplies the older ones by 1 − 1/window): q(1) = (hits + 0.4·prior) / (seen + 0.4) for the best
guess (at the default price, two misses of a node never seen right switch it off), q(r) =
hits / (seen + 0.4) below it, and a confidence
bin's own counts refine it, q(r, c) = (hits_b + 2·q(r)) / (seen_b + 2), so a speculator's
confidence feeds the estimate as far as it has proven calibrated. Latencies and token counts are
discounted means of what runs saw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._adaptive_policy import AdaptivePolicy

__all__ = (
    "BINS",
    "Estimates",
    "Mean",
    "Outcome",
    "Rate",
    "Successors",
    "choose",
    "choose_successors",
    "gate",
    "guess_value",
    "hit_rate",
    "observe",
    "observe_successors",
    "saved_s",
    "speculator_cost",
    "step_value",
)

BINS = 5  # confidence bins of width 0.2; bin BINS holds guesses without a confidence
_PRIOR_WEIGHT = 0.4  # the prior weighs 0.4 outcomes: two misses of a node never right outweigh it
_LEARN = 5.0  # a node's speculator is checked (without branching) until about 5 outcomes are seen
_SHRINK = 2.0  # a confidence bin's estimate counts its rank's estimate as this many outcomes

Gate = Literal["on", "probe", "off"]


@dataclass
class Rate:
    """Discounted counts of a yes/no outcome."""

    hits: float = 0.0
    seen: float = 0.0

    def add(self, hit: bool, keep: float) -> None:
        """Count one outcome, the older ones weighing `keep` times what they did."""
        self.hits = self.hits * keep + (1.0 if hit else 0.0)
        self.seen = self.seen * keep + 1.0

    def with_prior(self, prior: float) -> float:
        """The rate, `prior` weighing 0.4 of an outcome (0 before any outcome with no prior)."""
        return (self.hits + _PRIOR_WEIGHT * prior) / (self.seen + _PRIOR_WEIGHT)


@dataclass
class Mean:
    """A discounted mean."""

    total: float = 0.0
    weight: float = 0.0

    def add(self, x: float, keep: float) -> None:
        """Add one sample, the older ones weighing `keep` times what they did."""
        self.total = self.total * keep + x
        self.weight = self.weight * keep + 1.0

    def get(self, default: float) -> float:
        """The mean, or `default` before any sample."""
        return self.total / self.weight if self.weight > 0 else default


@dataclass
class Estimates:
    """What one node's speculation has shown so far (one per compiled graph and node)."""

    ranks: list[Rate] = field(default_factory=list)
    """Hit counts per rank (index 0: the speculator's best guess)."""
    bins: list[Rate] = field(default_factory=lambda: [Rate() for _ in range(BINS)])
    """Hit counts per confidence bin, over all ranks."""
    mix: list[list[float]] = field(default_factory=list)
    """Per rank, the discounted weight of outcomes in each confidence bin (last: none)."""
    steps: float = 0.0
    """Discounted count of checked steps."""
    actor_s: Mean = field(default_factory=Mean)
    """The actor's latency."""
    speculator_s: Mean = field(default_factory=Mean)
    """The speculator's latency."""
    lag_s: Mean = field(default_factory=Mean)
    """From the guesses' arrival to a branch's first launched call."""
    saved_s: Mean = field(default_factory=Mean)
    """What a branch of a right guess hides: the actor's time left after the launch, capped."""
    call_tokens: Mean = field(default_factory=Mean)
    """LLM tokens per speculative actor call."""
    speculator_tokens: Mean = field(default_factory=Mean)
    """LLM tokens per speculator call."""

    def rank(self, r: int) -> Rate:
        """The counts of rank `r` (1-based), empty before its first outcome."""
        return self.ranks[r - 1] if r <= len(self.ranks) else Rate()


@dataclass(frozen=True)
class Outcome:
    """What one call showed when its actor answered."""

    hits: tuple[bool, ...] = ()
    """Per guess the speculator returned, best first: was it the one that matched."""
    confidences: tuple[float | None, ...] = ()
    """The guesses' confidences (None where not given)."""
    actor_s: float | None = None
    """The actor's latency."""
    speculator_s: float | None = None
    """The speculator's latency (or how long it had run when the actor answered); None: not called."""
    lead_s: float | None = None
    """From the guesses' arrival to the actor's answer (<= 0: the guesses came too late)."""
    lag_s: float | None = None
    """From the guesses' arrival to a branch's first launched call, when one launched."""


@dataclass
class Successors:
    """What prefetching a node's successors has shown (`prefetch=` with an adaptive policy)."""

    rates: dict[str, Rate] = field(default_factory=dict)
    """Per successor: would an early call made on the node's input have been adopted (checked
    every time, launched or not: the main run's next call of it had the same key)."""
    saved_s: Mean = field(default_factory=Mean)
    """What an adopted early call hid: from the prefetch to the main run's call of it."""

    def rate(self, name: str, prior: float) -> float:
        """The chance that `name`'s early call is adopted (the prior weighs 0.4 of an outcome)."""
        return (self.rates.get(name) or Rate()).with_prior(prior)


def _bin(confidence: float | None) -> int:
    if confidence is None or not math.isfinite(confidence):
        return BINS
    return min(BINS - 1, max(0, int(confidence * BINS)))


def observe(est: Estimates, o: Outcome, policy: AdaptivePolicy) -> None:
    """Update `est` with one outcome."""
    keep = 1.0 - 1.0 / policy.window
    if o.actor_s is not None:
        est.actor_s.add(max(0.0, o.actor_s), keep)
    if o.speculator_s is not None:
        est.speculator_s.add(max(0.0, o.speculator_s), keep)
    if o.lag_s is not None:
        est.lag_s.add(max(0.0, o.lag_s), keep)
    if o.lead_s is not None:
        hidden = max(0.0, o.lead_s - est.lag_s.get(0.0))
        est.saved_s.add(min(hidden, est.actor_s.get(math.inf)), keep)
    if not o.hits:
        return
    est.steps = est.steps * keep + 1.0
    for mix in est.mix:
        mix[:] = [w * keep for w in mix]
    confidences = list(o.confidences) + [None] * (len(o.hits) - len(o.confidences))
    for r, (hit, c) in enumerate(zip(o.hits, confidences)):
        while len(est.ranks) <= r:
            est.ranks.append(Rate())
            est.mix.append([0.0] * (BINS + 1))
        est.ranks[r].add(hit, keep)
        b = _bin(c)
        est.mix[r][b] += 1.0
        if b < BINS:
            est.bins[b].add(hit, keep)


def hit_rate(est: Estimates, rank: int, confidence: float | None, prior: float) -> float:
    """The estimated chance that the guess at `rank` (1-based) with `confidence` is right."""
    return _rate(est, rank, _bin(confidence), prior)


def _rate(est: Estimates, rank: int, b: int, prior: float) -> float:
    q = est.rank(rank).with_prior(prior if rank == 1 else 0.0)
    if b >= BINS:
        return q
    counts = est.bins[b]
    return (counts.hits + _SHRINK * q) / (counts.seen + _SHRINK)


def saved_s(est: Estimates) -> float:
    """Seconds a branch of a right guess is expected to hide: the mean of what branches could
    hide, shrunk towards half of what the latencies leave (the actor's less the speculator's and
    the launch's), which every step updates, so a few unlucky samples cannot stall it."""
    model = max(0.0, est.actor_s.get(2.0) - est.speculator_s.get(0.0) - est.lag_s.get(0.0)) / 2
    s = est.saved_s
    return (s.total + _SHRINK * model) / (s.weight + _SHRINK)


def guess_value(q: float, saved: float, tokens: float, policy: AdaptivePolicy) -> float:
    """Expected seconds saved minus the priced waste of one branch whose guess is right with
    chance `q`."""
    return q * saved - (1.0 - q) * (policy.cost_weight * saved + policy.token_price * tokens)


def speculator_cost(est: Estimates, policy: AdaptivePolicy) -> float:
    """The price of one speculator call, in seconds of saving."""
    return policy.cost_weight * est.speculator_s.get(0.0) + policy.token_price * est.speculator_tokens.get(
        0.0
    )


def choose(
    est: Estimates,
    confidences: Sequence[float | None],
    policy: AdaptivePolicy,
    *,
    path: float = 1.0,
    limit: int | None = None,
) -> list[int]:
    """The 1-based ranks of the guesses worth a branch, in rank order: those with a positive
    value, at most `limit` (the best values first). `confidences` has one item per guess, best
    first; `path` is the chance that the branch they grow from is right (1 on the main run)."""
    saved, tokens = saved_s(est), est.call_tokens.get(0.0)
    scored = []
    for r, c in enumerate(confidences, 1):
        v = guess_value(path * hit_rate(est, r, c, policy.prior), saved, tokens, policy)
        if v > 0:
            scored.append((-v, r))
    scored.sort()
    return sorted(r for _, r in scored[: (len(scored) if limit is None else max(0, limit))])


def choose_successors(
    s: Successors, names: Sequence[str], policy: AdaptivePolicy, *, tokens: float = 0.0
) -> list[str]:
    """Of a node's successors (`names`, in the graph's order), those whose early call is worth
    its price (`guess_value` > 0, each as a guess right with its own rate), likeliest first.
    Before any outcome every successor has the policy's prior, so all of them are worth it."""
    saved = s.saved_s.get(1.0)
    rates = {n: s.rate(n, policy.prior) for n in names}
    likeliest = sorted(names, key=lambda n: -rates[n])  # stable: the graph's order on a tie
    return [n for n in likeliest if guess_value(rates[n], saved, tokens, policy) > 0]


def observe_successors(
    s: Successors, hits: dict[str, bool], saved: float | None, policy: AdaptivePolicy
) -> None:
    """Update `s` with one prefetch's outcome: per successor checked, was it adopted (would it
    have been); `saved`: what the hit hid, when there was one."""
    keep = 1.0 - 1.0 / policy.window
    for name, hit in hits.items():
        s.rates.setdefault(name, Rate()).add(hit, keep)
    if saved is not None:
        s.saved_s.add(max(0.0, saved), keep)


def step_value(est: Estimates, policy: AdaptivePolicy, *, path: float = 1.0, k: int | None = None) -> float:
    """Expected seconds saved minus priced waste of calling the speculator and branching its
    worth-while guesses (up to `k` ranks), from the confidences seen so far at each rank."""
    saved, tokens = saved_s(est), est.call_tokens.get(0.0)
    total = 0.0
    if est.steps > 0:
        for r, mix in enumerate(est.mix[:k], 1):
            for b, w in enumerate(mix):
                if w > 0:
                    v = guess_value(path * _rate(est, r, b, policy.prior), saved, tokens, policy)
                    total += w / est.steps * max(0.0, v)
    return total - speculator_cost(est, policy)


def gate(
    est: Estimates,
    policy: AdaptivePolicy,
    rng: random.Random,
    *,
    path: float = 1.0,
    k: int | None = None,
    may_probe: bool = True,
) -> Gate:
    """Call the speculator to branch ("on"), only to check it ("probe"), or not at all ("off").

    Draws from `rng` only when speculation does not pay (one or two draws), so a seeded `rng`
    gives the same answers for the same estimates.
    """
    if step_value(est, policy, path=path, k=k) > 0:
        return "on"
    if not may_probe:
        return "off"
    best = est.rank(1)
    if best.seen < _LEARN or rng.random() < policy.probe:
        return "probe"
    q = rng.betavariate(best.hits + 1.0, max(0.0, best.seen - best.hits) + 1.0)
    value = guess_value(q, saved_s(est), est.call_tokens.get(0.0), policy)
    return "probe" if value - speculator_cost(est, policy) > 0 else "off"
