"""Turning whatever a speculator returned into checked guesses."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from ._keys import normalize
from ._policy import Guess

__all__ = ("coerce_guesses", "describe")

_MAX_DESC = 300


def describe(value: Any) -> str:
    """A short, JSON-friendly description of a guess or an error, for events and traces."""
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    else:
        try:
            text = json.dumps(normalize(value), sort_keys=True, default=str)
        except Exception:
            text = repr(value)
    return text if len(text) <= _MAX_DESC else text[: _MAX_DESC - 3] + "..."


def coerce_guesses(raw: Any, channels: Collection[str]) -> tuple[list[Guess], list[str]]:
    """Guesses (deduplicated, in order) and a list of problems with the rest.

    A speculator may return one guess or a list of them; each a `Guess` or a
    plain update dict whose keys are state keys.
    """
    if raw is None:
        return [], []
    if isinstance(raw, (Guess, dict)):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        return [], [
            f"speculator returned {type(raw).__name__}; return a list of Guess objects "
            "or update dicts, best first"
        ]
    guesses: list[Guess] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        guess = item if isinstance(item, Guess) else Guess(item) if isinstance(item, dict) else None
        if guess is None or not isinstance(guess.update, dict):
            bad = item.update if isinstance(item, Guess) else item
            problems.append(f"guess {i} is {type(bad).__name__}, not an update dict")
            continue
        unknown = sorted(str(k) for k in guess.update if k not in channels)
        if unknown:
            problems.append(f"guess {i} updates unknown keys {unknown}; the state has {sorted(channels)}")
            continue
        conf = guess.confidence
        if conf is not None and (
            isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.0 <= conf <= 1.0
        ):
            problems.append(f"guess {i} has confidence {conf!r}; use a number in [0, 1] or None")
            continue
        try:
            fingerprint = json.dumps(normalize(guess.update), sort_keys=True)
        except Exception:
            fingerprint = repr(guess.update)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        guesses.append(guess)
    return guesses, problems
