"""Default adoption key (a stable hash of a node's input), default matching, and tool-call ids.

A key and a match compare what the next nodes read, and nothing else:

- **Messages** by their type (a streamed `AIMessageChunk` reads as the `AIMessage` it becomes),
  content, tool calls (name and arguments), name and the `additional_kwargs` a model sends back;
  never provider bookkeeping: the message id, `response_metadata`, `usage_metadata`, streaming
  leftovers (`tool_call_chunks`, `chunk_position`, a content block's `index`), an
  `additional_kwargs` entry whose value is `None` (a non-streamed OpenAI reply carries
  `refusal: None`; a streamed one does not) and the raw provider copy of tool calls the message
  already carries parsed (`additional_kwargs["tool_calls"]`, `["function_call"]`).
- **Tool-call ids** by position: providers make them up at random, so the k-th distinct tool-call
  id of a value reads as "tool call k". Only real tool-call ids count: the `id` of an entry of a
  message's (or a dict's) `tool_calls` list, of a tool-call content block, of the `tool_call` of a
  `ToolNode`'s `Send` payload, of a `ToolCall` (or a list of them) that is a tool node's whole
  input or `Send` payload, and a tool message's `tool_call_id`. A domain record such as
  `{"id": "u-1", "name": "Ann"}` keeps its id.

When an early call is adopted, `remap` puts the main run's ids back into its result.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import marshal
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import Command, Send

__all__ = (
    "ChannelMatch",
    "adoption_map",
    "default_key",
    "default_match",
    "normalize",
    "remap",
    "tool_call_ids",
)

# Message fields no node reads back: the message's own id, what the provider said about the
# response (token counts, finish reason, model name), what streaming leaves behind.
_MESSAGE_NOISE = ("id", "response_metadata", "usage_metadata", "tool_call_chunks", "chunk_position")
_CALL_LISTS = ("tool_calls", "invalid_tool_calls", "tool_call_chunks")
# content blocks that are a tool call (their "id"/"call_id") or a tool's answer to one
_CALL_BLOCKS = frozenset(
    {"tool_call", "tool_call_chunk", "invalid_tool_call", "tool_use", "function_call", "server_tool_call"}
)
_RESULT_BLOCKS = frozenset({"tool_result", "function_call_output", "server_tool_result"})
_RESULT_KEYS = ("tool_call_id", "tool_use_id", "call_id")
_MESSAGE_TYPES = frozenset({"ai", "human", "tool", "system", "function", "chat", "remove", "developer"})
_ROLES = frozenset({"assistant", "user", "tool", "system", "function", "developer"})
_TOOL_CALL_KEYS = frozenset({"name", "args", "id", "type"})
_CHUNKS = {
    "AIMessageChunk": "ai",
    "HumanMessageChunk": "human",
    "ToolMessageChunk": "tool",
    "SystemMessageChunk": "system",
    "ChatMessageChunk": "chat",
    "FunctionMessageChunk": "function",
}


def _is_message(value: Any) -> bool:
    return isinstance(value, BaseMessage)


def _is_tool_call(d: Any) -> bool:
    """The shape of LangChain's `ToolCall` (`name`, `args`, `id`, optional `type: "tool_call"`)."""
    return (
        isinstance(d, Mapping)
        and {"name", "args", "id"} <= set(d)
        and set(d) <= _TOOL_CALL_KEYS
        and d.get("type", "tool_call") == "tool_call"
        and isinstance(d.get("args"), Mapping)
    )


def _message_dict(d: Mapping[str, Any]) -> bool:
    """A message written as a dict (`{"role": "tool", "content": ..., "tool_call_id": ...}`)."""
    return "content" in d and (d.get("role") in _ROLES or d.get("type") in _MESSAGE_TYPES)


def _id_keys(items: Mapping[str, Any], *, message: bool, block: bool) -> tuple[str, ...]:
    """The keys of `items` whose string values are tool-call ids (besides a call's own `id`)."""
    if (message or _message_dict(items)) and (items.get("type") == "tool" or items.get("role") == "tool"):
        return ("tool_call_id",)
    kind = items.get("type") if block else None
    if isinstance(kind, str) and kind in _CALL_BLOCKS:
        return ("id", "call_id")
    if isinstance(kind, str) and kind in _RESULT_BLOCKS:
        return _RESULT_KEYS
    return ()


def _kind(k: Any, v: Any, ids: tuple[str, ...], message: bool) -> str:
    """How entry `k: v` of a mapping is read: a tool-call id, a list of tool calls, one tool
    call, a message's content blocks, or plain data."""
    if k in ids and isinstance(v, str):
        return "id"
    if k in _CALL_LISTS and isinstance(v, list):
        return "calls"
    if k == "tool_call" and _is_tool_call(v):
        return "call"
    if k == "content" and message and isinstance(v, list):
        return "blocks"
    return "data"


def _message_fields(items: dict[str, Any]) -> dict[str, Any]:
    """A message's fields as a node reads them (see the module doc)."""
    for k in _MESSAGE_NOISE:
        items.pop(k, None)
    extra = items.get("additional_kwargs")
    if isinstance(extra, Mapping):
        parsed = bool(items.get("tool_calls")) or bool(items.get("invalid_tool_calls"))
        items["additional_kwargs"] = {
            k: v
            for k, v in extra.items()
            if v is not None and not (parsed and k in ("tool_calls", "function_call"))
        }
    content = items.get("content")
    if isinstance(content, list):  # where a stream put each block
        items["content"] = [
            {k: v for k, v in b.items() if k != "index"} if isinstance(b, Mapping) and "type" in b else b
            for b in content
        ]
    return items


# Messages seen (by `_fingerprint`): the digest of each one's canonical form and its tool-call
# ids, so that a long history is normalized once. Bounded: cleared past `_MEMO_BYTES` of fields.
_MEMO: dict[tuple[type, bytes, bytes], tuple[str, tuple[str, ...]]] = {}
_MEMO_BYTES = 64 * 1024 * 1024
_memo_size = 0


def _fingerprint(message: BaseMessage) -> tuple[type, bytes, bytes] | None:
    """The message's class and its fields, exactly (`marshal` takes only the built-in types,
    exact ones, `True`, `1` and `1.0` apart, and equal bytes decode to equal values; but see
    `_without_bytes`); None when a field holds anything else (then it is normalized each time)."""
    try:
        return (
            type(message),
            marshal.dumps(message.__dict__, 2),  # version 2: no references, so
            # the bytes do not depend on how many holders a field has
            marshal.dumps(message.__pydantic_extra__, 2),
        )
    except (ValueError, TypeError):
        return None


def _without_bytes(value: Any) -> bool:
    """No `bytes` in a value `marshal` read back. `marshal` writes any object with the buffer
    protocol (`bytearray`, an array) as `bytes`: the one way two different values get equal
    bytes. A message remembered holds none, so a message with equal bytes holds none either
    (it would read back with `bytes` in it): it has exactly the remembered one's fields."""
    if isinstance(value, bytes):
        return False
    if isinstance(value, dict):
        return all(_without_bytes(k) and _without_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_without_bytes(v) for v in value)
    return True


def _remember(fp: tuple[type, bytes, bytes], form: tuple[str, tuple[str, ...]]) -> None:
    global _memo_size
    size = len(fp[1]) + len(fp[2])
    if _memo_size + size > _MEMO_BYTES:
        _MEMO.clear()
        _memo_size = 0
    _MEMO[fp] = form
    _memo_size += size


@functools.lru_cache(maxsize=4096)
def _key_json(k: str) -> str:
    """A `str` mapping key as JSON: the same few field names recur in every message."""
    return json.dumps(k)


class _Normalizer:
    """One pass over a value: its canonical JSON form, and its tool-call ids numbered in order."""

    def __init__(self, *, memo: bool = False) -> None:
        self.ids: dict[str, int] = {}
        self.memo = memo  # messages as digests (`remembered`): only for `default_key`

    def message(self, value: BaseMessage) -> Any:
        data = value.model_dump()
        name = type(value).__name__
        if name in _CHUNKS:  # a streamed reply reads as the message it becomes
            name, data["type"] = name[: -len("Chunk")], _CHUNKS[name]
        return {"__model__": name, "v": self.mapping(_message_fields(data), message=True)}

    def remembered(self, value: BaseMessage) -> Any:
        """The message as `default_key` hashes it: the digest of its form normalized alone
        (its tool-call ids numbered from 0), with the numbers its ids have in the whole value.
        Equal exactly when `message(value)` in place would be (that form is the one alone, its
        ids renumbered). The digest and ids come from `_MEMO` when a message with exactly these
        fields was seen: a long history is normalized once, not at every step and branch."""
        fp = _fingerprint(value)
        if fp is None:
            return self.message(value)
        known = _MEMO.get(fp)
        if known is None:
            alone = _Normalizer()
            blob = json.dumps(alone.message(value), sort_keys=True, separators=(",", ":"))
            known = (hashlib.sha256(blob.encode()).hexdigest(), tuple(alone.ids))
            if _without_bytes(marshal.loads(fp[1])) and _without_bytes(marshal.loads(fp[2])):
                _remember(fp, known)
        digest, ids = known
        if not ids:
            return {"__message__": digest}
        return {"__message__": digest, "ids": [self.ids.setdefault(i, len(self.ids)) for i in ids]}

    def value(self, value: Any) -> Any:
        t = type(value)  # exact types first: the common case, without the ABC checks below
        if t is str or t is int or t is bool or value is None:
            return value
        if t is dict:
            return self.mapping(value)
        if t is list:
            return [self.value(v) for v in value]
        if isinstance(value, BaseMessage):  # before the ABC checks below, which it fails anyway
            return self.message(value) if not self.memo else self.remembered(value)
        if isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return {"__float__": repr(value)}
        if isinstance(value, enum.Enum):
            return {"__enum__": type(value).__name__, "v": self.value(value.value)}
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, (set, frozenset)):
            return {"__set__": sorted(json.dumps(self.value(v), sort_keys=True) for v in value)}
        if isinstance(value, Send):
            return {"__send__": value.node, "arg": self.send_arg(value.arg)}
        dump = getattr(value, "model_dump", None)
        if callable(dump):  # a pydantic record: every field counts, its id too
            return {"__model__": type(value).__name__, "v": self.value(dump())}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return {"__dc__": type(value).__name__, "v": self.value(fields)}
        return {"__repr__": repr(value)}

    def key_json(self, k: Any) -> str:
        """A mapping key that is not a `str`, as JSON (mappings' items are sorted by it)."""
        return json.dumps(self.value(k), sort_keys=True)

    def send_arg(self, arg: Any) -> Any:
        """A node's input or a `Send` payload: a `ToolCall` (or a list of them) sent to a tool
        node alone, or any value."""
        if _is_tool_call(arg):
            return self.mapping(arg, ids=("id",))
        if isinstance(arg, list) and arg and all(_is_tool_call(c) for c in arg):
            return [self.mapping(c, ids=("id",)) for c in arg]
        return self.value(arg)

    def mapping(
        self, d: Mapping[Any, Any], *, ids: tuple[str, ...] = (), message: bool = False, block: bool = False
    ) -> Any:
        ids = (*ids, *_id_keys(d, message=message, block=block))
        keyed = sorted((_key_json(k) if type(k) is str else self.key_json(k), k) for k in d)
        out: list[tuple[str, Any]] = []
        for nk, k in keyed:  # a fixed order: ids are numbered as they are met
            v = d[k]
            kind = _kind(k, v, ids, message)
            if kind == "id":
                out.append((nk, {"__tool_call__": self.ids.setdefault(v, len(self.ids))}))
            elif kind == "calls":
                out.append(
                    (
                        nk,
                        [
                            self.mapping(c, ids=("id",)) if isinstance(c, Mapping) else self.value(c)
                            for c in v
                        ],
                    )
                )
            elif kind == "call":
                out.append((nk, self.mapping(v, ids=("id",))))
            elif kind == "blocks":
                out.append(
                    (
                        nk,
                        [self.mapping(b, block=True) if isinstance(b, Mapping) else self.value(b) for b in v],
                    )
                )
            else:
                out.append((nk, self.value(v)))
        return {"__map__": out}


def tool_call_ids(value: Any) -> list[str]:
    """The distinct tool-call ids in `value`, in the order `normalize` numbers them."""
    n = _Normalizer()
    n.send_arg(value)
    return list(n.ids)


def _messages(value: Any, out: list[Any], depth: int = 0) -> list[Any]:
    """The messages in `value`, in a fixed order."""
    if depth > 30:
        return out
    if _is_message(value):
        out.append(value)
    elif isinstance(value, Mapping):
        for k in sorted(value, key=str):
            _messages(value[k], out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _messages(v, out, depth + 1)
    elif isinstance(value, Send):
        _messages(value.arg, out, depth + 1)
    return out


def adoption_map(early: Any, main: Any) -> dict[str, Any]:
    """What `remap` puts back into an adopted early call's result, from its input (`early`) and
    the main run's equal input (`main`): tool-call ids (id -> id), and messages by position (two
    equal inputs have their messages in the same places): id -> (the early input's message, the
    main run's), so a message the call passed through is the main run's own (its id, its
    provider fields), never the branch's copy."""
    out: dict[str, Any] = {e: m for e, m in zip(tool_call_ids(early), tool_call_ids(main)) if e != m}
    for e, m in zip(_messages(early, []), _messages(main, [])):
        if isinstance(e.id, str) and e is not m and e != m:
            out[e.id] = (e, m)
    return out


def remap(value: Any, ids: Mapping[str, Any]) -> Any:
    """`value` with every tool-call id in `ids` replaced by its image (a copy where changed),
    and every message of the early call's input (`adoption_map`) by the main run's: itself when
    passed through unchanged, else given its id.

    Only the places `normalize` reads as tool-call ids change, and messages; a domain value that
    happens to equal an id stays.
    """
    if not ids:
        return value

    def mapping(
        d: Mapping[Any, Any], own: tuple[str, ...] = (), message: bool = False, block: bool = False
    ) -> Any:
        keys = (*own, *_id_keys(d, message=message, block=block))
        out = {}
        for k, v in d.items():
            kind = _kind(k, v, keys, message)
            if kind == "id":
                out[k] = ids.get(v, v)
            elif kind == "calls":
                out[k] = [mapping(c, ("id",)) if isinstance(c, Mapping) else swap(c) for c in v]
            elif kind == "call":
                out[k] = mapping(v, ("id",))
            elif kind == "blocks":
                out[k] = [mapping(b, block=True) if isinstance(b, Mapping) else swap(b) for b in v]
            else:
                out[k] = swap(v)
        return out if out != d else d

    def swap(v: Any) -> Any:
        if isinstance(v, dict):
            return mapping(v)
        if isinstance(v, list):
            new = [swap(x) for x in v]
            return new if new != v else v
        if isinstance(v, tuple):
            return tuple(swap(x) for x in v)
        if isinstance(v, Send):
            return Send(v.node, root(v.arg))
        if _is_message(v):
            fields = {
                a: getattr(v, a)
                for a in ("type", "tool_call_id", *_CALL_LISTS, "additional_kwargs", "content")
                if hasattr(v, a)
            }
            fields["type"] = _CHUNKS.get(type(v).__name__, fields.get("type"))
            new = mapping(fields, message=True)
            update = {a: new[a] for a in fields if a != "type" and new[a] is not fields[a]}
            pair = ids.get(v.id) if isinstance(v.id, str) else None
            if isinstance(pair, tuple):  # a message of the early call's input
                if v == pair[0]:
                    return pair[1]
                update["id"] = pair[1].id
            return v.model_copy(update=update) if update else v
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.replace(
                v, **{f.name: swap(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
            )
        return v

    def root(arg: Any) -> Any:  # a node's input or a Send payload, as `normalize` reads it
        if _is_tool_call(arg):
            return mapping(arg, ("id",))
        if isinstance(arg, list) and arg and all(_is_tool_call(c) for c in arg):
            return [mapping(c, ("id",)) for c in arg]
        return swap(arg)

    return root(value)


def normalize(value: Any) -> Any:
    """A JSON-able canonical form of `value`: equal for two values exactly when a node reads
    them the same (see the module doc). Pydantic models compare by their fields, dataclasses
    (`Command` among them) by theirs, `Send` by its node and argument; other objects by `repr`.
    """
    return _Normalizer().send_arg(value)


def default_key(state: Any) -> str:
    """Stable hash of a node's full input, as `normalize` reads it."""
    blob = json.dumps(_Normalizer(memo=True).send_arg(state), sort_keys=True, separators=(",", ":"))
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
    """A guess hits when it equals what the actor returned as the next nodes read it: the same
    comparison as the default key (`normalize`), so provider bookkeeping never makes a miss."""
    if guess == actual:
        return True
    try:
        return bool(normalize(canonical_update(guess)) == normalize(canonical_update(actual)))
    except Exception:  # pragma: no cover - exotic objects
        return False


def _written(value: Any, channels: frozenset[str]) -> Any:
    """`value` (an update dict, a `Command`, a list of them) without the keys no channel holds."""
    if isinstance(value, list):
        return [_written(v, channels) for v in value]
    if isinstance(value, Command) and isinstance(value.update, Mapping):
        return dataclasses.replace(value, update=_written(value.update, channels))
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: v for k, v in value.items() if k in channels}
    return value


@dataclasses.dataclass(frozen=True)
class ChannelMatch:
    """The default match of a node of a graph with these channels: what it writes to a key the
    graph has no channel for, LangGraph drops (a subgraph's output with keys of its own, such
    as a handoff's `remaining_steps`), so no next node reads it and the match leaves it out."""

    channels: frozenset[str]

    def __call__(self, guess: Any, actual: Any) -> bool:
        return default_match(_written(guess, self.channels), _written(actual, self.channels))
