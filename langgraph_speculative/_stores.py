"""What branches may do to the run's store and cache: read, never write.

- The main run's store counts its writes (`MainStore.version`). A call launched early that read
  the store is adopted only if the main run wrote nothing to it since the call started: what the
  call read is then what the main run's call would have read.
- A branch's store (`BranchStore`) passes reads through and records which early call made them;
  a write stops the branch (`BranchStop`), and fails an early call, which the main run then makes
  itself. A branch's write would be seen by the main run and by every other thread before its
  guess is confirmed.
- A branch's cache (`ReadOnlyCache`) serves what the user's cache holds and stores nothing: a
  branch never leaves an entry the plain run would not have made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langgraph.cache.base import BaseCache
from langgraph.store.base import BaseStore, Op, PutOp, Result

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
    """The user's store for a branch: reads recorded, writes stop the branch."""

    def _check(self, ops: list[Op]) -> None:
        if any(isinstance(op, PutOp) for op in ops):
            raise BranchStop("a branch does not write to the store")
        ctx = current()
        if ctx is not None and ctx.entry is not None:
            ctx.entry.read_store = True

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._check(ops)
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._check(ops)
        return await self.inner.abatch(ops)


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
