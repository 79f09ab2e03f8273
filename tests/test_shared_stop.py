"""A branch never raises a `BranchStop` object another branch may raise too.

The branch that ends by a `BranchStop` clears the frames of its traceback (`_forget_frames`, so
that a lost branch is freed at once). An exception object raised in two branches carries frames
of both: clearing it from one finalized the other's coroutines still suspended with it in
flight, and that branch then failed with "cannot reuse already awaited coroutine" (seen with
`prefetch=` on a fan-out, in the random apps of `test_lossless`). Stored results are shared: a
task's result kept for the branches that resume its superstep, and an early call several
branches wait on. So `Forks.branch_node` raises a fresh `BranchStop` of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from langgraph_speculative import _branches
from langgraph_speculative._context import BranchStop


def _forks(results: dict[str, concurrent.futures.Future[Any]]) -> Any:
    session = SimpleNamespace(results=results, register=lambda info: concurrent.futures.Future())
    return _branches.Forks(session)  # type: ignore[arg-type]


def _binding() -> Any:
    return SimpleNamespace(name="n3")


@pytest.mark.parametrize("done", [True, False])
def test_a_stop_stored_for_a_resumed_task_is_raised_afresh(done: bool) -> None:
    shared = BranchStop("n3 stopped on another branch")
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
    forks = _forks({"task-1": fut})
    branch = SimpleNamespace(apply_task="task-0")

    async def run() -> BaseException:
        if done:
            fut.set_exception(shared)
        else:
            asyncio.get_running_loop().call_later(0.01, fut.set_exception, shared)
        with pytest.raises(BranchStop) as raised:
            await forks.branch_node(_binding(), {}, {}, branch)
        return raised.value

    with mock.patch.object(_branches, "exec_info", return_value=SimpleNamespace(task_id="task-1")):
        got = asyncio.run(run())
    assert got is not shared and got.args == shared.args


def test_a_stop_from_a_shared_early_call_is_raised_afresh_and_stored_as_it_was() -> None:
    shared = BranchStop("an early call several branches wait on stopped")
    stored: list[concurrent.futures.Future[Any]] = []

    def register(info: Any) -> concurrent.futures.Future[Any]:
        stored.append(concurrent.futures.Future())
        return stored[-1]

    forks = _forks({})
    forks.s.register = register

    async def stops(*args: Any) -> Any:
        raise shared

    async def run() -> BaseException:
        with pytest.raises(BranchStop) as raised:
            await forks.branch_node(_binding(), {}, {}, SimpleNamespace(apply_task=None))
        return raised.value

    with (
        mock.patch.object(_branches, "exec_info", return_value=SimpleNamespace(task_id="task-2")),
        mock.patch.object(forks, "_branch_node", stops),
    ):
        got = asyncio.run(run())
    assert got is not shared
    assert stored and stored[0].exception() is shared  # what branches resuming the task get
