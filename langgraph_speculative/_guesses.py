"""Turning whatever a speculator returned into checked guesses, and any value into JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from langgraph.graph import END
from langgraph.types import Command, Send

from ._keys import normalize
from ._policy import Guess

__all__ = ("check_confidence", "coerce_guesses", "describe", "jsonable", "sift_guesses")

_MAX_TEXT = 400  # characters of one string in an event
_MAX_ITEMS = 50  # items of one list or dict in an event


def jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON data (dicts, lists, strings, numbers), shortened for events.

    Messages and other pydantic models become their fields, `Command` and `Send` their parts;
    anything else its `repr`.
    """
    if depth > 8:
        return "..."
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 3] + "..."
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {str(k): jsonable(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    if isinstance(value, Send):
        return {"send": value.node, "arg": jsonable(value.arg, depth + 1)}
    if isinstance(value, Command):
        parts = {"update": value.update, "goto": value.goto, "resume": value.resume, "graph": value.graph}
        return {"command": {k: jsonable(v, depth + 1) for k, v in parts.items() if v not in (None, ())}}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(), depth + 1)
        except Exception:
            return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    return jsonable(repr(value), depth + 1)


def describe(value: Any) -> str:
    """A short one-line description of a value or an error (LangSmith metadata, warnings)."""
    text = json.dumps(jsonable(value), sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def coerce_guesses(
    raw: Any, channels: Collection[str], nodes: Collection[str]
) -> tuple[list[Guess], list[str]]:
    """Guesses (deduplicated, in order) and a list of problems with the rest.

    A speculator may return one guess or a list of them. A guess is what the node could
    return: an update dict (keys are state keys), a `Command`, or a list of `Command`s (wrap
    that in a `Guess`), optionally in a `Guess` with a confidence.
    """
    if raw is None:
        return [], []
    if isinstance(raw, (Guess, dict, Command)):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        return [], [
            f"speculator returned {type(raw).__name__}; return a list of Guess objects "
            "or update dicts, best first"
        ]
    return sift_guesses(raw, lambda update: _check(update, channels, nodes), fingerprint=_as_json)


def sift_guesses(
    raw: Sequence[Any],
    problem: Callable[[Any], str | None],
    *,
    fingerprint: Callable[[Any], str],
    min_confidence: float | None = None,
    limit: int | None = None,
) -> tuple[list[Guess], list[str]]:
    """A speculator's list of answers as distinct guesses in order (plain values wrapped in a
    `Guess`), and a problem for each one dropped as malformed: `problem(update)` or a bad
    confidence. Guesses under `min_confidence` are dropped silently; at most `limit` are kept.
    Two guesses are the same when `fingerprint` of their normalized updates is (`repr` when it
    cannot read one)."""
    guesses: list[Guess] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        guess = item if isinstance(item, Guess) else Guess(item)
        bad = problem(guess.update) or check_confidence(guess.confidence)
        if bad is not None:
            problems.append(f"guess {i} {bad}")
            continue
        conf = guess.confidence
        if min_confidence is not None and conf is not None and conf < min_confidence:
            continue
        try:
            seen_as = fingerprint(normalize(guess.update))
        except Exception:
            seen_as = repr(guess.update)
        if seen_as in seen:
            continue
        seen.add(seen_as)
        guesses.append(guess)
        if limit is not None and len(guesses) >= limit:
            break
    return guesses, problems


def _as_json(update: Any) -> str:
    return json.dumps(update, sort_keys=True)


def _check(update: Any, channels: Collection[str], nodes: Collection[str]) -> str | None:
    if isinstance(update, dict):
        unknown = sorted(str(k) for k in update if k not in channels)
        if unknown:
            return f"updates unknown keys {unknown}; the state has {sorted(channels)}"
        return None
    if isinstance(update, Command):
        if update.graph is not None:
            return "is a Command to another graph, which a branch cannot follow"
        if update.resume is not None:
            return "is a Command with resume, which only a caller can give"
        if isinstance(update.update, dict):
            problem = _check(update.update, channels, nodes)
            if problem is not None:
                return problem
        gotos = update.goto if isinstance(update.goto, (list, tuple)) else [update.goto]
        for goto in gotos:
            target = goto.node if isinstance(goto, Send) else goto
            if target not in (None, (), END) and target not in nodes:
                return f"goes to {target!r}, which is not a node; the nodes are {sorted(nodes)}"
        return None
    if isinstance(update, list) and update and all(isinstance(c, Command) for c in update):
        for command in update:
            problem = _check(command, channels, nodes)
            if problem is not None:
                return problem
        return None
    return f"is {type(update).__name__}, not an update dict or Command"


def check_confidence(conf: Any) -> str | None:
    """What is wrong with a guess's confidence (None: nothing; it is None or in [0, 1])."""
    if conf is None:
        return None
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.0 <= conf <= 1.0:
        return f"has confidence {conf!r}; use a number in [0, 1] or None"
    return None
