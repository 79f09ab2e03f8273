"""Guessed tool calls: what a speculator may return, and the key a guess is matched on."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage

from langgraph_speculative import Guess

__all__ = ("ToolGuess", "call_key", "coerce_guesses", "describe_error")


@dataclass(frozen=True)
class ToolGuess:
    """One guessed tool call: a tool name, its arguments, an optional confidence."""

    name: str
    args: dict[str, Any]
    confidence: float | None = None

    @property
    def key(self) -> str:
        """The call's match key: name and canonical arguments (ids never count)."""
        return call_key(self.name, self.args)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for events."""
        out: dict[str, Any] = {"name": self.name, "args": self.args}
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 6)
        return out


def call_key(name: str, args: Any) -> str:
    """A tool call's identity for matching: its name and its arguments as canonical JSON.

    Key order of the arguments does not count; values must be equal as JSON
    (so `1` and `"1"` differ). Raises `TypeError`/`ValueError` for arguments
    that are not JSON data.
    """
    return json.dumps([name, args], sort_keys=True, separators=(",", ":"), allow_nan=False)


def _one(item: Any) -> list[ToolGuess] | str:
    """The guess(es) in one item of a speculator's answer, or why it is junk."""
    confidence: Any = None
    if isinstance(item, Guess):
        confidence, item = item.confidence, item.update
    if isinstance(item, AIMessage):
        return [g for c in item.tool_calls for g in _as_list(_one({"name": c["name"], "args": c["args"]}))]
    if not isinstance(item, dict):
        return f"{type(item).__name__} is not a tool call (use {{'name': ..., 'args': {{...}}}})"
    name = item.get("name")
    args = item.get("args", item.get("arguments", {}))
    if confidence is None:
        confidence = item.get("confidence")
    if not isinstance(name, str) or not name:
        return f"guess {_short(item)} has no tool 'name'"
    if isinstance(args, str):  # OpenAI-style JSON arguments
        try:
            args = json.loads(args)
        except ValueError:
            return f"guess of {name!r}: 'args' is not JSON"
    if not isinstance(args, dict):
        return f"guess of {name!r}: 'args' must be a dict, got {type(args).__name__}"
    try:
        call_key(name, args)
    except (TypeError, ValueError):
        return f"guess of {name!r}: 'args' are not JSON data"
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not math.isfinite(confidence)
        or not 0.0 <= confidence <= 1.0
    ):
        return f"guess of {name!r}: confidence {confidence!r} is not a number in [0, 1]"
    return [ToolGuess(name, dict(args), None if confidence is None else float(confidence))]


def _as_list(x: list[ToolGuess] | str) -> list[ToolGuess]:
    return x if isinstance(x, list) else []


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def coerce_guesses(raw: Any) -> tuple[list[ToolGuess], list[str]]:
    """A speculator's answer as tool guesses (best first, duplicates dropped) and its junk.

    Accepted: `None` (no guesses), or a list/tuple of items, each a dict
    `{"name": str, "args": dict, "confidence": float (optional)}` (`arguments`
    works too, as a dict or a JSON string), a `Guess` whose `update` is such a
    dict (its `confidence` counts), or an `AIMessage` whose tool calls are the
    guesses. A single dict or `Guess` counts as a list of one.
    """
    if raw is None:
        return [], []
    if isinstance(raw, (dict, Guess, AIMessage)):
        raw = [raw]
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        return [], [f"speculator returned {type(raw).__name__}; return a list of tool calls"]
    guesses: list[ToolGuess] = []
    problems: list[str] = []
    seen: set[str] = set()
    for item in raw:
        got = _one(item)
        if isinstance(got, str):
            problems.append(got)
            continue
        for g in got:
            if g.key not in seen:
                seen.add(g.key)
                guesses.append(g)
    return guesses, problems


def describe_error(exc: BaseException) -> str:
    """`Type: message`, short, for events."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
