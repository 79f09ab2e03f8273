"""What of the library's speculation is still at work after a run: none may be, once the sync
calls that were running when it ended (sync code cannot be interrupted) have finished."""

from __future__ import annotations

import asyncio
import threading
import time

from langgraph_speculative import _threads

_PROCESS_THREADS = (
    f"{_threads.PREFIX}-loop",
    f"{_threads.PREFIX}-work-",
    f"{_threads.PREFIX}-graphs",  # the ready-made graphs' commands: one loop for the process
)


def _loop_tasks() -> int:
    if _threads._LOOP is None:
        return 0

    async def count() -> int:
        return len(asyncio.all_tasks() - {asyncio.current_task()})

    return asyncio.run_coroutine_threadsafe(count(), _threads._LOOP.loop).result(5)


def settle_background_calls(grace_s: float = 5.0) -> None:
    """Let sync calls that were still running when their run ended finish (up to `grace_s`: a
    hang guard, not a timing assertion), and their done callbacks run."""
    deadline = time.monotonic() + grace_s
    while _threads.busy_calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    if _threads._LOOP is not None:  # callbacks posted to the process loop by finished calls
        _loop_tasks()


def leftover_work(grace_s: float = 5.0) -> list[str]:
    """Speculative work still alive: tasks on the process loop, sync calls on the process pool,
    and threads of the library other than the process loop and pool. Sync calls that are
    still finishing get up to `grace_s` first."""
    settle_background_calls(grace_s)
    left = [f"{n} task(s) on the process loop" for n in [_loop_tasks()] if n]
    if _threads.busy_calls():
        left.append(f"{_threads.busy_calls()} sync call(s) on the process pool")
    left += [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(_threads.PREFIX) and t.is_alive() and not t.name.startswith(_PROCESS_THREADS)
    ]
    return left
