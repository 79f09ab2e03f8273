"""Traces of agent runs, and where a tool call's argument values can come from.

A trace is what a run did: its tool calls in order (name, arguments, result)
and the user's messages. A *source* names a place an argument's value can be
found before the call is made, PASTE-style:

- `("out", tool, path)`: a field of an earlier result of `tool` (`path` with
  list positions and id-like keys generalized to `*`, e.g. `("orders", "*")`);
- `("arg", tool, name)`: an argument of an earlier call of `tool`;
- `("user", shape)`: a span of the user's words shaped like the value
  (`shape` is a regular expression learned from values seen there);
- `("span", tool, shape)`: such a span of an earlier text (non-JSON) result of `tool`;
- `("repeat",)`: a value this argument already had in an earlier call.

`candidates(source, ...)` lists a source's values at a point of a trace, most
likely first (most recent result first, fresh values before used ones), so a
learned distribution over positions in that list ranks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

__all__ = (
    "Source",
    "Step",
    "Trace",
    "candidates",
    "norm",
    "sources_of",
    "trace_of",
)

Source = tuple[str, ...]
_ID_KEY = re.compile(r"\d{3}")


@dataclass
class Step:
    """One tool call of a trace."""

    name: str
    args: dict[str, Any]
    output: Any = None
    """The result: parsed JSON when it is JSON, else its text; None when unknown or failed."""
    said: int = 0
    """How many user messages came before the call."""

    def as_json(self, max_chars: int) -> dict[str, Any]:
        out = self.output if isinstance(self.output, str) else json.dumps(self.output, default=str)
        return {"name": self.name, "args": self.args, "output": out[:max_chars], "said": self.said}


@dataclass
class Trace:
    """A run's tool calls, the user's messages, and where the model answered instead of calling."""

    steps: list[Step] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    """For each final answer, how many calls came before it."""

    def as_json(self, max_chars: int = 20_000) -> dict[str, Any]:
        """JSON form (for a store); results are kept as text, cut at `max_chars`."""
        return {
            "version": 1,
            "steps": [s.as_json(max_chars) for s in self.steps],
            "texts": [t[:max_chars] for t in self.texts],
            "ends": list(self.ends),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        steps = [
            Step(s["name"], dict(s.get("args") or {}), _parse(s.get("output")), int(s.get("said", 0)))
            for s in data.get("steps", [])
        ]
        return cls(steps, list(data.get("texts", [])), list(data.get("ends", [])))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, (str, dict))
        )
    return str(content)


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def trace_of(messages: Sequence[BaseMessage]) -> Trace:
    """The trace of a conversation (LangChain messages, in order)."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    trace = Trace()
    for m in messages:
        if isinstance(m, HumanMessage):
            trace.texts.append(_text(m.content))
        elif isinstance(m, AIMessage):
            if not m.tool_calls:
                trace.ends.append(len(trace.steps))
            for c in m.tool_calls:
                result = results.get(c.get("id") or "")
                output = None
                if result is not None and result.status != "error":
                    output = _parse(_text(result.content))
                trace.steps.append(Step(c["name"], dict(c.get("args") or {}), output, len(trace.texts)))
    return trace


def norm(value: Any) -> str | None:
    """A value as compared across sources (`"5"` and `5` agree), or None if too trivial to trace."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text if len(text) >= 2 else None


def _general(key: Any) -> Any:
    if isinstance(key, int):
        return "*"
    return "*" if _ID_KEY.search(str(key)) else key


def leaves(output: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(generalized path, value) of every scalar in a result, in document order."""
    if isinstance(output, dict):
        for k, v in output.items():
            yield from leaves(v, (*path, _general(k)))
    elif isinstance(output, list):
        for v in output:
            yield from leaves(v, (*path, "*"))
    else:
        yield path, output


def values_at(output: Any, path: tuple[Any, ...]) -> list[Any]:
    """The scalars at a generalized path of a result, in document order."""
    if not path:
        return [] if isinstance(output, (dict, list)) else [output]
    head, rest = path[0], path[1:]
    if isinstance(output, dict):
        if head == "*":
            return [v for k, sub in output.items() if _general(k) == "*" for v in values_at(sub, rest)]
        return values_at(output[head], rest) if head in output else []
    if isinstance(output, list) and head == "*":
        return [v for sub in output for v in values_at(sub, rest)]
    return []


_CLASSES = (("digit", str.isdigit), ("lower", str.islower), ("upper", str.isupper))


def shapes(value: str) -> list[str]:
    """Regular expressions for spans shaped like `value`: a fine one, then a coarse one."""
    fine: list[str] = []
    coarse: list[str] = []
    for kind, run in _runs(value):
        if kind == "digit":
            fine.append(rf"\d{{{len(run)}}}")
        elif kind == "lower":
            fine.append("[a-z]+")
        elif kind == "upper":
            fine.append("[A-Z]+")
        else:
            fine.append(re.escape(run))
        if kind == "other" and run not in "_":
            coarse.append(re.escape(run))
        elif not coarse or not coarse[-1].endswith(r"\w+"):
            coarse.append(r"\w+")
    out = ["".join(fine)]
    if "".join(coarse) != out[0] and any(c != r"\w+" for c in coarse):
        out.append("".join(coarse))
    return out


def _runs(value: str) -> Iterator[tuple[str, str]]:
    kind_of = [next((k for k, test in _CLASSES if test(ch)), "other") for ch in value]
    start = 0
    for i in range(1, len(value) + 1):
        if i == len(value) or kind_of[i] != kind_of[start] or kind_of[start] == "other":
            yield kind_of[start], value[start:i]
            start = i


@lru_cache(maxsize=4096)
def _compiled(shape: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){shape}(?![A-Za-z0-9_])")


def _spans(shape: str, texts: Sequence[str]) -> list[str]:
    """Spans of the user's messages matching `shape`: latest message first, left to right."""
    out: list[str] = []
    for text in reversed(texts):
        for m in _compiled(shape).finditer(text):
            if m.group(0) not in out:
                out.append(m.group(0))
    return out


def _used(steps: Sequence[Step], tool: str, arg: str) -> list[str]:
    """Values `tool`'s `arg` already had, most recent first (normalized)."""
    out: list[str] = []
    for s in reversed(steps):
        if s.name == tool and (n := norm(s.args.get(arg))) is not None and n not in out:
            out.append(n)
    return out


def candidates(
    source: Source, tool: str, arg: str, steps: Sequence[Step], texts: Sequence[str]
) -> list[tuple[str, Any]]:
    """`(normalized, raw)` values `source` offers for `tool`'s `arg` after `steps`, best first."""
    used = _used(steps, tool, arg)
    if source[0] == "repeat":
        raw = {norm(s.args.get(arg)): s.args.get(arg) for s in steps if s.name == tool}
        return [(n, raw[n]) for n in used]
    values: list[Any] = []
    if source[0] == "out":
        for s in reversed(steps):
            if s.name == source[1] and s.output is not None:
                values += values_at(s.output, tuple(source[2:]))
    elif source[0] == "arg":
        values = [s.args.get(source[2]) for s in reversed(steps) if s.name == source[1]]
    elif source[0] == "user":
        values = _spans(source[1], texts)
    elif source[0] == "span":
        outputs = [s.output for s in steps if s.name == source[1] and isinstance(s.output, str)]
        values = _spans(source[2], outputs)
    out: list[tuple[str, Any]] = []
    seen = set(used)
    for v in values:
        n = norm(v)
        if n is not None and n not in seen:
            seen.add(n)
            out.append((n, v))
    return out


def sources_of(
    value: Any, tool: str, arg: str, steps: Sequence[Step], texts: Sequence[str]
) -> Iterator[tuple[Source, int]]:
    """Every source that offered `value` for `tool`'s `arg` after `steps`, with its rank there."""
    target = norm(value)
    if target is None:
        return
    found: set[Source] = set()
    if target in _used(steps, tool, arg):
        found.add(("repeat",))
    for s in steps:
        if s.output is not None:
            for path, leaf in leaves(s.output):
                if norm(leaf) == target:
                    found.add(("out", s.name, *path))
        if isinstance(s.output, str) and target in s.output and s.output.strip() != target:
            found.update(("span", s.name, shape) for shape in shapes(target))
        for name, v in s.args.items():
            if norm(v) == target:
                found.add(("arg", s.name, name))
    if isinstance(value, (str, int)) and any(target in t for t in texts):
        found.update(("user", shape) for shape in shapes(target))
    for source in sorted(found):
        ranked = [n for n, _ in candidates(source, tool, arg, steps, texts)]
        if target in ranked:
            yield source, ranked.index(target)
