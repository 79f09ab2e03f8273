"""Value objects: the speculation policy and a speculator's guess."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._adaptive_policy import AdaptivePolicy, check_int

__all__ = ("Guess", "SpeculationPolicy")


@dataclass(frozen=True, kw_only=True)
class SpeculationPolicy:
    """How much a speculative node may guess ahead.

    Frozen and keyword-only, like LangGraph's `RetryPolicy` and `CachePolicy`.
    """

    k: int = 3
    """How many of the speculator's guesses (best first) get a branch."""

    depth: int = 1
    """How many slow nodes ahead a branch may go. 1 is the paper's Algorithm 1:
    a branch launches the next slow call and stops. More lets a branch speculate
    again at that call, building a tree."""

    min_confidence: float | None = None
    """Guesses whose `confidence` is below this are dropped. Guesses without a
    confidence are always kept."""

    max_inflight: int = 16
    """Bound on speculative calls (branches and early-launched actor calls) in
    flight at once in one run."""

    speculator_timeout: float | None = 30.0
    """Seconds after which a speculator that has not answered is abandoned
    (an event, never an error). `None` waits for as long as the actor runs."""

    enabled: bool = True
    """When False the node runs its actor only, exactly like a plain node."""

    stream_events: bool = False
    """Also send speculation events (`{"type": "speculation", ...}`) to LangGraph's `custom`
    stream, beside your own. Off by default: a run's custom stream carries only what its nodes
    write. On for any node of a graph, it holds for every event of that graph's runs.
    `graph.last_report` keeps the events either way."""

    adaptive: AdaptivePolicy | bool | None = None
    """Learn where guesses pay (`AdaptivePolicy`; True: its defaults). `k` and `depth` are then
    upper bounds, and each step branches only the guesses worth their cost. None: static."""

    def __post_init__(self) -> None:
        if self.adaptive is True or self.adaptive is False:  # adaptive speculation (issue 18)
            object.__setattr__(self, "adaptive", AdaptivePolicy() if self.adaptive else None)
        if self.adaptive is not None and not isinstance(self.adaptive, AdaptivePolicy):
            raise TypeError(
                f"SpeculationPolicy(adaptive={self.adaptive!r}): use AdaptivePolicy(...), True or None"
            )
        check_int("SpeculationPolicy", "k", self.k, 1)
        check_int("SpeculationPolicy", "depth", self.depth, 1)
        check_int("SpeculationPolicy", "max_inflight", self.max_inflight, 1)
        if self.min_confidence is not None and not (
            isinstance(self.min_confidence, (int, float)) and 0.0 <= self.min_confidence <= 1.0
        ):
            raise ValueError(
                f"SpeculationPolicy(min_confidence={self.min_confidence!r}) is invalid: "
                "use a number between 0 and 1, or None to keep every guess."
            )
        if self.speculator_timeout is not None and not (
            isinstance(self.speculator_timeout, (int, float))
            and not isinstance(self.speculator_timeout, bool)
            and self.speculator_timeout > 0
            and math.isfinite(self.speculator_timeout)
        ):
            raise ValueError(
                f"SpeculationPolicy(speculator_timeout={self.speculator_timeout!r}) is "
                "invalid: use a positive number of seconds, or None for no timeout."
            )
        for name in ("enabled", "stream_events"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"SpeculationPolicy({name}={getattr(self, name)!r}) must be True or False.")


@dataclass(frozen=True)
class Guess:
    """One guess of a node's state update, as a speculator returns it.

    A speculator may also return plain update dicts or `Command`s; they become
    guesses without a confidence.
    """

    update: Any
    """What the node's actor would return: an update dict, a `Command`, or a list of `Command`s."""

    confidence: float | None = None
    """Optional confidence in [0, 1], compared with `min_confidence`."""
