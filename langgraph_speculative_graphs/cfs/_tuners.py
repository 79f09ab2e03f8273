"""Actors and speculators for the tuning loop: offline optimizers or chat models.

Each takes the loop's state (`setting`, `history` of {t, setting, p95}) and
returns an update `{"setting": ms, "by": who}`, clamped to the backend's
range, or `{}` when it has nothing to say.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
from collections.abc import Callable
from typing import Any

__all__ = ("CarefulSearch", "LocalStep", "ChatTuner", "parse_config")

CONFIG = re.compile(r"Config:\s*(\{.*?\})", re.S)


def parse_config(text: str, low: float, high: float) -> float | None:
    """The `slice_ms` of a reply's `Config: {...}`, clamped to [low, high]; None if unparsable."""
    m = CONFIG.search(text or "")
    if not m:
        return None
    try:
        data = json.loads(m.group(1))
        value = float(next(v for k, v in data.items() if "slice" in k or "granularity" in k))
    except (ValueError, StopIteration, AttributeError, TypeError):
        return None
    if not math.isfinite(value):
        return None
    return min(high, max(low, value))


class CarefulSearch:
    """The slow actor: a model-based choice from the whole history.

    It groups the measurements by setting (log-spaced buckets), takes each
    bucket's median p95, and moves to the best bucket's setting; with too few
    distinct settings to compare it probes the geometric middle of the range.
    `deliberation_s` stands in for a large model's thinking time.
    """

    def __init__(self, low: float, high: float, deliberation_s: float = 10.0) -> None:
        self.low, self.high, self.deliberation_s = low, high, deliberation_s

    def decide(self, history: list[dict[str, Any]]) -> float:
        buckets: dict[int, list[tuple[float, float]]] = {}
        for h in history:
            if h.get("p95") is not None:
                buckets.setdefault(round(4 * math.log2(h["setting"])), []).append((h["setting"], h["p95"]))
        if len(buckets) < 3:
            return math.sqrt(self.low * self.high)
        best = min(buckets.values(), key=lambda b: statistics.median(p for _, p in b))
        return min(self.high, max(self.low, statistics.median(s for s, _ in best)))

    async def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        history = list(state["history"])
        await asyncio.sleep(self.deliberation_s)
        return {"setting": self.decide(history), "by": "actor"}


class LocalStep:
    """The fast speculator: one multiplicative step from the last two windows.

    It keeps stepping while p95 improves, goes back when it got worse, and
    holds when nothing changed (a greedy local search in log space). It only
    sees the latest measurements, so it settles on the first flat spot it finds.
    """

    def __init__(self, low: float, high: float, factor: float = 2.0, tolerance: float = 0.1) -> None:
        self.low, self.high, self.factor, self.tolerance = low, high, factor, tolerance

    def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        h = [x for x in state["history"] if x.get("p95") is not None]
        if not h:
            return {}
        cur = h[-1]
        if len(h) == 1:
            value = cur["setting"] / self.factor  # no slope yet: try a shorter slice first
        else:
            prev = h[-2]
            moved = math.log(cur["setting"] / prev["setting"])
            if cur["p95"] > prev["p95"] * (1 + self.tolerance):
                value = prev["setting"]  # worse: go back
            elif abs(moved) > 1e-9 and cur["p95"] < prev["p95"] * (1 - self.tolerance):
                value = cur["setting"] * math.exp(moved)  # better: one more step the same way
            else:
                return {}  # flat: hold
        return {"setting": min(self.high, max(self.low, value)), "by": "speculator"}


class ChatTuner:
    """A chat model (LangChain) as actor or speculator, prompted as in the paper."""

    def __init__(self, model: Any, low: float, high: float, who: str, last: int | None = None) -> None:
        self.model, self.low, self.high, self.who, self.last = model, low, high, who, last

    def prompt(self, state: dict[str, Any]) -> str:
        rows = [x for x in state["history"] if x.get("p95") is not None][-(self.last or 10_000) :]
        table = "\n".join(f"slice_ms={r['setting']:.3f} -> p95_ms={r['p95']:.2f}" for r in rows)
        return (
            "You tune the Linux scheduler's time slice for a CPU-bound benchmark to minimise its p95 "
            f"latency. Allowed range: {self.low} to {self.high} ms. Current: {state['setting']:.3f} ms.\n"
            f"History (setting -> measured p95):\n{table or '(none yet)'}\n"
            'Reply with one line: Config: {"slice_ms": <number>}'
        )

    async def __call__(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """The model's setting; None (an ignored reply, an event in the report) if unparsable."""
        reply = await self.model.ainvoke(self.prompt(state))
        value = parse_config(str(reply.content), self.low, self.high)
        return None if value is None else {"setting": value, "by": self.who}


def resolve(spec: Any, low: float, high: float, who: str, deliberation_s: float) -> Callable[..., Any] | None:
    """'careful' / 'local' / 'none' / a chat model string (`openai:gpt-5`) / a callable."""
    if spec in (None, "none"):
        return None
    if callable(spec):
        return spec
    if spec == "careful":
        return CarefulSearch(low, high, deliberation_s)
    if spec == "local":
        return LocalStep(low, high)
    if isinstance(spec, str) and ":" in spec:
        from .._common import chat_model

        return ChatTuner(chat_model(spec), low, high, who)
    raise ValueError(
        f"unknown {who} {spec!r}; use 'careful', 'local', 'none' or a chat model like openai:gpt-5"
    )
