"""Default adoption key (a stable hash of a node's input), default matching, and tool-call ids.

Providers give tool calls random ids, so ids are compared by position, not value: the k-th
distinct tool-call id of a value reads as `tc<k>` wherever it appears (an `AIMessage`'s
`tool_calls`, its raw `additional_kwargs`, a `ToolMessage`'s `tool_call_id`, a `Send` payload).
When an early call is adopted, `remap` puts the main run's ids back into its result.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from langgraph.types import Command, Send

__all__ = ("default_key", "default_match", "normalize", "remap", "tool_call_ids")

# Message fields no node reads back: the message's own id, what the provider said about the
# response (token counts, finish reason, model name); chat models never send them as input.
_MESSAGE_NOISE = ("id", "response_metadata", "usage_metadata")


def _is_tool_call(d: Mapping[str, Any]) -> bool:
    return "id" in d and (
        "name" in d or "function" in d or d.get("type") in ("tool_call", "tool_use", "function_call")
    )


def tool_call_ids(value: Any) -> list[str]:
    """The distinct tool-call ids in `value`, in order of first appearance."""
    seen: dict[str, None] = {}

    def walk(v: Any, depth: int = 0) -> None:
        if depth > 12:
            return
        if isinstance(v, Mapping):
            if _is_tool_call(v) and isinstance(v.get("id"), str):
                seen.setdefault(v["id"], None)
            for x in v.values():
                walk(x, depth + 1)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, Send):
            walk(v.arg, depth + 1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                walk(getattr(v, f.name), depth + 1)
        elif hasattr(v, "model_dump") and hasattr(v, "type"):  # a message
            if isinstance(getattr(v, "tool_call_id", None), str):
                seen.setdefault(v.tool_call_id, None)
            for attr in ("tool_calls", "invalid_tool_calls", "additional_kwargs", "content"):
                walk(getattr(v, attr, None), depth + 1)

    walk(value)
    return list(seen)


def remap(value: Any, ids: Mapping[str, str]) -> Any:
    """`value` with every tool-call id in `ids` replaced by its image (a copy where changed)."""
    if not ids:
        return value

    def swap(v: Any, depth: int = 0) -> Any:
        if depth > 12:
            return v
        if isinstance(v, str):
            return ids.get(v, v)
        if isinstance(v, dict):
            return {
                k: swap(x, depth + 1) if k in ("id", "tool_call_id") or not isinstance(x, str) else x
                for k, x in v.items()
            }
        if isinstance(v, list):
            return [swap(x, depth + 1) for x in v]
        if isinstance(v, tuple):
            return tuple(swap(x, depth + 1) for x in v)
        if isinstance(v, Send):
            return Send(v.node, swap(v.arg, depth + 1))
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.replace(
                v, **{f.name: swap(getattr(v, f.name), depth + 1) for f in dataclasses.fields(v) if f.init}
            )
        if hasattr(v, "model_copy") and hasattr(v, "type"):  # a message
            update: dict[str, Any] = {}
            if isinstance(getattr(v, "tool_call_id", None), str) and v.tool_call_id in ids:
                update["tool_call_id"] = ids[v.tool_call_id]
            for attr in (
                "tool_calls",
                "invalid_tool_calls",
                "tool_call_chunks",
                "additional_kwargs",
                "content",
            ):
                old = getattr(v, attr, None)
                if isinstance(old, (list, dict)):
                    new = swap(old, depth + 1)
                    if new != old:
                        update[attr] = new
            return v.model_copy(update=update) if update else v
        return v

    return swap(value)


def normalize(value: Any, _ids: Mapping[str, str] | None = None) -> Any:
    """A JSON-able canonical form of `value`.

    Messages are compared without their `id` (which `add_messages` fills with a random uuid)
    and without what the provider said about the response (`response_metadata`,
    `usage_metadata`); tool-call ids by position (see the module doc); pydantic models by
    their fields, dataclasses (`Command` among them) by theirs, `Send` by its node and
    argument; other objects by `repr`.
    """
    if _ids is None:
        _ids = {tid: f"tc{i}" for i, tid in enumerate(tool_call_ids(value))}
    return _normalize(value, _ids)


def _normalize(value: Any, ids: Mapping[str, str]) -> Any:
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, enum.Enum):
        return [type(value).__name__, _normalize(value.value, ids)]
    if isinstance(value, Mapping):
        return {"__map__": sorted((str(k), _normalize(v, ids)) for k, v in value.items())}
    if isinstance(value, (list, tuple)):
        return [_normalize(v, ids) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(json.dumps(_normalize(v, ids), sort_keys=True) for v in value)}
    if isinstance(value, Send):
        return {"__send__": value.node, "arg": _normalize(value.arg, ids)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump()
        if isinstance(data, dict):
            for k in _MESSAGE_NOISE if hasattr(value, "type") else ("id",):
                data.pop(k, None)
        return {"__model__": type(value).__name__, "v": _normalize(data, ids)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__dc__": type(value).__name__,
            "v": _normalize({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, ids),
        }
    return {"__repr__": repr(value)}


def default_key(state: Any) -> str:
    """Stable hash of a node's full input."""
    blob = json.dumps(normalize(state), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def canonical_update(value: Any) -> Any:
    """What a node's return value writes, in one form: a `Command` that only updates is its
    update, and a list of one such `Command` too."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Command):
        value = value[0]
    if isinstance(value, Command) and not value.goto and value.graph is None and value.resume is None:
        return value.update
    return value


def default_match(guess: Any, actual: Any) -> bool:
    """A guess hits when it equals what the actor returned, as the next nodes read it: message
    ids, provider response metadata and tool-call id values aside (see `normalize`)."""
    if guess == actual:
        return True
    try:
        return bool(normalize(canonical_update(guess)) == normalize(canonical_update(actual)))
    except Exception:  # pragma: no cover - exotic objects
        return False
