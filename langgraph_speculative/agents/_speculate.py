"""The speculator call, the tool step's serving and the run's end, as sync and async twins."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from ._calls import describe_error
from ._engine import Engine, copy_state, wants_request
from ._runs import Prefetch, Run, Turn

__all__ = ("afailed", "afinish", "aserve", "aspeculate", "failed", "finish", "serve", "speculate")

Tools = dict[str, tuple[BaseTool, "str | None"]]


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


def speculate(
    engine: Engine, turn: Turn, request: Any, tools: Tools, store: Any, config: RunnableConfig
) -> None:
    """Sync agents: call the speculator and launch its guesses (on a daemon thread)."""
    run = turn.run
    timeout = engine.policy.speculator_timeout
    t0 = time.monotonic()
    try:
        state = copy_state(request.state)
        if engine.sync_fn is not None:
            a, kw = _args(engine.sync_fn, state, request)
            raw = engine.sync_fn(*a, **kw)
            if inspect.isawaitable(raw):
                raw = _on_private_loop(engine, turn, raw, timeout)
        else:
            assert engine.async_fn is not None
            a, kw = _args(engine.async_fn, state, request)
            raw = _on_private_loop(engine, turn, engine.async_fn(*a, **kw), timeout)
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
            engine.launch(turn, engine.guesses_of(run, raw, elapsed), tools, store, config)
    finally:
        turn.speculator_done = True


def _on_private_loop(engine: Engine, turn: Turn, awaitable: Any, timeout: float | None) -> Any:
    """Run an async speculator from a sync agent: on an event loop of its own, on this thread."""

    async def wrap() -> Any:
        return await awaitable

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(wrap())

        def stop() -> None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop is closed: the call is over
                pass

        with turn.run.lock:
            turn.stopper = stop
            if turn.closed:
                task.cancel()
        return loop.run_until_complete(asyncio.wait_for(task, timeout))
    finally:
        loop.close()


async def aspeculate(
    engine: Engine, turn: Turn, request: Any, tools: Tools, store: Any, config: RunnableConfig
) -> None:
    """Async agents: call the speculator and launch its guesses (a task beside the model call)."""
    from ._engine import in_daemon_thread

    run = turn.run
    timeout = engine.policy.speculator_timeout
    t0 = time.monotonic()
    try:
        state = copy_state(request.state)
        if engine.async_fn is not None:
            a, kw = _args(engine.async_fn, state, request)
            call: Any = engine.async_fn(*a, **kw)
        else:
            assert engine.sync_fn is not None
            a, kw = _args(engine.sync_fn, state, request)
            future, thread = in_daemon_thread(engine.sync_fn, *a, **kw)
            with run.lock:
                run.speculator_threads.append(thread)
            call = asyncio.wrap_future(future)

        async def answer() -> Any:
            raw = await call
            return await raw if inspect.isawaitable(raw) else raw

        raw = await asyncio.wait_for(answer(), timeout)
    except asyncio.CancelledError:
        raise  # the model replied first ("speculator_late")
    except (asyncio.TimeoutError, TimeoutError):
        _timed_out(engine, run, turn)
    except Exception as exc:
        _failed(engine, run, exc)
    else:
        engine.launch(turn, engine.guesses_of(run, raw, time.monotonic() - t0), tools, store, config)
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
    return engine.adopt(run, p, result, request.tool_call, asked)  # type: ignore[no-any-return]


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
    return engine.adopt(run, p, work.result(), request.tool_call, asked)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- the run's end


def failed(engine: Engine, runtime: Any) -> None:
    """Sync agents, when a model call or a tool step raises: wait for the run's threads first."""
    run = engine.run_for(runtime, create=False)
    if run is not None:
        for p in run.live():
            engine.drop(run, p, "run_error")
        engine.join(run)


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


def _end(engine: Engine, runtime: Any) -> tuple[Run | None, list[Prefetch]]:
    run = engine.run_for(runtime, create=False)
    thread_id = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
    runs = [run] if run is not None else []
    if thread_id is not None:  # earlier, interrupted invocations of this thread
        runs += engine.runs_of_thread(thread_id, besides=run)
    live: list[Prefetch] = []
    for r in runs:
        live += engine.close_run(r, "run_end")
    return run, live


def finish(engine: Engine, state: Any, runtime: Any) -> None:
    """Sync agents, at the run's end: cancel what is left, wait for it, let the speculator learn."""
    run = engine.run_for(runtime, create=False)
    thread_id = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
    runs = ([run] if run is not None else []) + (
        engine.runs_of_thread(thread_id, besides=run) if thread_id is not None else []
    )
    _end(engine, runtime)
    for r in runs:  # sync tools cannot be interrupted: the run ends when they do
        engine.join(r)
    observe = getattr(engine.speculator, "observe", None)
    if callable(observe) and run is not None:
        try:
            observe(state, key=run.thread_id)
        except Exception as exc:
            engine.emit(run, "speculator_error", reason="observe", error=describe_error(exc))


async def afinish(engine: Engine, state: Any, runtime: Any) -> None:
    """Async agents, at the run's end: cancel what is left, await it, let the speculator learn."""
    run, live = _end(engine, runtime)
    loop = asyncio.get_running_loop()
    tasks = [p.task for p in live if p.task is not None and p.task.get_loop() is loop]
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    running = [p.future for p in live if p.future is not None and not p.future.done()]
    if running:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in running), return_exceptions=True)
    if run is None:
        return
    for thread in [t for t in run.speculator_threads if t.is_alive()]:  # sync speculators
        await loop.run_in_executor(None, thread.join, engine.policy.speculator_timeout)
    aobserve = getattr(engine.speculator, "aobserve", None)
    observe = getattr(engine.speculator, "observe", None)
    try:
        if callable(aobserve):
            await aobserve(state, key=run.thread_id)
        elif callable(observe):
            await loop.run_in_executor(None, lambda: observe(state, key=run.thread_id))
    except Exception as exc:
        engine.emit(run, "speculator_error", reason="observe", error=describe_error(exc))
