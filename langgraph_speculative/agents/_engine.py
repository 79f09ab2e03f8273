"""The work behind `SpeculativeToolCalls`: speculate, launch, settle, serve, clean up.

It runs on the library's one runtime (`langgraph_speculative._threads`), as the graph path does.
Async agents (`ainvoke`, `astream`): the speculator and the prefetches of tools with an async
implementation are tasks on the caller's loop; sync speculators and sync tools run through
their sync path on the process pool (never on the loop's default executor, where they would
starve the agent's own tool calls). Sync agents (`invoke`, `stream`): the speculator and the
prefetches run on the process pool (an async speculator on the process loop, which is never
closed). Every prefetch holds a slot of the process budget, and a turn that starts while the
process is busy with other runs does not speculate. The model call never waits for any of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from langgraph_speculative import SpeculationPolicy, SpeculationReport
from langgraph_speculative._budget import process_budget
from langgraph_speculative._report import warn_problems
from langgraph_speculative._threads import offload, process_pool, sync_only
from langgraph_speculative._trace import quiet

from ._calls import ToolGuess, coerce_guesses
from ._inspect import Injected, declared_read_only, injected_args
from ._runs import (
    NODE,
    WROTE,
    Env,
    Mode,
    Prefetch,
    Run,
    Turn,
    as_served,
    key_of,
    placeholder_call,
    reply_of,
    same_state,
)

__all__ = ("Engine", "copy_state", "reply_calls", "same_tool", "tool_config", "wants_request")

_MAX_OPEN_RUNS = 256


class Engine:
    """Speculation for one `SpeculativeToolCalls` instance, across all its runs."""

    def __init__(self, speculator: Any, read_only: frozenset[str] | None, policy: SpeculationPolicy) -> None:
        self.derived = read_only is None
        """No `read_only` was given: a tool is read-only iff it declares `readOnlyHint`."""
        self.read_only: frozenset[str] = read_only or frozenset()
        self.policy = policy
        self.report = SpeculationReport()
        self.last_report: SpeculationReport | None = None
        self.sync_fn, self.async_fn = _twins(speculator)
        self.speculator = speculator
        self.bound = False  # create_agent was seen (its arguments checked)
        self.gated: set[str] = set()  # tools HumanInTheLoopMiddleware may pause before
        self._runs: dict[tuple[Any, int], Run] = {}
        self._lock = threading.RLock()
        self.warned: set[str] = set()  # speculator problems already warned about
        self._checked: dict[int, tuple[BaseTool, Injected]] = {}  # id(tool) -> what it gets injected

    # ------------------------------------------------------------------ telemetry

    def emit(self, run: Run, event: str, **data: Any) -> None:
        """One event: to the run's report, the middleware's report and the custom stream."""
        ev = run.report.add_event({"type": "speculation", "event": event, "node": NODE, **data})
        self.report.add_event(dict(ev))
        if run.writer is not None and self.policy.stream_events:
            try:
                run.writer(dict(ev))
            except Exception:  # outside the run's context, or the stream is gone
                pass

    def count(self, run: Run, **inc: float) -> None:
        with self._lock:
            for report in (run.report, self.report):
                stats = report.node(NODE)
                for name, value in inc.items():
                    setattr(stats, name, getattr(stats, name) + value)

    # ------------------------------------------------------------------ runs

    def run_for(self, runtime: Any, *, create: bool) -> Run | None:
        """The run that `runtime` (a node's `Runtime` or a tool's `ToolRuntime`) belongs to."""
        writer = getattr(runtime, "stream_writer", None)
        info = getattr(runtime, "execution_info", None)
        thread_id = getattr(info, "thread_id", None)
        key = (thread_id, id(writer))
        stale: list[Run] = []
        with self._lock:
            run = self._runs.get(key)
            if run is None and create:
                run = self._runs[key] = Run(key, thread_id, writer)
                if thread_id is not None:  # an earlier invocation of this thread is over
                    stale = [r for k, r in self._runs.items() if k != key and r.thread_id == thread_id]
                if len(self._runs) > _MAX_OPEN_RUNS:
                    stale.append(next(iter(self._runs.values())))
        for old in stale:
            self.close_run(old, "stale")
        return run

    def runs_of_thread(self, thread_id: str, *, besides: Run | None = None) -> list[Run]:
        """Open runs of `thread_id` other than `besides`."""
        with self._lock:
            return [r for r in self._runs.values() if r.thread_id == thread_id and r is not besides]

    def close_run(self, run: Run, reason: str) -> list[Prefetch]:
        """End `run`: cancel what it still has in flight; returns those prefetches."""
        with self._lock:
            if self._runs.get(run.key) is run:
                del self._runs[run.key]
        with run.lock:
            if run.closed:
                return []
            run.closed = True
            if run.turn is not None:
                run.turn.closed = True
                if run.turn.stopper is not None:
                    run.turn.stopper()
            live = run.live()
            run.kept.clear()
        for p in live:
            self.drop(run, p, reason)
        run.report.wall_time_s = time.monotonic() - run.started_at
        run.report.runs = 1
        with self._lock:
            self.report.wall_time_s += run.report.wall_time_s
            self.report.runs += 1
        self.last_report = run.report
        warn_problems(run.report, self.warned, self._lock, lambda: {NODE: self.speculator})
        return live

    def drop(self, run: Run, p: Prefetch, reason: str) -> None:
        """`p` will never be used: cancel it and count it as wasted."""
        with run.lock:
            if p.state in ("adopted", "dropped", "cancelled"):
                return
            p.state = "cancelled" if not p.done else "dropped"
        stopped = p.cancel()
        self.count(run, cancelled=1 if p.state == "cancelled" else 0, wasted=1)
        self.emit(run, "cancelled", reason=reason, call=p.guess.as_dict(), rank=p.rank, running=not stopped)

    # ------------------------------------------------------------------ a model call

    def begin(self, request: Any, mode: Mode) -> tuple[Turn, dict[str, Any]]:
        """Start a turn for this model call: check the tools, drop last turn's leftovers. A turn
        that starts while the process is busy with other runs is `shed` (it does not speculate);
        end every turn with `end_turn`."""
        tools = self._read_only_tools(request.tools)
        run = self.run_for(request.runtime, create=True)
        assert run is not None
        shed = process_budget().shed_run()  # counted active until `end_turn`
        with run.lock:
            leftovers = list(run.kept.values())
            run.kept.clear()
            turn = run.turn = Turn(run, mode)
            turn.shed = shed
        for p in leftovers:  # kept for a call the tool step never asked for
            self.drop(run, p, "not_asked")
        self.count(run, calls=1)
        if shed:
            self.count(run, shed=1)
            self.emit(run, "shed_run")
        return turn, tools

    def end_turn(self, turn: Turn) -> None:
        """The model call is over (replied, failed or cancelled): the turn no longer counts as
        an active run of the process."""
        with turn.run.lock:
            if turn.counted_out:
                return
            turn.counted_out = True
        process_budget().run_ended()

    def declare(self, tools: Any) -> None:
        """Without an explicit `read_only`: the tools among `tools` that declare `readOnlyHint`
        (and no `HumanInTheLoopMiddleware` gate) become read-only; those that do not, are not."""
        if not self.derived:
            return
        mine = set(self.read_only)
        for tool in tools or []:
            if isinstance(tool, BaseTool):
                if declared_read_only(tool) and tool.name not in self.gated:
                    mine.add(tool.name)
                else:
                    mine.discard(tool.name)
        self.read_only = frozenset(mine)

    def _read_only_tools(self, tools: Any) -> dict[str, tuple[BaseTool, Injected]]:
        """The read-only tools of this model call, with what each gets injected (found once)."""
        self.declare(tools)
        out: dict[str, tuple[BaseTool, Injected]] = {}
        names = set()
        for tool in tools or []:
            if not isinstance(tool, BaseTool):
                continue
            names.add(tool.name)
            if tool.name not in self.read_only:
                continue
            checked = self._checked.get(id(tool))
            if checked is None or checked[0] is not tool:
                checked = self._checked[id(tool)] = (tool, injected_args(tool))
            out[tool.name] = checked
        if not self.bound and not self.derived:
            unknown = sorted(self.read_only - names)
            if unknown:
                raise ValueError(
                    f"SpeculativeToolCalls(read_only=...) names {', '.join(map(repr, unknown))}, not "
                    f"among the model's tools ({', '.join(map(repr, sorted(names))) or 'none'}). "
                    "Fix the name(s) or remove them from read_only."
                )
        return out

    def guesses_of(self, run: Run, raw: Any, elapsed: float) -> list[ToolGuess]:
        """The guesses to launch, from the speculator's raw answer (junk is an event)."""
        guesses, problems = coerce_guesses(raw)
        if problems:
            self.count(run, speculator_errors=1)
            self.emit(run, "speculator_error", reason="junk", problems=problems[:5])
        floor = self.policy.min_confidence
        chosen: list[ToolGuess] = []
        for g in guesses:
            if floor is not None and g.confidence is not None and g.confidence < floor:
                continue
            if g.name not in self.read_only:
                self.emit(run, "skipped", reason="not_read_only", call=g.as_dict())
                continue
            chosen.append(g)
        chosen = chosen[: self.policy.k]
        self.emit(run, "guesses", guesses=[g.as_dict() for g in chosen], speculator_s=round(elapsed, 6))
        return chosen

    def launch(
        self,
        turn: Turn,
        guesses: list[ToolGuess],
        tools: dict[str, tuple[BaseTool, Injected]],
        env: Env,
        config: RunnableConfig,
    ) -> None:
        """Start a prefetch per guess (in the turn's mode), unless the model has replied."""
        run = turn.run
        if any(g.name in tools and tools[g.name][1].reads_state for g in guesses):
            env.snapshot()  # the copy of the state, taken before the run's lock is held
        with run.lock:
            if turn.closed:  # the model replied first: settle said "speculator_late"
                return
            for rank, g in enumerate(guesses, 1):
                if g.name not in tools:
                    self.emit(run, "skipped", reason="tool_unavailable", call=g.as_dict())
                    continue
                if len(run.live()) >= self.policy.max_inflight:
                    self.emit(run, "budget", inflight=len(run.live()), call=g.as_dict())
                    break
                why = process_budget().acquire()
                if why is not None:  # the process's bound on speculative work, or a busy process
                    self.count(run, shed=1)
                    self.emit(run, "budget" if why == "budget" else "shed", call=g.as_dict())
                    break
                tool, injected = tools[g.name]
                ready = placeholder_call(g, injected, env, _prefetch_config(config, g, rank))
                cfg = ready.config
                p = Prefetch(g, rank, tool, turn, ready.call, ready.snapshot, ready.read, ready.writes)
                if turn.mode == "async":
                    p.task = asyncio.get_running_loop().create_task(_arun_tool(p, cfg))
                    p.task.add_done_callback(_retrieve)
                    p.task.add_done_callback(lambda _: process_budget().release())
                else:
                    ctx = contextvars.copy_context()
                    p.future = process_pool().submit(ctx.run, _run_tool, p, cfg)
                    p.future.add_done_callback(lambda _: process_budget().release())
                turn.prefetches[g.key] = p
                run.launched.append(p)
                self.count(run, guesses=1, launched=1)
                self.emit(run, "launch", call=g.as_dict(), rank=rank)

    def settle(self, turn: Turn, response: Any, run_tree: Any) -> None:
        """The model replied: keep the prefetches of calls it made, cancel the rest."""
        run = turn.run
        timeout = self.policy.speculator_timeout
        with run.lock:
            turn.closed = True
            late = not turn.speculator_done
            if turn.stopper is not None and late:
                turn.stopper()
            if late and timeout is not None and time.monotonic() - turn.started_at > timeout:
                turn.timed_out = True  # a sync speculator still running: it hangs
            prefetches = list(turn.prefetches.values())
        if turn.timed_out:
            self.count(run, speculator_errors=1)
            self.emit(run, "speculator_error", reason="timeout", timeout_s=timeout)
        elif late:
            self.emit(run, "speculator_late")
        if not prefetches:
            return
        calls = reply_calls(response)
        unsafe = sorted({str(c.get("name")) for c in calls if c.get("name") not in self.read_only})
        kept: list[Prefetch] = []
        if not unsafe:
            by_key = {p.guess.key: p for p in prefetches}
            with run.lock:
                for c in calls:
                    key = key_of(c)
                    p = by_key.pop(key, None) if key is not None and c.get("id") else None
                    if p is not None and key is not None and p.state == "running":
                        p.state = "kept"
                        run.kept[(str(c["id"]), key)] = p
                        kept.append(p)
        for p in prefetches:
            if p not in kept:
                self.drop(run, p, "reply_has_unsafe_call" if unsafe else "miss")
        if turn.mode == "sync" and self.gated.intersection(unsafe):
            # the run may pause for a person next: a sync call cannot be stopped, so wait for it
            concurrent.futures.wait([p.future for p in prefetches if p.future is not None])
        real = [{"name": c.get("name"), "args": c.get("args")} for c in calls]
        if kept:
            self.count(run, hits=1)
            self.emit(run, "hit", kept=[p.guess.as_dict() for p in kept], calls=real)
        else:
            self.count(run, misses=1)
            self.emit(run, "miss", calls=real, **({"unsafe": unsafe} if unsafe else {}))
        if run_tree is not None:
            try:
                run_tree.metadata["speculation"] = {
                    "launched": [p.guess.as_dict() for p in prefetches],
                    "kept": [p.guess.as_dict() for p in kept],
                    "outcome": "hit" if kept else "miss",
                }
            except Exception:
                pass

    def abort(self, turn: Turn, reason: str) -> None:
        """The model call failed or was cancelled: cancel everything the turn started."""
        run = turn.run
        with run.lock:
            turn.closed = True
            if turn.stopper is not None and not turn.speculator_done:
                turn.stopper()
            prefetches = list(turn.prefetches.values())
        for p in prefetches:
            self.drop(run, p, reason)

    # ------------------------------------------------------------------ the tool step

    def take(self, request: Any) -> tuple[Run, Prefetch] | None:
        """The kept prefetch for this tool call, if one may serve it."""
        run = self.run_for(request.runtime, create=False)
        if run is None:
            return None
        call = request.tool_call
        key = key_of(call)
        call_id = call.get("id")
        with run.lock:
            p = run.kept.pop((call_id, key), None) if key is not None and call_id else None
        if p is None or p.state != "kept":  # none, or dropped since (the run failed)
            return None
        reason = None
        if not same_tool(p.tool, request.tool):
            reason = "tool_changed"
        else:
            reply = reply_of(request.state, call_id)
            if reply is None:
                reason = "reply_not_in_state"
            elif any(c.get("name") not in self.read_only for c in reply.tool_calls):
                reason = "reply_has_unsafe_call"
            elif p.snapshot is not None and not same_state(p.snapshot, request.state, reply):
                reason = "state_changed"  # the tool reads the state, which the real call sees otherwise
        if reason is not None:
            self.drop(run, p, reason)
            return None
        return run, p

    def adopt(self, run: Run, p: Prefetch, result: Any, request: Any, asked: float) -> Any:
        """The ToolMessage to serve for the tool step's `request` from `p`'s result, or None to
        run the tool. What the prefetch wrote to its runtime's stream writer is written now, to
        the real call's."""
        call = request.tool_call
        if WROTE in p.read:  # its write never happened: the real call must make it
            self.drop(run, p, "wrote_state")
            return None
        if {"*", "messages"} & p.read:  # the real call would have seen the model's reply too
            self.drop(run, p, "read_messages")
            return None
        message = as_served(result, call["id"], p.call["id"])
        if message is None:
            status = result.status if isinstance(result, ToolMessage) else type(result).__name__
            if isinstance(result, ToolMessage) and result.status == "success":
                status = "shows_call_id"
            self.drop(run, p, f"not_served:{status}")
            return None
        writer = getattr(getattr(request, "runtime", None), "stream_writer", None)
        if p.writes and callable(writer):
            for chunk in list(p.writes):
                writer(chunk)
        hidden = p.hidden_s(asked)
        with run.lock:
            p.state = "adopted"
        self.count(run, adopted=1, time_saved_s=hidden)
        self.emit(run, "adopted", call=p.guess.as_dict(), tool_call_id=call["id"], hidden_s=round(hidden, 6))
        return message

    def shutdown(self) -> None:
        """Cancel every open run."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self.close_run(run, "closed")


def same_tool(early: Any, real: Any) -> bool:
    """Whether the tool step runs the tool a prefetch ran: the same object, or a copy that
    differs in its description only (a middleware may reword a tool for the model, as
    deepagents does with `grep`)."""
    if early is real:
        return True
    if type(early) is not type(real) or not isinstance(early, BaseTool):
        return False
    for name in type(early).model_fields:
        if name == "description":
            continue
        a, b = getattr(early, name, None), getattr(real, name, None)
        if a is not b and a != b:
            return False
    return True


def _twins(speculator: Any) -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """The speculator's sync and async callables (either may be None)."""
    if not inspect.isfunction(speculator) and callable(getattr(speculator, "ainvoke", None)):
        sync = getattr(speculator, "invoke", None)
        return (sync if callable(sync) else None), speculator.ainvoke
    target = speculator if inspect.isroutine(speculator) else getattr(speculator, "__call__", speculator)  # noqa: B004
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(speculator):
        return None, speculator
    return speculator, None


def wants_request(fn: Callable[..., Any]) -> bool:
    """Whether `fn` declares a parameter named `request` (it then gets the `ModelRequest`)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "request" in params and params["request"].kind is not inspect.Parameter.POSITIONAL_ONLY


def copy_state(state: Any) -> Any:
    """A copy of the agent state for the speculator, so it cannot change the real one."""
    try:
        return copy.deepcopy(state)
    except Exception:
        if isinstance(state, dict):
            return {**state, "messages": list(state.get("messages") or [])}
        return state


def reply_calls(response: Any) -> list[dict[str, Any]]:
    """The tool calls of the model's reply (a `ModelResponse` or an `AIMessage`)."""
    messages = getattr(response, "result", None)
    if messages is None:
        messages = [response]
    ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    return [dict(c) for c in ai.tool_calls] if ai is not None else []


def tool_config(config: RunnableConfig) -> RunnableConfig:
    """The config prefetches and the speculator run under: the user's configurable, none of
    LangGraph's internals."""
    configurable = {
        k: v
        for k, v in (config.get("configurable") or {}).items()
        if not str(k).startswith("__pregel_") and not str(k).startswith("checkpoint_")
    }
    # Speculative work is traced (a child of the model call, tagged `speculative`) but must not
    # reach the user's streams (`messages`, `tools`, events): a wrong guess would read as the agent's.
    return {"callbacks": quiet(config.get("callbacks")), "configurable": configurable}


def _prefetch_config(base: RunnableConfig, guess: ToolGuess, rank: int) -> RunnableConfig:
    return {
        **base,
        "tags": ["speculative"],
        "metadata": {"speculative": True, "spec_rank": rank, "spec_guess": guess.as_dict()},
    }


def _run_tool(p: Prefetch, config: RunnableConfig) -> Any:
    try:
        return p.tool.invoke(p.call, config)
    finally:
        p.finished_at = time.monotonic()


async def _arun_tool(p: Prefetch, config: RunnableConfig) -> Any:
    try:
        if sync_only(p.tool):  # on the process pool, not the loop's default executor
            return await offload(p.tool.invoke, p.call, config)
        return await p.tool.ainvoke(p.call, config)
    finally:
        p.finished_at = time.monotonic()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a prefetch's exception as seen (its result is simply not served)."""
    if not task.cancelled():
        task.exception()
