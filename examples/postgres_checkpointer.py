"""A PostgreSQL checkpointer for LangGraph Server, named in langgraph.json:

    "checkpointer": {"path": "./examples/postgres_checkpointer.py:checkpointer"}

The server enters it once per event loop and lends the saver to every run (speculative graphs
included: their main run's checkpoints go here, their branches stay in memory). Set
`CHECKPOINT_POSTGRES_URI` (e.g. postgresql://user:pass@host:5432/db).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncPostgresSaver]:
    """An `AsyncPostgresSaver` over a connection pool, its tables set up, closed with the server."""
    uri = os.environ["CHECKPOINT_POSTGRES_URI"]
    kwargs = {"autocommit": True, "prepare_threshold": 0}
    async with AsyncConnectionPool(uri, max_size=10, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        yield saver
