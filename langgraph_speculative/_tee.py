"""The main run's checkpointer, seen through a recorder: branches fork from what it holds.

`RecordingSaver` passes every call through to the user's saver unchanged and keeps, in memory,
the run's last few root checkpoints as the run hands them over (and the task writes made
against them). A branch forks from that copy: it never reads the user's saver and never waits
for a checkpoint to arrive there (with `durability="async"` the save may still be on its way;
the recorder sees it the moment LangGraph's writer hands it over and wakes whoever waits).

With no saver of the user's, the run gets a private `InMemorySaver` whose thread id nodes never
see (`implicit=True`): the recorder adds it to every call and removes it from what it returns.
That saver keeps copies of the values (`CopySerde`), not their serialized form: a graph without a
checkpointer runs any Python value through its state, serializable or not.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import pickle
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
)

__all__ = ("CopySerde", "ForkSerde", "RecordingSaver", "Saved")

_KEEP = 6  # root checkpoints kept per run: the one a running node read is among the newest
STORE_WAIT_S = 30.0  # a guard: an adopted call waits this long at most for its step's checkpoint


@dataclass
class Saved:
    """A root checkpoint as the run handed it to the saver, and the writes made against it."""

    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    writes: list[tuple[str, Any, str]] = field(default_factory=list)  # (task_id, writes, task_path)


class CopySerde:
    """A checkpoint "serializer" that keeps deep copies of the values themselves.

    For the private saver of a run without a checkpointer: LangGraph never serializes such a
    run's state, so any value must do. A value that cannot be copied is kept as it is.
    """

    _TYPE = "lgs-copy"

    def dumps_typed(self, obj: Any) -> tuple[str, Any]:
        """`obj`, copied."""
        return self._TYPE, _copied(obj)

    def loads_typed(self, data: tuple[str, Any]) -> Any:
        """A fresh copy of what `dumps_typed` kept."""
        return _copied(data[1])


class ForkSerde:
    """The "serializer" of a branch's own saver: values are kept as they are, every load hands
    out a private copy.

    A branch's saver lives in this process, for as long as its branch, and is read by the
    branch's own run: serializing the state a branch forks from and parsing it back (a
    checkpointer's round trip, O(state) twice per branch, 200 ms for 10,000 messages) buys
    nothing a copy does not. The copy is made by pickle (several times faster than a deep
    copy or a serializer's round trip for messages and pydantic records), else by a deep copy;
    unlike a serializer's round trip it keeps every type as the main run holds it (a tuple stays
    a tuple), so a branch's nodes see what the main run's see. A value neither can copy (a lock,
    a client) is shared, as LangGraph shares it between steps.
    """

    _TYPE = "lgs-fork"

    def dumps_typed(self, obj: Any) -> tuple[str, Any]:
        """`obj` itself (a branch saves state it owns: its run replaces, not changes, a value)."""
        return self._TYPE, obj

    def loads_typed(self, data: tuple[str, Any]) -> Any:
        """A private copy of what `dumps_typed` kept."""
        try:
            return pickle.loads(pickle.dumps(data[1], protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # a local class, a lambda inside: a deep copy can still copy it
            return _copied(data[1])


def _copied(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # a lock, a client, a generator: shared as LangGraph would share it
        return value


def _conf(config: RunnableConfig | None) -> dict[str, Any]:
    return dict((config or {}).get("configurable") or {})


class RecordingSaver(BaseCheckpointSaver):  # type: ignore[type-arg]
    """A pass-through checkpointer that remembers the run's root checkpoints (see module doc)."""

    def __init__(
        self, inner: BaseCheckpointSaver, *, implicit: str | None = None, private: bool = False
    ) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner
        self.implicit = implicit
        self.private = private  # the run's own saver (the graph has none): LangGraph would save nothing
        self.start_step: int | None = None  # the step the run starts at (from the checkpoint it loaded)
        self._saved: OrderedDict[str, Saved] = OrderedDict()
        self._lock = threading.Lock()
        self._waiters = _Waiters()  # for checkpoints the run hands over (`wait_for`)
        self._stored: OrderedDict[str, None] = OrderedDict()  # root checkpoints the saver has stored
        self._stored_cond = threading.Condition(self._lock)
        self._store_waiters = _Waiters()  # for checkpoints the user's saver stores (`wait_stored`)
        self.round_trips = 0  # calls that reached the user's saver during the run

    # ---------------------------------------------------------------- recording

    def _root(self, config: RunnableConfig | None) -> bool:
        return not _conf(config).get("checkpoint_ns")

    def _in(self, config: RunnableConfig) -> RunnableConfig:
        if self.implicit is None:
            return config
        conf = _conf(config)
        conf["thread_id"] = self.implicit
        return {**config, "configurable": conf}

    def _out(self, config: RunnableConfig) -> RunnableConfig:
        if self.implicit is None or config is None:
            return config
        conf = _conf(config)
        conf.pop("thread_id", None)
        return {**config, "configurable": conf}

    def _out_tuple(self, tup: CheckpointTuple | None) -> CheckpointTuple | None:
        if tup is None or self.implicit is None:
            return tup
        return tup._replace(
            config=self._out(tup.config),
            parent_config=self._out(tup.parent_config) if tup.parent_config else None,
        )

    def _record(self, checkpoint: Checkpoint, metadata: CheckpointMetadata, writes: Any = ()) -> None:
        with self._lock:
            saved = self._saved.get(checkpoint["id"])
            if saved is None:
                saved = self._saved[checkpoint["id"]] = Saved(checkpoint, metadata)
                while len(self._saved) > _KEEP:
                    self._saved.popitem(last=False)
            saved.writes.extend(writes)
            woken = self._waiters.pop(checkpoint["id"])
        _Waiters.wake(woken, saved)

    def _record_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> None:
        cid = _conf(config).get("checkpoint_id")
        with self._lock:
            saved = self._saved.get(cid) if cid else None
            if saved is not None:
                saved.writes.append((task_id, list(writes), path))

    def _loaded(self, config: RunnableConfig, tup: CheckpointTuple | None) -> None:
        if not self._root(config):
            return
        if self.start_step is None:
            self.start_step = int((tup.metadata or {}).get("step", -2) if tup else -2) + 1
        if tup is not None:
            writes = [(str(tid), [(c, v)], "") for tid, c, v in (tup.pending_writes or [])]
            # A copy: LangGraph's loop runs on the very checkpoint it loaded and changes its
            # versions in place as it goes; a branch forks from the checkpoint as it was.
            self._record(copy_checkpoint(tup.checkpoint), tup.metadata, writes)
            self._mark_stored(tup.checkpoint["id"])

    # ---------------------------------------------------------------- stored

    def _mark_stored(self, checkpoint_id: str) -> None:
        with self._lock:
            self._stored[checkpoint_id] = None
            while len(self._stored) > 8 * _KEEP:
                self._stored.popitem(last=False)
            woken = self._store_waiters.pop(checkpoint_id)
            self._stored_cond.notify_all()
        _Waiters.wake(woken, None)

    def wait_stored_blocking(self, checkpoint_id: str | None, timeout: float = STORE_WAIT_S) -> bool:
        """Block until the user's saver has stored the root checkpoint a main-run task read
        (False after `timeout`; True at once for a task in a subgraph). See `wait_stored`."""
        if checkpoint_id is None:
            return True
        with self._stored_cond:
            return self._stored_cond.wait_for(lambda: checkpoint_id in self._stored, timeout)

    async def wait_stored(self, checkpoint_id: str | None, timeout: float = STORE_WAIT_S) -> bool:
        """Wait until the user's saver has stored the root checkpoint a main-run task read
        (False after `timeout`; True at once for a task in a subgraph, None).

        LangGraph puts a step's checkpoint in the background (durability "async"), and some
        channels (a join's barrier) hand it their live value: the next step's writes, applied
        before the put has serialized it, would be saved into it. A node's call takes long
        enough in a plain run; an adopted one returns at once, so it waits for the put."""
        if checkpoint_id is None:
            return True
        with self._lock:
            if checkpoint_id in self._stored:
                return True
            fut = self._store_waiters.add(checkpoint_id)
        try:
            await self._until(self._store_waiters, checkpoint_id, fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def wait_for(self, checkpoint_id: str) -> Saved:
        """The recorded checkpoint `checkpoint_id`, as soon as the run hands it over."""
        with self._lock:
            saved = self._saved.get(checkpoint_id)
            if saved is not None:
                return saved
            fut = self._waiters.add(checkpoint_id)
        got: Saved = await self._until(self._waiters, checkpoint_id, fut)
        return got

    async def _until(
        self, table: _Waiters, key: str, fut: asyncio.Future[Any], timeout: float | None = None
    ) -> Any:
        """Await `fut` (woken from `table`), and take it off `table` however the wait ends."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout) if timeout else await fut
        finally:
            with self._lock:
                table.drop(key, fut)

    def latest(self) -> Saved | None:
        """The last checkpoint the run saved (or loaded), if any."""
        with self._lock:
            return next(reversed(self._saved.values()), None)

    # ---------------------------------------------------------------- the saver interface

    @property
    def config_specs(self) -> list[Any]:  # type: ignore[override]
        return self.inner.config_specs

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.round_trips += 1
        tup = self.inner.get_tuple(self._in(config))
        self._loaded(config, tup)
        return self._out_tuple(tup)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.round_trips += 1
        tup = await self.inner.aget_tuple(self._in(config))
        self._loaded(config, tup)
        return self._out_tuple(tup)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        root = self._root(config)
        if root:
            self._record(checkpoint, metadata)
        self.round_trips += 1
        try:
            return self._out(self.inner.put(self._in(config), checkpoint, metadata, new_versions))
        finally:
            if root:
                self._mark_stored(checkpoint["id"])

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        root = self._root(config)
        if root:
            self._record(checkpoint, metadata)
        self.round_trips += 1
        try:
            return self._out(await self.inner.aput(self._in(config), checkpoint, metadata, new_versions))
        finally:
            if root:
                self._mark_stored(checkpoint["id"])

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if self._root(config):
            self._record_writes(config, writes, task_id, task_path)
        self.round_trips += 1
        if _takes_task_path(self.inner.put_writes):
            self.inner.put_writes(self._in(config), writes, task_id, task_path)
        else:  # a saver written before `task_path` existed: LangGraph would not pass it either
            self.inner.put_writes(self._in(config), writes, task_id)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if self._root(config):
            self._record_writes(config, writes, task_id, task_path)
        self.round_trips += 1
        if _takes_task_path(self.inner.aput_writes):
            await self.inner.aput_writes(self._in(config), writes, task_id, task_path)
        else:
            await self.inner.aput_writes(self._in(config), writes, task_id)

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
        for tup in self.inner.list(self._in(config) if config else config, **kwargs):
            yield self._out_tuple(tup)  # type: ignore[misc]

    async def alist(self, config: RunnableConfig | None, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        async for tup in self.inner.alist(self._in(config) if config else config, **kwargs):
            yield self._out_tuple(tup)  # type: ignore[misc]

    def get_next_version(self, current: Any, channel: Any) -> Any:
        return self.inner.get_next_version(current, channel)

    def with_allowlist(self, allowlist: Any) -> RecordingSaver:
        twin = RecordingSaver(
            self.inner.with_allowlist(allowlist), implicit=self.implicit, private=self.private
        )
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if k != "inner"})
        return twin

    def __getattr__(self, name: str) -> Any:
        # anything else of the user's saver (setup, conn, ...) as it is
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


def _delegate(name: str) -> Any:
    def method(self: RecordingSaver, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"`{name}` of the user's saver."
    return method


# Every other method of the saver interface goes to the user's saver as it is (the base class
# would otherwise answer with its own defaults instead of the user's implementation).
for _name, _value in vars(BaseCheckpointSaver).items():
    if callable(_value) and not _name.startswith("_") and _name not in vars(RecordingSaver):
        setattr(RecordingSaver, _name, _delegate(_name))


def _takes_task_path(put_writes: Any) -> bool:
    """Does a saver's `put_writes`/`aput_writes` take `task_path`? (LangGraph asks the same.)
    Asked once per function: a saver's method is the same function at every step."""
    fn = getattr(put_writes, "__func__", put_writes)
    try:
        return _signature_has_task_path(fn)
    except TypeError:  # an unhashable callable: asked every time
        return _signature_has_task_path.__wrapped__(fn)


@functools.lru_cache(maxsize=256)
def _signature_has_task_path(put_writes: Any) -> bool:
    try:
        return inspect.signature(put_writes).parameters.get("task_path") is not None
    except (TypeError, ValueError):
        return True


class _Waiters:
    """Event-loop futures waiting for a key (a checkpoint id), woken from any thread. `add`,
    `pop` and `drop` run under the saver's lock; `wake` after it is released."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]] = {}

    def add(self, key: str) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._by_key.setdefault(key, []).append((loop, fut))
        return fut

    def pop(self, key: str) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]:
        return self._by_key.pop(key, [])

    def drop(self, key: str, fut: asyncio.Future[Any]) -> None:
        waiting = self._by_key.get(key)
        if waiting is not None:
            waiting[:] = [w for w in waiting if w[1] is not fut]
            if not waiting:
                del self._by_key[key]

    @staticmethod
    def wake(woken: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]], value: Any) -> None:
        for loop, fut in woken:
            loop.call_soon_threadsafe(_resolve, fut, value)


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
