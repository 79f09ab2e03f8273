"""Checkpointer fixtures: one test body over memory, SQLite and PostgreSQL.

PostgreSQL is a real server on 127.0.0.1 (`.ci/start-postgres.sh`); each test
gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from .leftovers import settle_background_calls

PG_URI = os.environ.get("LGS_PG_URI", "postgresql://postgres@127.0.0.1:54329/postgres")

SOAK = int(os.environ.get("LGS_HYPOTHESIS_EXAMPLES", "200"))  # the lossless properties' example budget


def examples(ci: int) -> int:
    """A property's example count: `ci` in CI, scaled up when LGS_HYPOTHESIS_EXAMPLES asks for a soak."""
    return max(ci, ci * SOAK // 200)


SEED = int(os.environ.get("LGS_SEED") or random.SystemRandom().randrange(1, 2**31))


def pytest_configure(config: Any) -> None:
    """Every run draws fresh hypothesis examples from one seed (LGS_SEED=<n> replays a run)."""
    if getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = SEED


def pytest_report_header(config: Any) -> str:
    seed = getattr(config.option, "hypothesis_seed", SEED)
    return f"lossless properties: seed {seed} (replay with LGS_SEED={seed} or --hypothesis-seed={seed})"


@pytest.fixture(autouse=True)
def _every_slot_given_back() -> Iterator[None]:
    """After every test, the process budget is whole again: no run still counted active, no
    branch or early call still holding a slot (a leak would stop speculation process-wide)."""
    from langgraph_speculative._budget import process_budget

    budget = process_budget()
    before = (budget.active_runs, budget.inflight)
    yield
    settle_background_calls()  # sync calls a run could not stop hold their slots until they end
    after = (budget.active_runs, budget.inflight)
    if after != before:
        budget.active_runs, budget.inflight = before  # one leak fails one test, not the rest
        pytest.fail(f"the process budget leaked: (active runs, slots) {before} -> {after}")


SYNC_SAVERS = ["none", "memory", "sqlite", "postgres"]
ASYNC_SAVERS = ["none", "memory", "sqlite_aio", "postgres_aio"]


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URI, connect_timeout=2):
            return True
    except Exception:
        return False


def _need_pg() -> None:
    if not _pg_available():
        if os.environ.get("CI") or os.environ.get("LGS_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URI}; run .ci/start-postgres.sh")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URI}; run .ci/start-postgres.sh")


@contextmanager
def _pg_database() -> Iterator[str]:
    import psycopg

    _need_pg()
    name = f"lgs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URI, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URI.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_URI, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@contextmanager
def make_saver(kind: str, tmp_path: Any) -> Iterator[Any]:
    """A sync-capable checkpointer of the given kind (None for 'none')."""
    if kind == "none":
        yield None
    elif kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    elif kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(str(tmp_path / f"{uuid.uuid4().hex}.db"), check_same_thread=False)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    elif kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg_pool import ConnectionPool

        with _pg_database() as uri:
            with ConnectionPool(
                uri, max_size=20, kwargs={"autocommit": True, "prepare_threshold": 0}
            ) as pool:
                saver = PostgresSaver(pool)  # type: ignore[arg-type]
                saver.setup()
                yield saver
    else:
        raise ValueError(kind)


@asynccontextmanager
async def amake_saver(kind: str, tmp_path: Any) -> AsyncIterator[Any]:
    """An async-capable checkpointer of the given kind (None for 'none')."""
    if kind in ("none", "memory"):
        with make_saver(kind, tmp_path) as saver:
            yield saver
    elif kind == "sqlite_aio":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / f"{uuid.uuid4().hex}.db")) as saver:
            yield saver
    elif kind == "postgres_aio":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg_pool import AsyncConnectionPool

        with _pg_database() as uri:
            async with AsyncConnectionPool(
                uri, max_size=20, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
            ) as pool:
                saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
                await saver.setup()
                yield saver
    else:
        raise ValueError(kind)
