"""Default adoption key (a stable hash of a node's input) and default matching."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from langgraph.types import Send

__all__ = ("default_key", "default_match", "normalize")


def normalize(value: Any) -> Any:
    """A JSON-able canonical form of `value`.

    Messages are compared without their `id` (which `add_messages` fills with a
    random uuid), pydantic models by their fields, dataclasses (`Command` among
    them) by theirs, `Send` by its node and argument; other objects by `repr`.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, enum.Enum):
        return [type(value).__name__, normalize(value.value)]
    if isinstance(value, Mapping):
        return {"__map__": sorted((str(k), normalize(v)) for k, v in value.items())}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(json.dumps(normalize(v), sort_keys=True) for v in value)}
    if isinstance(value, Send):
        return {"__send__": value.node, "arg": normalize(value.arg)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump()
        if isinstance(data, dict):
            data.pop("id", None)
        return {"__model__": type(value).__name__, "v": normalize(data)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__dc__": type(value).__name__,
            "v": normalize({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}),
        }
    return {"__repr__": repr(value)}


def default_key(state: Any) -> str:
    """Stable hash of a node's full input."""
    blob = json.dumps(normalize(state), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def default_match(guess: Any, actual: Any) -> bool:
    """A guess hits when it equals the actor's update (message ids ignored)."""
    if guess == actual:
        return True
    try:
        return normalize(guess) == normalize(actual)
    except Exception:  # pragma: no cover - exotic objects
        return False
