"""The run-level speculation summary in LangSmith: metadata `speculation` on the graph's run.

Branch runs carry their own metadata (`spec_node`, `spec_guess`, `spec_outcome`, ...); this puts
the run's totals where a user looks first, on the graph's own run: calls, hits, adopted and
wasted calls, time saved, speculator calls, tokens and cost per second saved. A callback handler,
first among the run's callbacks and only when tracing may be on, writes them when the graph's
run ends, just before the tracer sends it. Speculative calls still in flight then are about to be
cancelled: they count as wasted.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager

from ._trace import handlers_of

if TYPE_CHECKING:
    from ._report import SpeculationReport
    from ._state import Entry

__all__ = ("RunSummary", "TracedRun", "find_tracers")


class _Tuning(Protocol):
    @property
    def tracers(self) -> list[Any]: ...

    def pending_tokens_wasted(self) -> dict[str, int]: ...


class _RunView(Protocol):
    @property
    def config(self) -> Any: ...


class TracedRun(Protocol):
    """What the LangSmith summary reads of a speculating run (a `Session`)."""

    @property
    def run(self) -> _RunView: ...

    @property
    def report(self) -> SpeculationReport: ...

    @property
    def cache(self) -> dict[tuple[str, str], Entry]: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    @property
    def adaptive(self) -> _Tuning: ...

    def on_loop(self, fn: Callable[..., Any], *args: Any) -> Any: ...


def _tracers_in(callbacks: Any) -> list[Any]:
    from langchain_core.tracers.langchain import LangChainTracer

    out: list[Any] = []
    for h in handlers_of(callbacks):
        if isinstance(h, LangChainTracer) and h not in out:
            out.append(h)
    return out


def find_tracers(callbacks: Any) -> list[Any]:
    """The LangSmith tracers among a node's callbacks."""
    return _tracers_in(callbacks)


def _tracing_possible(callbacks: Any) -> bool:
    if _tracers_in(callbacks):
        return True
    try:
        from langsmith.utils import tracing_is_enabled
    except ImportError:  # pragma: no cover - langsmith ships with langchain-core
        return False
    try:
        return bool(tracing_is_enabled())
    except Exception:
        return False


class RunSummary(BaseCallbackHandler):
    """Writes the run's speculation summary into the graph run's LangSmith metadata."""

    run_inline = True  # before the tracer, in order, in the event loop's thread

    def __init__(self, session: TracedRun) -> None:
        super().__init__()
        self._session = weakref.ref(session)
        self.root: Any = None

    @classmethod
    def install(cls, session: TracedRun) -> RunSummary | None:
        """Put a handler first among the run's callbacks, if the run may be traced."""
        config = session.run.config
        callbacks = config.get("callbacks")
        if not _tracing_possible(callbacks):
            return None
        handler = cls(session)
        if isinstance(callbacks, BaseCallbackManager):
            callbacks = callbacks.copy()
            callbacks.handlers.insert(0, handler)
            callbacks.inheritable_handlers.insert(0, handler)
        else:
            callbacks = [handler, *(callbacks or [])]
        config["callbacks"] = callbacks
        return handler

    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # LangGraph's message-replay helper calls these directly on handlers of its modules: no-ops.
    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_llm_error(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if self.root is None:
            self.root = run_id  # the first chain this run starts is the graph's own

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if run_id == self.root:
            self._write()

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        if run_id == self.root:
            self._write()

    def _write(self) -> None:
        session = self._session()
        if session is None:
            return
        tuning = session.adaptive
        runs = [r for t in tuning.tracers if (r := t.run_map.get(str(self.root))) is not None]
        if not runs:
            return
        try:
            loop = session.loop
            running = _running_loop()
            if loop is not None and running is not loop and not loop.is_closed():
                summary = session.on_loop(summary_now, session)
            else:
                summary = summary_now(session)
        except Exception:  # telemetry never fails a run
            return
        for run in runs:
            run.metadata["speculation"] = summary


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def summary_now(session: TracedRun) -> dict[str, Any]:
    """The run's summary as of now (on the session's loop), calls in flight counted as wasted."""
    report = session.report
    summary = report.summary()
    summary.pop("nodes", None)
    inflight = [
        e for e in session.cache.values() if e.owner is not None and not e.cancelled and not e.adopted
    ]
    summary["wasted"] += len(inflight)
    summary["tokens_wasted"] += sum(session.adaptive.pending_tokens_wasted().values())
    summary["inflight_at_end"] = len(inflight)
    return summary
