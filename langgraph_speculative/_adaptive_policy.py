"""The adaptive policy: how a speculative node learns where guesses pay, as a value object."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ("AdaptivePolicy",)


@dataclass(frozen=True, kw_only=True)
class AdaptivePolicy:
    """Speculate where it pays: learn per node how often guesses are right and what they cost.

    Pass it as `SpeculationPolicy(adaptive=AdaptivePolicy(...))` (or `adaptive=True` for these
    defaults). The policy's `k` and `depth` become upper bounds: each step, of the speculator's
    guesses (best first, after `min_confidence`), a guess gets a branch only when its expected
    wall-clock saving beats the price of the work it may waste; the speculator itself is called
    only when a step's expected saving pays for it, and otherwise now and then, to notice when it
    would. Estimates are kept per compiled graph and node, shared by all its runs (a server learns
    across requests). What is committed is never affected: this only decides how many guesses
    get branches. Frozen and keyword-only, like LangGraph's `RetryPolicy`.
    """

    cost_weight: float = 0.1
    """The price of speculative work, in seconds of expected wall-clock saving per second of
    work it wastes (an actor call launched early and never adopted, or a speculator call). 0.1:
    ten actor-seconds of waste are worth one second saved. 0 speculates wherever a guess has a
    chance; larger values speculate only on guesses that are right more often."""

    token_price: float = 0.0
    """The price of an LLM token that speculative work spends (counted from LangChain usage
    metadata), in seconds of expected saving per token. 0 reports tokens without pricing them;
    1e-4 means a wasted call of 1,000 tokens must be outweighed by 0.1 s of expected saving."""

    max_calls: int | None = None
    """Speculative actor calls one run may launch early; once spent, the run speculates no more.
    None: no budget beyond the price."""

    max_tokens: int | None = None
    """LLM tokens one run's speculative work (early calls and speculator calls) may use; once
    spent, the run speculates no more (calls already in flight finish). None: no budget."""

    window: int = 10
    """How many recent outcomes the estimates weigh: each new outcome discounts the older ones by
    1 - 1/window. A node whose speculator goes from right to useless stops branching within about
    two windows; a longer window gives steadier estimates, a shorter one follows changes faster."""

    prior: float = 0.5
    """The hit rate assumed for the speculator's best guess before any outcome is seen. It weighs
    0.4 of an outcome: at the default price, a node whose first two guesses miss stops branching
    (and checks its speculator without branching until it is seen right). Lower ranks start at
    0: they get branches only once guesses of their rank were seen right (every guess is checked
    against the actor, branched or not, so they are learned without branching)."""

    probe: float = 0.05
    """Least chance per step that a node whose speculation does not pay still calls its
    speculator, to check its guesses against the actor without branching them. Beyond it, a node
    checks on its first few steps, and as often as the uncertainty of its hit rate leaves a chance
    that speculating would pay (Thompson sampling)."""

    seed: int = 0
    """Seed of the probing draws: the same observations give the same decisions."""

    def __post_init__(self) -> None:
        for name in ("cost_weight", "token_price"):
            _check_number(name, getattr(self, name), 0.0, math.inf)
        for name in ("prior", "probe"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None:
                check_int("AdaptivePolicy", name, value, 0)
        check_int("AdaptivePolicy", "window", self.window, 1)
        check_int("AdaptivePolicy", "seed", self.seed, -(2**63))


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise ValueError(f"AdaptivePolicy({name}={value!r}) is invalid: use a finite number {bound}.")


def check_int(owner: str, name: str, value: Any, low: int) -> None:
    """Raise a `ValueError` naming `owner(name=value)` unless `value` is a whole number >= `low`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}({name}={value!r}) is invalid: use a whole number >= {low}.")
