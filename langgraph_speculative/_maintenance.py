"""Finding and deleting branch threads that older versions left in a checkpointer.

Earlier versions of this library forked each branch into the user's own checkpointer, as a
thread named `<thread>:spec:<hex>` (or `run:spec:<hex>`), and kept an adopted branch's thread
there for good. Branches now run in in-memory checkpointers of their own, so nothing of theirs
reaches your saver; these helpers clean up what the old layout left behind.

SQLite and PostgreSQL savers are asked with one `SELECT DISTINCT` over their tables; an
`InMemorySaver` (or a subclass) is read directly; any other saver is walked with `list(None)`.
Threads are deleted with the saver's own `delete_thread` / `adelete_thread`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

__all__ = ("BRANCH_MARK", "adelete_branch_threads", "delete_branch_threads")

BRANCH_MARK = ":spec:"
"""What the name of every branch thread holds: `<main thread>:spec:<hex>`."""

_SQLITE_TABLES = ("checkpoints", "writes")
_PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _is_branch(thread: Any, of: str | None) -> bool:
    name = str(thread)
    return name.startswith(f"{of}{BRANCH_MARK}") if of is not None else BRANCH_MARK in name


def _like(of: str | None) -> str:
    """The SQL LIKE pattern for the branch threads of `of` (all when None); escape is a backslash."""
    if of is None:
        return f"%{BRANCH_MARK}%"
    escaped = of.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}{BRANCH_MARK}%"


def _select(tables: Iterable[str], placeholder: str) -> str:
    return " UNION ".join(
        f"SELECT DISTINCT thread_id FROM {t} WHERE thread_id LIKE {placeholder} ESCAPE '\\'" for t in tables
    )


def _pick(rows: Iterable[Any], of: str | None) -> list[str]:
    names = {str(r["thread_id"] if isinstance(r, dict) else r[0]) for r in rows}
    return sorted(n for n in names if _is_branch(n, of))  # LIKE ignores case in SQLite: check again


def _memory_threads(saver: InMemorySaver) -> set[str]:
    names = {str(t) for t in saver.storage}
    names |= {str(k[0]) for k in saver.writes}
    names |= {str(k[0]) for k in saver.blobs}
    return names


def _kind(saver: BaseCheckpointSaver) -> str:  # type: ignore[type-arg]
    """Which fast path reads `saver`'s thread names: memory, sqlite, aiosqlite, postgres, apostgres."""
    if isinstance(saver, InMemorySaver):
        return "memory"
    for module, cls, kind in (
        ("langgraph.checkpoint.sqlite", "SqliteSaver", "sqlite"),
        ("langgraph.checkpoint.sqlite.aio", "AsyncSqliteSaver", "aiosqlite"),
        ("langgraph.checkpoint.postgres", "PostgresSaver", "postgres"),
        ("langgraph.checkpoint.postgres.aio", "AsyncPostgresSaver", "apostgres"),
    ):
        try:
            found = getattr(__import__(module, fromlist=[cls]), cls)
        except ImportError:
            continue
        if isinstance(saver, found) and getattr(saver, "pipe", None) is None:
            return kind
    return "any"


def _sqlite_missing(exc: Exception) -> bool:
    return "no such table" in str(exc)


def branch_threads(saver: BaseCheckpointSaver, thread_id: str | None = None) -> list[str]:  # type: ignore[type-arg]
    """The names of the branch threads in `saver` (of `thread_id` only, if given), sorted."""
    kind = _kind(saver)
    if kind == "memory":
        return sorted(n for n in _memory_threads(saver) if _is_branch(n, thread_id))  # type: ignore[arg-type]
    if kind == "sqlite":
        s: Any = saver
        try:
            with s.lock:
                rows = s.conn.execute(
                    _select(_SQLITE_TABLES, "?"), (_like(thread_id),) * len(_SQLITE_TABLES)
                ).fetchall()
        except Exception as exc:
            if _sqlite_missing(exc):
                return []  # never set up: it holds no thread
            raise
        return _pick(rows, thread_id)
    if kind == "postgres":
        s = saver
        sql, params = _select(_PG_TABLES, "%s"), (_like(thread_id),) * len(_PG_TABLES)
        import psycopg

        if isinstance(s.conn, psycopg.Connection):
            with s.lock:
                rows = s.conn.execute(sql, params).fetchall()
        else:  # a ConnectionPool
            with s.conn.connection() as conn:
                rows = conn.execute(sql, params).fetchall()
        return _pick(rows, thread_id)
    if kind in ("aiosqlite", "apostgres"):
        raise TypeError(
            f"{type(saver).__name__} is an async saver: use `await adelete_branch_threads(saver, ...)`"
        )
    names = {str(t.config["configurable"]["thread_id"]) for t in saver.list(None)}
    return sorted(n for n in names if _is_branch(n, thread_id))


async def abranch_threads(saver: BaseCheckpointSaver, thread_id: str | None = None) -> list[str]:  # type: ignore[type-arg]
    """`branch_threads`, for async savers (AsyncSqliteSaver, AsyncPostgresSaver, any other)."""
    kind = _kind(saver)
    if kind in ("memory", "sqlite", "postgres"):
        return branch_threads(saver, thread_id)
    if kind == "aiosqlite":
        s: Any = saver
        try:
            async with (
                s.lock,
                s.conn.execute(
                    _select(_SQLITE_TABLES, "?"), (_like(thread_id),) * len(_SQLITE_TABLES)
                ) as cur,
            ):
                rows = await cur.fetchall()
        except Exception as exc:
            if _sqlite_missing(exc):
                return []
            raise
        return _pick(rows, thread_id)
    if kind == "apostgres":
        s = saver
        sql, params = _select(_PG_TABLES, "%s"), (_like(thread_id),) * len(_PG_TABLES)
        import psycopg

        if isinstance(s.conn, psycopg.AsyncConnection):
            async with s.lock:
                rows = await (await s.conn.execute(sql, params)).fetchall()
        else:  # an AsyncConnectionPool
            async with s.conn.connection() as conn:
                rows = await (await conn.execute(sql, params)).fetchall()
        return _pick(rows, thread_id)
    names: set[str] = set()
    async for t in saver.alist(None):
        name = str(t.config["configurable"]["thread_id"])
        if _is_branch(name, thread_id):
            names.add(name)
    return sorted(names)


def delete_branch_threads(
    saver: BaseCheckpointSaver,  # type: ignore[type-arg]
    thread_id: str | None = None,
    *,
    dry_run: bool = False,
) -> list[str]:
    """Delete the branch threads (`*:spec:*`) that earlier versions left in `saver`.

    Args:
        saver: a sync checkpointer (InMemorySaver, SqliteSaver, PostgresSaver, or any other
            whose `list(None)` walks every thread).
        thread_id: only the branches of this main thread (`<thread_id>:spec:*`); all when None.
        dry_run: only list them.

    Returns:
        The names of the branch threads found (and deleted unless `dry_run`), sorted. Main
        threads are never touched.

    Raises:
        TypeError: `saver` is an async saver (use `adelete_branch_threads`).
    """
    found = branch_threads(saver, thread_id)
    if not dry_run:
        for name in found:
            saver.delete_thread(name)
    return found


async def adelete_branch_threads(
    saver: BaseCheckpointSaver,  # type: ignore[type-arg]
    thread_id: str | None = None,
    *,
    dry_run: bool = False,
) -> list[str]:
    """`delete_branch_threads` for async savers (AsyncSqliteSaver, AsyncPostgresSaver, ...)."""
    if _kind(saver) in ("sqlite", "postgres"):  # sync savers: their async methods refuse
        return delete_branch_threads(saver, thread_id, dry_run=dry_run)
    found = await abranch_threads(saver, thread_id)
    if not dry_run:
        for name in found:
            await saver.adelete_thread(name)
    return found
