"""What a session tracks: the graph's nodes as bound for speculation, calls (of the main run or
launched early on a branch), and branches."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig

from ._keys import default_key, default_match
from ._policy import Guess, SpeculationPolicy

if TYPE_CHECKING:
    from ._tee import RecordingSaver

__all__ = ("Binding", "Branch", "CopyOnRead", "Entry", "Run", "Source", "forget_when_done", "private_copy")


@dataclass(frozen=True, eq=False)
class Binding:
    """A node of a speculative graph: its actor and what speculation may do with it."""

    name: str
    action: Runnable[Any, Any]
    speculator: Runnable[Any, Any] | None = None
    policy: SpeculationPolicy | None = None
    key_fn: Callable[[Any], Any] | None = None
    match: Callable[[Any, Any], bool] = default_match
    unsafe: bool = False
    """Never runs on a branch (side effects)."""
    gate: bool = False
    """Calls `interrupt()` (found in its code): a branch stops before it, and a guess of it
    would skip a person's approval, so it is never speculated."""
    inline: bool = False
    """Holds a subgraph: launched early and adopted like any node when the run allows
    (`Run.adopt_subgraphs`); otherwise (a checkpointer: the subgraph's checkpoints belong in the
    main thread, under the main run's task) a branch stops before it, or runs it as it is when
    it is `nested`."""
    nested: bool = False
    """Holds a subgraph with `SpeculativeNode`s of its own: runs on a branch as it is, so that
    they launch early (never launched whole)."""
    stateful: bool = False
    """Holds a subgraph compiled with `checkpointer=True`, which keeps its own state from call
    to call in the user's thread: a branch, forked from the parent's checkpoint alone, does not
    have it, so a branch always stops before this node."""
    prefetch: tuple[str, ...] = ()
    """Nodes that can follow this one, launched early on its input while it runs (`prefetch=`):
    speculation without a speculator, adopted by their keys."""
    read_only_tools: frozenset[str] | None = None
    """For a node that runs tools (a `ToolNode`): the tools a branch may run; a call of any
    other tool stops the branch. None: not a tool node."""
    contained_action: Runnable[Any, Any] | None = None
    """The actor as early calls run it, when it differs: what it raises, `BaseException`
    included, stays an ordinary exception (see `Contained`)."""

    @property
    def early_action(self) -> Runnable[Any, Any]:
        """The actor for calls launched early on branches."""
        return self.contained_action or self.action

    @property
    def speculative(self) -> bool:
        """Has a speculator and an enabled policy."""
        return (
            self.speculator is not None
            and self.policy is not None
            and self.policy.enabled
            and not self.gate
            and not self.unsafe
        )

    @property
    def prefetching(self) -> bool:
        """Launches its successors early while it runs (`prefetch=`), with an enabled policy."""
        return bool(self.prefetch) and self.policy is not None and self.policy.enabled and not self.unsafe

    def key(self, state: Any) -> str:
        """The adoption key of `state` for this node.

        A custom key function gets a copy, so it cannot change the run's state (of a dict
        state, only the channels it reads are copied: see `private_copy`).
        """
        if self.key_fn is None:
            return default_key(state)
        return default_key(self.key_fn(private_copy(state)))


def private_copy(state: Any) -> Any:
    """A copy of a call's input that user code may change freely (a speculator, a key function):
    nothing it does reaches the run's state.

    A dict state (a `TypedDict` graph's) becomes a `CopyOnRead`: each channel is deep-copied the
    first time it is read, so a speculator that reads the step counter does not pay for copying
    10,000 messages. Any other state is deep-copied whole.
    """
    if type(state) is dict:
        return CopyOnRead(state)
    return copy.deepcopy(state)


class CopyOnRead(dict):  # type: ignore[type-arg]
    """A dict that deep-copies each value of `source` the first time it is read.

    It holds only copies: a value not read yet is not in it at all (it waits in `_pending`), so
    no code, however it reads the dict, can reach `source` or change it. Reading one value
    (`d[k]`, `d.get(k)`) copies that value; anything that sees the whole dict (iteration,
    `keys`/`values`/`items`, `len` excepted, `==`, `repr`, `dict(d)`, `{**d}`, `json.dumps`,
    `copy`, `pickle`) or changes it other than by `d[k] = v` first copies every value left, in
    `source`'s order. Values read share one `deepcopy` memo, so objects shared between channels
    stay shared. Code that walks a dict's C internals without calling its methods (pydantic's
    `model_validate(d)`, orjson) sees only the values read so far: give it `dict(d)`.
    """

    __slots__ = ("_pending", "_memo", "_order")

    def __init__(self, source: dict[Any, Any] | None = None) -> None:
        super().__init__()
        self._pending: dict[Any, Any] = dict(source or {})
        self._order: list[Any] = list(self._pending)
        self._memo: dict[int, Any] = {}

    def __missing__(self, key: Any) -> Any:
        if key not in self._pending:
            raise KeyError(key)
        value = copy.deepcopy(self._pending.pop(key), self._memo)
        dict.__setitem__(self, key, value)
        return value

    def _all(self) -> None:
        """Copy every value not read yet, and put the keys back in `source`'s order."""
        if not self._pending:
            return
        for key in list(self._pending):
            self.__missing__(key)
        seen = dict(dict.items(self))
        dict.clear(self)
        for key in self._order:
            if key in seen:
                dict.__setitem__(self, key, seen.pop(key))
        dict.update(self, seen)  # keys the reader added

    def get(self, key: Any, default: Any = None) -> Any:
        """`d[key]`, or `default` when there is no such key."""
        if dict.__contains__(self, key) or key in self._pending:
            return self[key]
        return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def __iter__(self) -> Any:
        self._all()
        return dict.__iter__(self)

    def __reversed__(self) -> Any:
        self._all()
        return dict.__reversed__(self)

    def keys(self) -> Any:
        """The keys (every value copied first)."""
        self._all()
        return dict.keys(self)

    def values(self) -> Any:
        """The values (every value copied first)."""
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        """The items (every value copied first)."""
        self._all()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self._all()
        if isinstance(other, CopyOnRead):
            other._all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._all()
        return dict.__repr__(self)

    def copy(self) -> dict[Any, Any]:
        """A plain dict of (copied) values."""
        self._all()
        return dict(dict.items(self))

    def __copy__(self) -> dict[Any, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return copy.deepcopy(self.copy(), memo)

    def __reduce__(self) -> Any:
        return (dict, (self.copy(),))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__reduce__()

    def __or__(self, other: Any) -> Any:
        self._all()
        return dict.__or__(self.copy(), other)

    def __ror__(self, other: Any) -> Any:
        self._all()
        return dict.__or__(dict(other), self.copy()) if isinstance(other, dict) else NotImplemented

    def __ior__(self, other: Any) -> Any:
        self._all()
        return dict.__ior__(self, other)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pending.pop(key, None)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._all()
        dict.__delitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove `key` and return its (copied) value."""
        self._all()
        return dict.pop(self, key, *default)

    def popitem(self) -> Any:
        """Remove and return the last item."""
        self._all()
        return dict.popitem(self)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """`d[key]`, set to `default` first when missing."""
        self._all()
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Update as a dict does (every value copied first)."""
        self._all()
        dict.update(self, *args, **kwargs)

    def clear(self) -> None:
        """Remove every item."""
        self._pending.clear()
        dict.clear(self)


def tool_calls_in(value: Any) -> list[dict[str, Any]] | None:
    """The tool calls a tool node is about to run, from its input (a `Send` payload of calls,
    a call with its context, or a state whose last AI message has calls); None if unknown."""
    if isinstance(value, list) and all(isinstance(c, dict) and "name" in c for c in value):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("tool_call"), dict):
            return [value["tool_call"]]
        messages = value.get("messages")
        if isinstance(messages, list):
            for message in reversed(messages):
                if getattr(message, "type", None) == "ai":
                    return list(getattr(message, "tool_calls", None) or [])
    return None


def only_reads(value: Any, read_only: frozenset[str]) -> bool:
    """Are all the tool calls in a tool node's input calls of read-only tools?"""
    calls = tool_calls_in(value)
    return calls is not None and len(calls) > 0 and all(c.get("name") in read_only for c in calls)


@dataclass(frozen=True)
class Source:
    """The checkpoint a call read and its task: what its branches fork from."""

    saver: Any  # RecordingSaver of the main run, or a branch's scratch saver
    checkpoint_id: str
    task_id: str


@dataclass(eq=False)
class Entry:
    """One actor call: the main run's, or one launched early on a branch (`owner`)."""

    binding: Binding
    key: str | None
    level: int
    state: Any
    config: RunnableConfig
    source: Source | None
    owner: Branch | None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    task: asyncio.Future[Any] | None = None
    spec_task: asyncio.Task[None] | None = None
    branches: list[Branch] = field(default_factory=list)
    speculated: bool = False
    resolved: bool = False
    cancelled: bool = False
    adopted: bool = False
    read_store: bool = False
    store_version: int = 0
    writes: list[Any] = field(default_factory=list)  # custom-stream chunks of an early call
    slot: bool = False  # holds a budget slot while its task runs
    hidden: float = 0.0  # how long it had run when the main run adopted it
    tokens: Any = None  # TokenRecorder of an early call, when the main run streams messages
    store_ops: list[Any] = field(default_factory=list)  # an early call's store writes, made on adoption
    remap: dict[str, Any] = field(default_factory=dict)  # its tool-call ids, messages -> the main run's
    handoff: bool = False  # its result is a Command the call raised to the node's graph (`_handoff`)
    main: bool = False
    """A marker of the main run's own call in flight (never adopted: branches that reach the same
    call wait for its outcome instead of launching it again)."""
    result: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    """The early call's result (or exception), for whoever waits: the main run or a branch."""

    @property
    def name(self) -> str:
        """The node's name."""
        return self.binding.name


@dataclass(eq=False)
class Branch:
    """A fork of the state with one guess applied, running beside the main run."""

    parent: Entry
    guess: Guess
    rank: int
    level: int
    bid: str
    task: asyncio.Task[None] | None = None
    entries: list[Entry] = field(default_factory=list)
    cancelled: bool = False
    outcome: str | None = None
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    saver: Any = None  # the branch's own in-memory checkpointer, once forked
    apply_task: str | None = None  # the task id whose write the guess stands for
    slot: bool = True  # holds a budget slot until its run ends
    late: bool = False  # right, but confirmed before it launched anything

    @property
    def lost(self) -> bool:
        """Ended without being confirmed."""
        return self.cancelled and self.outcome != "hit"


@dataclass
class Run:
    """What one run of a speculative graph is: its graph, config and everything branches share."""

    graph: Any  # the main run's graph: the compiled graph with the recording saver and store
    config: RunnableConfig
    recorder: RecordingSaver
    thread_id: str | None
    store: Any  # MainStore or None
    cache: Any
    context: Any
    before: frozenset[str]
    after: frozenset[str]
    recursion_limit: int
    conf: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int | None = None
    adopt_subgraphs: bool = False
    """A node holding a subgraph may be launched early and adopted whole: the subgraph's
    checkpoints reach no saver the user reads (no checkpointer) and no stream shows them."""


def forget_when_done(task: asyncio.Future[Any], owner: Entry | Branch, attr: str) -> None:
    """Clear `owner.<attr>` once `task` (stored there) is done. A finished task keeps its context
    (which holds the call's `Ctx`, hence `owner`) and its exception's traceback (whose frames hold
    `owner`): left in place, each is a reference cycle through the run's config and Pregel loop,
    which outlive the run until the garbage collector runs (LangGraph frees them at once)."""

    def forget(_: asyncio.Future[Any]) -> None:
        if getattr(owner, attr, None) is task:
            setattr(owner, attr, None)

    task.add_done_callback(forget)
