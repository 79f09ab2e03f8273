"""The compiled speculative graph: a `CompiledStateGraph` that opens a session around each run.

Nothing is fixed at compile time that a deployment changes later: the checkpointer, store and
cache are the ones of the graph being run (after `copy`, `with_config`, or a checkpointer a
server lends through the config), resolved when the run starts.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from ._budget import process_budget
from ._context import _CURRENT, SHED, Ctx
from ._plan import Plan, clone
from ._report import _PLAIN_RUN, SpeculationReport, warn_problems
from ._session import Session
from ._state import Run
from ._stores import MainStore
from ._tee import CopySerde, RecordingSaver

__all__ = ("SpeculativeCompiledGraph",)

# What `StateGraph.compile` sets on the compiled graph after building it (the v2 stream's state
# and output types), which `Pregel.__init__` would drop.
_SET_AFTER_INIT = ("_output_mapper", "_state_mapper")
_SKIP = ("checkpoint_id", "checkpoint_ns", "checkpoint_map")  # configurable keys branches do not take


def _recursion_limit(*configs: RunnableConfig | None) -> int:
    """The recursion limit LangGraph will run with: the run's, else the graph's, else LangGraph's
    default (10007, or `LANGGRAPH_DEFAULT_RECURSION_LIMIT`; not LangChain's 25)."""
    for config in configs:
        if config and config.get("recursion_limit") is not None:
            return int(config["recursion_limit"])
    return int(os.environ.get("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10007"))


class SpeculativeCompiledGraph(CompiledStateGraph):  # type: ignore[type-arg]
    """A compiled graph that speculates: `speculate(builder, ...).compile(...)` returns one.

    It is a `CompiledStateGraph` in every other respect: `invoke`, `stream`, their async twins,
    `get_state`, `update_state` and the rest behave as the plain graph's and see only the main
    run's thread.
    """

    def __init__(
        self, *, speculation: Plan, drawing: CompiledStateGraph | None = None, **kwargs: Any
    ) -> None:  # type: ignore[type-arg]
        kwargs.pop("_local", None)  # `copy()` hands every attribute back
        drawing = kwargs.pop("_drawing", drawing)
        mappers = {k: kwargs.pop(k) for k in _SET_AFTER_INIT if k in kwargs}
        super().__init__(**kwargs)
        self.__dict__.update(mappers)  # Pregel's __init__ drops them; StateGraph.compile sets them after
        self.speculation = speculation
        self._local = threading.local()
        self._drawing = drawing

    def get_graph(self, config: RunnableConfig | None = None, *, xray: int | bool = False) -> Any:
        """The graph's drawing: the plain graph's (the user's nodes, not the wrappers that
        speculate), as LangGraph Studio and notebooks show it."""
        if self._drawing is None:
            return super().get_graph(config, xray=xray)
        return _plain_nodes(self._drawing.get_graph(config, xray=xray))

    async def aget_graph(self, config: RunnableConfig | None = None, *, xray: int | bool = False) -> Any:
        """`get_graph`, async."""
        if self._drawing is None:
            return await super().aget_graph(config, xray=xray)
        return _plain_nodes(await self._drawing.aget_graph(config, xray=xray))

    @property
    def last_report(self) -> SpeculationReport | None:
        """The `SpeculationReport` of the latest run finished in this thread (else in the process)."""
        mine = getattr(self.__dict__.get("_local"), "report", None)
        return mine if mine is not None else self.speculation.last_report

    @property
    def report(self) -> SpeculationReport:
        """Counters of every run merged, and the most recent 1,000 events."""
        return self.speculation.report

    def report_for(self, run_id: Any) -> SpeculationReport | None:
        """The report of the run started with `config={"run_id": run_id}` (the latest 256 runs)."""
        return self.speculation.reports.get(str(run_id))

    # ---------------------------------------------------------------- runs

    def _open(
        self, input: Any, config: RunnableConfig | None, kwargs: dict[str, Any], mode: str
    ) -> Session | _Shed | None:
        """The run's session; or `_Shed` (a plain run that says why) when the process is busy or
        speculation refuses the run; None inside this graph's own run (the outer run reports)."""
        plan = self.speculation

        def refuse(why: str) -> _Shed:
            return _Shed(str((config or {}).get("run_id") or ""), why)

        if not plan.active:
            return refuse("no node of this graph has a speculator (or every policy is enabled=False)")
        ctx = _CURRENT.get()
        if ctx is not None and ctx.session is not None and ctx.session.plan is plan:
            return None  # this graph inside its own run: the outer session speculates for both
        merged = ensure_config(merge_configs(self.config, config))
        conf = merged.get("configurable") or {}
        if conf.get("checkpoint_ns"):
            plan.warn_once(
                "subgraph",
                f"speculative graph {self.get_name()!r} runs as a subgraph, where it does not "
                "speculate; wrap the parent instead (speculate(parent_builder, ...)): its "
                "branches run into subgraphs and adopt their SpeculativeNode calls",
                stacklevel=5,
            )
            return refuse("it runs as a subgraph: speculate the parent graph instead")
        durability = kwargs.get("durability")
        if durability is None and kwargs.get("checkpoint_during") is False:
            durability = "exit"
        before = kwargs.get("interrupt_before") or self.interrupt_before_nodes
        after = kwargs.get("interrupt_after") or self.interrupt_after_nodes
        if before == "*" or after == "*":
            which = "interrupt_before" if before == "*" else "interrupt_after"
            return refuse(f'{which}="*" stops at every node: a branch could never run')
        saver: Any = conf.get(CONFIG_KEY_CHECKPOINTER, self.checkpointer)
        lent = CONFIG_KEY_CHECKPOINTER in conf
        if saver is True or saver is False:
            return refuse(f"checkpointer={saver}: the graph runs inside another graph's checkpoints")
        thread_id = conf.get("thread_id")
        if isinstance(saver, BaseCheckpointSaver):
            if durability == "exit":
                plan.warn_once(
                    "exit",
                    'durability="exit" saves no checkpoint until the run ends, and a branch forks '
                    "one: this run does not speculate. Use durability='async' (the default) or 'sync'",
                    stacklevel=5,
                )
                return refuse('durability="exit" saves no checkpoint for a branch to fork')
            if thread_id is None:  # LangGraph says what is missing
                return refuse("no thread_id in config['configurable'] (the checkpointer needs one)")
        elif isinstance(input, Command):  # as without a checkpointer: LangGraph says what is missing
            return refuse("a Command input without a checkpointer")
        run_id = str(merged.get("run_id") or uuid.uuid4())
        budget = process_budget()
        if budget.shed_run():  # the process is busy with other runs: this one runs plain
            return _Shed(run_id, shed=True)
        try:
            if isinstance(saver, BaseCheckpointSaver):
                recorder = RecordingSaver(saver)
            else:
                recorder = RecordingSaver(
                    InMemorySaver(serde=CopySerde()),  # type: ignore[arg-type]
                    implicit=None if thread_id is not None else "run",
                    private=True,
                )
                if kwargs.pop("durability", None) is not None:
                    warnings.warn("`durability` has no effect when no checkpointer is present.", stacklevel=5)
            run_config: dict[str, Any] = dict(config or {})
            run_conf = dict(run_config.get("configurable") or {})
            if lent:
                run_conf[CONFIG_KEY_CHECKPOINTER] = recorder
            elif not run_conf:
                run_conf["checkpoint_ns"] = ""
            run_config["configurable"] = run_conf
            store = MainStore(self.store) if self.store is not None else None
            graph = clone(self, checkpointer=recorder, store=store)
            run = Run(
                graph=graph,
                config=run_config,  # type: ignore[arg-type]
                recorder=recorder,
                thread_id=None if thread_id is None else str(thread_id),
                store=store,
                cache=self.cache,
                context=kwargs.get("context"),
                before=frozenset(before or ()),
                after=frozenset(after or ()),
                recursion_limit=_recursion_limit(config, self.config),
                max_concurrency=merged.get("max_concurrency"),
                adopt_subgraphs=recorder.private and not kwargs.get("subgraphs"),
                conf={k: v for k, v in conf.items() if not k.startswith("__pregel_") and k not in _SKIP},
                tags=list(merged.get("tags") or []),
                metadata=dict(merged.get("metadata") or {}),
            )
            session = Session(plan, "sync" if mode == "sync" else "async", run)
        except BaseException:
            budget.run_ended()
            raise
        session.run_id = run_id
        return session

    def _done(self, session: Session, started: float) -> None:
        report = session.report
        report.wall_time_s = time.monotonic() - started
        report.runs = 1
        report.branches = session.branch_outcomes()
        report.checkpointer_calls = session.run.recorder.round_trips
        session.guesser.settle()  # adaptive prefetches learn what the run's last steps showed
        session.adaptive.finish(session)  # tokens of early calls never adopted (issue 18)
        self._local.report = report
        self.speculation.keep(session.run_id, report)
        session.release()
        plan = self.speculation
        speculators = lambda: {n: b.speculator for n, b in plan.bindings.items()}  # noqa: E731
        warn_problems(report, plan.warned, plan._lock, speculators, history=plan.report)

    def _shed_done(self, shed: _Shed) -> None:
        """A run that did not speculate (the process was busy, or speculation refused it): its
        report says so, and counts the calls it made."""
        report = shed.report
        report.wall_time_s = time.monotonic() - shed.started
        if shed.shed:
            process_budget().run_ended()
            report.add_event({"type": "speculation", "event": "shed_run", "node": ""})
        else:
            report.add_event(
                {"type": "speculation", "event": "refused", "node": "", "reason": report.refused}
            )
        self._local.report = report
        self.speculation.keep(shed.run_id or str(uuid.uuid4()), report)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        """`CompiledStateGraph.stream`, with a speculation session around the run."""
        session = self._open(input, config, kwargs, "sync")
        if session is None:
            yield from super().stream(input, config, **kwargs)
            return
        if isinstance(session, _Shed):
            try:
                yield from _within(session.ctx, super().stream(input, config, **kwargs), session.report)
            finally:
                self._shed_done(session)
            return
        started = time.monotonic()
        finished = False
        try:
            # The class's method, not the attribute: the run's graph is a copy of this one's
            # attributes, a `stream` patched onto this instance (a test's spy) among them.
            inner = CompiledStateGraph.stream(session.run.graph, input, session.run.config, **kwargs)
            yield from _hide_checkpoints(self, session, kwargs, _within(session.main_ctx, inner))
            finished = True
        finally:
            session.close()
            if finished:
                values, key = _finished(session)
                for name, observe, _ in _observers(self.speculation):
                    _observe(session, name, lambda o=observe: o(values, key=key))
            self._done(session, started)

    async def astream(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """`CompiledStateGraph.astream`, with a speculation session around the run."""
        session = self._open(input, config, kwargs, "async")
        if session is None:
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk
            return
        ctx: Ctx | None
        plain: SpeculationReport | None = None
        if isinstance(session, _Shed):
            ctx, inner, plain = session.ctx, super().astream(input, config, **kwargs), session.report
        else:
            session.loop = asyncio.get_running_loop()
            ctx = session.main_ctx  # the class's method, as in `stream`
            inner = CompiledStateGraph.astream(session.run.graph, input, session.run.config, **kwargs)
        hidden = None if isinstance(session, _Shed) else _checkpoint_filter(self, session, kwargs)
        started = time.monotonic()
        finished = False
        try:
            while True:
                token, counting = _CURRENT.set(ctx), _PLAIN_RUN.set(plain)
                try:
                    chunk = await inner.__anext__()
                except StopAsyncIteration:
                    finished = True
                    break
                finally:
                    _PLAIN_RUN.reset(counting)
                    _CURRENT.reset(token)
                if hidden is None or not hidden(chunk):
                    yield chunk
        finally:
            try:
                await inner.aclose()  # type: ignore[attr-defined]
            finally:
                if isinstance(session, _Shed):
                    self._shed_done(session)
                else:
                    await session.aclose_all()
                    if finished:
                        values, key = _finished(session)
                        for name, observe, aobserve in _observers(self.speculation):
                            if aobserve is not None:
                                await _aobserve(session, name, lambda a=aobserve: a(values, key=key))
                            else:
                                _observe(session, name, lambda o=observe: o(values, key=key))
                    self._done(session, started)


def _observers(plan: Plan) -> list[tuple[str, Any, Any]]:
    """`(node, observe, aobserve or None)` of the speculators that learn from finished runs
    (`ToolPatternSpeculator` through `model_call_speculator`), each once."""
    out, seen = [], set()
    for name, b in plan.bindings.items():
        spec = b.speculator
        for target in (spec, getattr(spec, "afunc", None), getattr(spec, "func", None)):
            observe = getattr(target, "observe", None) if target is not None else None
            if not callable(observe):
                continue
            ident = (id(getattr(observe, "__self__", None)), getattr(observe, "__func__", observe))
            if ident not in seen:
                seen.add(ident)
                aobserve = getattr(target, "aobserve", None)
                out.append((name, observe, aobserve if callable(aobserve) else None))
            break
    return out


def _finished(session: Session) -> tuple[dict[str, Any], str | None]:
    """The finished run's state (its last checkpoint's values) and its thread id."""
    saved = session.run.recorder.latest()
    values = dict(saved.checkpoint.get("channel_values") or {}) if saved is not None else {}
    return values, session.run.thread_id


def _observe_failed(session: Session, name: str, exc: Exception) -> None:
    session.report.node(name).speculator_errors += 1
    session.report.add_event(
        {
            "type": "speculation",
            "event": "speculator_error",
            "node": name,
            "reason": "observe",
            "error": repr(exc),
        }
    )


def _observe(session: Session, name: str, call: Any) -> None:
    try:
        call()
    except Exception as exc:  # learning is the speculator's business: never the run's error
        _observe_failed(session, name, exc)


async def _aobserve(session: Session, name: str, call: Any) -> None:
    try:
        await call()
    except Exception as exc:
        _observe_failed(session, name, exc)


def _plain_nodes(drawing: Any) -> Any:
    """`drawing` with every speculative subgraph shown as its plain graph (as a node's data)."""
    for key, node in list(drawing.nodes.items()):
        data = node.data
        if isinstance(data, SpeculativeCompiledGraph) and data._drawing is not None:
            drawing.nodes[key] = node._replace(data=data._drawing)
    return drawing


class _Shed:
    """A run that does not speculate: the process was busy with other runs when it started
    (`shed`), or speculation refused it (`reason`). It runs as the plain graph; its report
    says which, and counts its calls."""

    __slots__ = ("ctx", "report", "run_id", "shed", "started")

    def __init__(self, run_id: str, reason: str = "", *, shed: bool = False) -> None:
        self.run_id, self.shed = run_id, shed
        self.started = time.monotonic()
        self.report = SpeculationReport(runs=1, shed_runs=1 if shed else 0, refused=reason)
        # A busy process's run: the graph's nodes know it sheds (SHED). A refused run keeps the
        # caller's context (a subgraph's parent run goes on speculating around it).
        self.ctx: Ctx | None = SHED if shed else _CURRENT.get()


def _checkpoint_filter(graph: Any, session: Session, kwargs: dict[str, Any]) -> Callable[[Any], bool] | None:
    """For a run on the session's private saver (the graph has no checkpointer): a predicate
    true of the chunks LangGraph streams only because a checkpointer is there ("checkpoints"
    events, "checkpoint" debug events), which the plain graph never streams. None: no such chunk
    can come."""
    if not session.run.recorder.private:
        return None
    requested = kwargs.get("stream_mode") or graph.stream_mode
    single = isinstance(requested, str)
    modes = [requested] if single else list(requested)
    if "checkpoints" not in modes and "debug" not in modes:
        return None
    subgraphs = bool(kwargs.get("subgraphs"))
    v2 = kwargs.get("version") == "v2"

    def hidden(chunk: Any) -> bool:
        if v2:
            if not isinstance(chunk, dict):
                return False
            mode, payload = chunk.get("type"), chunk.get("data")
        elif single:
            mode = modes[0]
            payload = chunk[-1] if subgraphs and isinstance(chunk, tuple) else chunk
        elif isinstance(chunk, tuple) and len(chunk) >= 2:
            mode, payload = chunk[-2], chunk[-1]
        else:
            return False
        if mode == "checkpoints":
            return True
        return mode == "debug" and isinstance(payload, dict) and payload.get("type") == "checkpoint"

    return hidden


def _hide_checkpoints(
    graph: Any, session: Session, kwargs: dict[str, Any], chunks: Iterator[Any]
) -> Iterator[Any]:
    """`chunks` without those `_checkpoint_filter` hides."""
    hidden = _checkpoint_filter(graph, session, kwargs)
    if hidden is None:
        yield from chunks
        return
    try:
        for chunk in chunks:
            if not hidden(chunk):
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _within(ctx: Ctx | None, inner: Iterator[Any], plain: SpeculationReport | None = None) -> Iterator[Any]:
    """`inner`'s chunks, each computed with the speculation context `ctx` (and only then: the
    caller's code between chunks does not see it), in a run that counts its calls in `plain`
    when it runs plain; `inner` is closed at the end."""
    try:
        while True:
            token, counting = _CURRENT.set(ctx), _PLAIN_RUN.set(plain)
            try:
                chunk = next(inner)
            except StopIteration:
                return
            finally:
                _PLAIN_RUN.reset(counting)
                _CURRENT.reset(token)
            yield chunk
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            close()
