"""What branches may do to the run's store and cache: read, never write.

- The main run's store counts its writes (`MainStore.version`). A call launched early that read
  the store is adopted only if the main run wrote nothing to it since the call started: what the
  call read is then what the main run's call would have read.
- A branch's store (`BranchStore`) passes reads through and records which early call made them.
  An early call's writes are kept with the call (and read back by it), never sent: the main run
  that adopts the call makes them then, as its own actor would have. Any other write on a branch
  stops the branch (`BranchStop`). A branch's write would be seen by the main run and by every
  other thread before its guess is confirmed.
- A branch's cache (`ReadOnlyCache`) serves what the user's cache holds and stores nothing: a
  branch never leaves an entry the plain run would not have made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from langgraph.cache.base import BaseCache
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, Result

from ._context import BranchStop, current

__all__ = ("BranchStore", "MainStore", "ReadOnlyCache")


class _Proxy(BaseStore):
    def __init__(self, inner: BaseStore) -> None:
        self.inner = inner
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class MainStore(_Proxy):
    """The user's store for the main run, counting writes."""

    def __init__(self, inner: BaseStore) -> None:
        super().__init__(inner)
        self.version = 0

    def _count(self, ops: list[Op]) -> None:
        if any(isinstance(op, PutOp) for op in ops):
            self.version += 1

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._count(ops)
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._count(ops)
        return await self.inner.abatch(ops)


class BranchStore(_Proxy):
    """The user's store for a branch: reads recorded, an early call's writes kept for adoption."""

    def _split(self, ops: list[Op]) -> tuple[list[Result | None], list[int], list[Op]]:
        """Answer what the early call's own writes answer; the rest go to the user's store."""
        ctx = current()
        entry = ctx.entry if ctx is not None else None
        writes = [op for op in ops if isinstance(op, PutOp)]
        if writes and entry is None:
            raise BranchStop("a branch does not write to the store")
        results: list[Result | None] = [None] * len(ops)
        forward: list[int] = []
        for i, op in enumerate(ops):
            if isinstance(op, PutOp):
                assert entry is not None
                entry.store_ops.append(op)
            elif entry is not None and entry.store_ops:
                if isinstance(op, GetOp):
                    own = [w for w in entry.store_ops if w.namespace == op.namespace and w.key == op.key]
                    if own:
                        results[i] = _item(own[-1])
                        continue
                else:  # a search or listing cannot be merged with writes not yet made
                    raise BranchStop("an early call searched the store after writing to it")
                forward.append(i)
            else:
                forward.append(i)
        if forward and entry is not None:
            entry.read_store = True
        return results, forward, [ops[i] for i in forward]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results, forward, sent = self._split(list(ops))
        for i, res in zip(forward, self.inner.batch(sent) if sent else []):
            results[i] = res
        return results  # type: ignore[return-value]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results, forward, sent = self._split(list(ops))
        for i, res in zip(forward, await self.inner.abatch(sent) if sent else []):
            results[i] = res
        return results  # type: ignore[return-value]


def _item(op: PutOp) -> Item | None:
    if op.value is None:
        return None
    now = datetime.now(timezone.utc)
    return Item(value=dict(op.value), key=op.key, namespace=op.namespace, created_at=now, updated_at=now)


class ReadOnlyCache(BaseCache):  # type: ignore[type-arg]
    """The user's node cache for a branch: reads pass, writes are dropped."""

    def __init__(self, inner: BaseCache) -> None:  # type: ignore[type-arg]
        super().__init__(serde=inner.serde)
        self.inner = inner

    def get(self, keys: Sequence[Any]) -> dict[Any, Any]:
        return self.inner.get(keys)

    async def aget(self, keys: Sequence[Any]) -> dict[Any, Any]:
        return await self.inner.aget(keys)

    def set(self, pairs: Mapping[Any, tuple[Any, int | None]]) -> None:
        return None

    async def aset(self, pairs: Mapping[Any, tuple[Any, int | None]]) -> None:
        return None

    def clear(self, namespaces: Sequence[Any] | None = None) -> None:
        return None

    async def aclear(self, namespaces: Sequence[Any] | None = None) -> None:
        return None
