"""Fork a thread through a checkpointer: copy a checkpoint to a new thread.

OSS savers do not implement `copy_thread`; this works on any
`BaseCheckpointSaver` through `get_tuple`/`put` (and the async twins).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

__all__ = ("afork_thread", "fork_thread")

# The checkpoint a node reads may still be on its way to the saver
# (durability="async"); wait this long for it before giving up.
_WAIT_S = 1.0


def _target(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _put_args(tup: CheckpointTuple, thread_id: str) -> tuple[Any, ...]:
    """`put` arguments that copy `tup` whole (every channel value) into `thread_id`."""
    metadata: Any = {**(tup.metadata or {}), "speculative_fork_of": tup.config["configurable"]["thread_id"]}
    return _target(thread_id), tup.checkpoint, metadata, dict(tup.checkpoint["channel_versions"])


def fork_thread(
    saver: BaseCheckpointSaver,
    source: RunnableConfig,
    thread_id: str,
    stop: Callable[[], bool] = lambda: False,
) -> RunnableConfig:
    """Copy the checkpoint `source` names into a new thread `thread_id`.

    Returns the config of the copy. Raises `LookupError` when the checkpoint
    is not in the saver (after waiting for it up to a second, or until `stop()`).
    """
    deadline = time.monotonic() + _WAIT_S
    while (tup := saver.get_tuple(source)) is None:
        if stop() or time.monotonic() > deadline:
            raise LookupError(f"checkpoint {source['configurable']} is not in the checkpointer")
        time.sleep(0.002)
    return saver.put(*_put_args(tup, thread_id))


async def afork_thread(
    saver: BaseCheckpointSaver,
    source: RunnableConfig,
    thread_id: str,
    stop: Callable[[], bool] = lambda: False,
) -> RunnableConfig:
    """Async twin of `fork_thread`."""
    deadline = time.monotonic() + _WAIT_S
    while (tup := await saver.aget_tuple(source)) is None:
        if stop() or time.monotonic() > deadline:
            raise LookupError(f"checkpoint {source['configurable']} is not in the checkpointer")
        await asyncio.sleep(0.002)
    return await saver.aput(*_put_args(tup, thread_id))
