"""The speculator call, the tool step's serving and the run's end, as sync and async twins."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool

from langgraph_speculative._threads import offload, process_loop

from ._calls import describe_error
from ._engine import Engine, copy_state, reply_calls, wants_request
from ._inspect import Injected
from ._runs import NODE, Env, Run, Turn

__all__ = (
    "afailed",
    "afinish",
    "aserve",
    "aspeculate",
    "failed",
    "final_reply",
    "finish",
    "serve",
    "speculate",
    "quiet_speculator",
)

Tools = dict[str, tuple[BaseTool, Injected]]


def _timed_out(engine: Engine, run: Run, turn: Turn | None = None) -> None:
    if turn is not None:
        with run.lock:
            if turn.timed_out:
                return
            turn.timed_out = True
    engine.count(run, speculator_errors=1)
    engine.emit(run, "speculator_error", reason="timeout", timeout_s=engine.policy.speculator_timeout)


def _failed(engine: Engine, run: Run, exc: BaseException) -> None:
    engine.count(run, speculator_errors=1)
    engine.emit(run, "speculator_error", reason="raised", error=describe_error(exc))


def _args(fn: Any, state: Any, request: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (state,), ({"request": request} if wants_request(fn) else {})


# ---------------------------------------------------------------------- speculate


@contextlib.contextmanager
def quiet_speculator(config: RunnableConfig) -> Iterator[None]:
    """While the speculator is called: a chat model it calls inherits a config whose callbacks
    reach none of the user's streams (`messages`, events), tagged `nostream` and `speculative`."""
    cfg: RunnableConfig = {
        **config,
        "run_name": f"{NODE}:speculator",
        "tags": ["speculative", "nostream"],
        "metadata": {"speculative": True},
    }
    token = var_child_runnable_config.set(cfg)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def speculate(
    engine: Engine, turn: Turn, request: Any, tools: Tools, env: Env, config: RunnableConfig
) -> None:
    """Sync agents: call the speculator and launch its guesses (on the process pool; an async
    speculator on the process loop)."""
    run = turn.run
    timeout = engine.policy.speculator_timeout
    t0 = time.monotonic()
    try:
        state = copy_state(request.state)
        with quiet_speculator(config):
            if engine.sync_fn is not None:
                a, kw = _args(engine.sync_fn, state, request)
                raw = engine.sync_fn(*a, **kw)
                if inspect.isawaitable(raw):
                    raw = _on_process_loop(turn, raw, timeout)
            else:
                assert engine.async_fn is not None
                a, kw = _args(engine.async_fn, state, request)
                raw = _on_process_loop(turn, engine.async_fn(*a, **kw), timeout)
    except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
        _timed_out(engine, run, turn)
    except (asyncio.CancelledError, concurrent.futures.CancelledError):
        pass  # the model replied first ("speculator_late")
    except Exception as exc:
        _failed(engine, run, exc)
    else:
        elapsed = time.monotonic() - t0
        if timeout is not None and elapsed > timeout:
            _timed_out(engine, run, turn)
        else:
            engine.launch(turn, engine.guesses_of(run, raw, elapsed), tools, env, config)
    finally:
        turn.speculator_done = True


def _on_process_loop(turn: Turn, awaitable: Any, timeout: float | None) -> Any:
    """Run an async speculator from a sync agent, on the process loop (never closed: a client
    that pools connections keeps them usable), in the speculator's context; cancelled when the
    model replies first."""
    ctx = contextvars.copy_context()

    async def wrap() -> Any:
        for var, value in ctx.items():  # the task runs in the loop's context: bring ours over
            var.set(value)
        return await asyncio.wait_for(_awaited(awaitable), timeout)

    future = asyncio.run_coroutine_threadsafe(wrap(), process_loop())
    with turn.run.lock:
        turn.stopper = future.cancel
        if turn.closed:
            future.cancel()
    return future.result()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


async def aspeculate(
    engine: Engine, turn: Turn, request: Any, tools: Tools, env: Env, config: RunnableConfig
) -> None:
    """Async agents: call the speculator and launch its guesses (a task beside the model call;
    a sync speculator on the process pool)."""
    run = turn.run
    timeout = engine.policy.speculator_timeout
    t0 = time.monotonic()
    try:
        state = copy_state(request.state)

        async def answer() -> Any:
            with quiet_speculator(config):  # this task's own context
                if engine.async_fn is not None:
                    a, kw = _args(engine.async_fn, state, request)
                    raw = await engine.async_fn(*a, **kw)
                else:
                    assert engine.sync_fn is not None
                    a, kw = _args(engine.sync_fn, state, request)
                    raw = await offload(functools.partial(engine.sync_fn, *a, **kw))
            return await raw if inspect.isawaitable(raw) else raw

        raw = await asyncio.wait_for(answer(), timeout)
    except asyncio.CancelledError:
        raise  # the model replied first ("speculator_late")
    except (asyncio.TimeoutError, TimeoutError):
        _timed_out(engine, run, turn)
    except Exception as exc:
        _failed(engine, run, exc)
    else:
        engine.launch(turn, engine.guesses_of(run, raw, time.monotonic() - t0), tools, env, config)
    finally:
        turn.speculator_done = True


# ---------------------------------------------------------------------- serve


def serve(engine: Engine, request: Any) -> ToolMessage | None:
    """Sync tool step: the kept prefetch's result as this call's ToolMessage, or None."""
    got = engine.take(request)
    if got is None:
        return None
    run, p = got
    asked = time.monotonic()
    if p.future is None:
        engine.drop(run, p, "other_mode")
        return None
    if p.future.cancel():  # still queued: running it now is no later than the real call
        engine.drop(run, p, "not_started")
        return None
    try:
        result = p.future.result()
    except BaseException as exc:
        engine.drop(run, p, f"failed:{type(exc).__name__}")
        return None
    return engine.adopt(run, p, result, request, asked)  # type: ignore[no-any-return]


async def aserve(engine: Engine, request: Any) -> ToolMessage | None:
    """Async tool step: the kept prefetch's result as this call's ToolMessage, or None."""
    got = engine.take(request)
    if got is None:
        return None
    run, p = got
    asked = time.monotonic()
    work: asyncio.Future[Any] | None = p.task
    if work is None and p.future is not None:
        if p.future.cancel():
            engine.drop(run, p, "not_started")
            return None
        work = asyncio.wrap_future(p.future)
    if work is None:
        engine.drop(run, p, "other_mode")
        return None
    try:
        await asyncio.wait({work})
    except asyncio.CancelledError:
        engine.drop(run, p, "tool_step_cancelled")
        raise
    if work.cancelled() or work.exception() is not None:
        engine.drop(run, p, "failed")
        return None
    return engine.adopt(run, p, work.result(), request, asked)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- the run's end


def failed(engine: Engine, runtime: Any) -> None:
    """When a model call or a tool step raises: cancel the run's prefetches (sync tools already
    running finish in the background, their results discarded)."""
    run = engine.run_for(runtime, create=False)
    if run is not None:
        for p in run.live():
            engine.drop(run, p, "run_error")


async def afailed(engine: Engine, runtime: Any) -> None:
    """Async agents, when a model call or a tool step raises: cancel the run's prefetches, await them."""
    run = engine.run_for(runtime, create=False)
    if run is None:
        return
    live = run.live()
    for p in live:
        engine.drop(run, p, "run_error")
    loop = asyncio.get_running_loop()
    tasks = [p.task for p in run.launched if p.task is not None and p.task.get_loop() is loop]
    if tasks:
        await asyncio.wait(tasks)


def final_reply(response: Any) -> bool:
    """Does the model's reply end the agent's loop (it calls no tool)?"""
    return not reply_calls(response)


def _finished_state(request: Any, response: Any) -> Any:
    """The agent's state at the run's end: the model request's state and its final reply."""
    state = request.state
    reply = list(getattr(response, "result", None) or [response])
    if isinstance(state, dict):
        return {**state, "messages": [*(state.get("messages") or []), *reply]}
    return state


def _end(engine: Engine, runtime: Any) -> Run | None:
    run = engine.run_for(runtime, create=False)
    thread_id = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
    runs = [run] if run is not None else []
    if thread_id is not None:  # earlier, interrupted invocations of this thread
        runs += engine.runs_of_thread(thread_id, besides=run)
    for r in runs:
        engine.close_run(r, "run_end")
    return run


def finish(engine: Engine, request: Any, response: Any) -> None:
    """Sync agents, at the model's final reply (the run ends without another tool step): cancel
    what is left, let the speculator learn. Nothing is waited for: a sync call that cannot be
    stopped finishes in the background. (The middleware adds no node of its own for this: the
    agent's checkpoints and `updates` are those it has without the middleware.)"""
    run = _end(engine, request.runtime)
    observe = getattr(engine.speculator, "observe", None)
    if callable(observe) and run is not None:
        try:
            observe(_finished_state(request, response), key=run.thread_id)
        except Exception as exc:
            engine.emit(run, "speculator_error", reason="observe", error=describe_error(exc))


async def afinish(engine: Engine, request: Any, response: Any) -> None:
    """Async agents, at the model's final reply: `finish`, awaiting the run's tasks."""
    run = _end(engine, request.runtime)
    if run is None:
        return
    loop = asyncio.get_running_loop()
    tasks = [p.task for p in run.launched if p.task is not None and p.task.get_loop() is loop]
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    state = _finished_state(request, response)
    aobserve = getattr(engine.speculator, "aobserve", None)
    observe = getattr(engine.speculator, "observe", None)
    try:
        if callable(aobserve):
            await aobserve(state, key=run.thread_id)
        elif callable(observe):
            await offload(functools.partial(observe, state, key=run.thread_id))
    except Exception as exc:
        engine.emit(run, "speculator_error", reason="observe", error=describe_error(exc))
