"""Lossy mode: last write wins, for live systems where waiting is worse than a wrong step.

A `LossyNode` is called once per control window. Its fast speculator's
update is returned (and so applied) at once, every window; its slow actor
runs in the background across windows and, when it finishes, its update is
returned on top of the speculator's of that window: the actor's write
overwrites (last write wins). Every applied write is an event in the node's
report, on LangGraph's custom stream, and a traced child run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from ._node import as_runnable
from ._policy import SpeculationPolicy
from ._report import SpeculationReport
from ._trace import stream_writer

__all__ = ("LossyNode",)


class LossyNode(Runnable[Any, dict[str, Any]]):
    """A node for live-tuning loops: the speculator acts now, the actor overwrites later.

    ```python
    tune = LossyNode(careful_model, speculator=local_step)
    builder.add_node("tune", tune)
    async with tune:            # cancels the actor still thinking when the loop ends
        await graph.ainvoke(...)
    print(tune.report.events)   # every applied write, with its source and time
    ```

    `actor` and `speculator` take the node's input state and return an update
    dict (sync or async functions, or Runnables). Either may be None (actor-only
    or speculator-only). A speculator that raises, times out (async runs)
    (`policy.speculator_timeout`) or returns a non-dict is skipped with an event.
    """

    def __init__(
        self,
        actor: Any = None,
        *,
        speculator: Any = None,
        policy: SpeculationPolicy | None = None,
        name: str = "lossy",
    ) -> None:
        if actor is None and speculator is None:
            raise ValueError("LossyNode needs an actor, a speculator, or both")
        self.name = name
        self.actor = None if actor is None else as_runnable(actor, "lossy_actor")
        self.speculator = None if speculator is None else as_runnable(speculator, "lossy_speculator")
        self.policy = policy or SpeculationPolicy()
        self.report = SpeculationReport()
        self._task: asyncio.Task[Any] | None = None
        self._future: concurrent.futures.Future[Any] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._t0 = time.monotonic()

    # ---- events ------------------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> None:
        event = {"event": kind, "node": self.name, "t": round(time.monotonic() - self._t0, 4), **data}
        self.report.add_event(event)
        writer = stream_writer()
        if writer is not None:
            try:
                writer(dict(event))
            except Exception:  # pragma: no cover - no custom stream in this run
                pass

    def _check(self, source: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self._event("lossy_junk", source=source, got=type(value).__name__)
        return None

    def _merge(self, spec: dict[str, Any] | None, actor: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if spec:
            out.update(spec)
            self._event("lossy_applied", source="speculator", update=spec)
        if actor:
            out.update(actor)  # last write wins: the actor's decision overwrites the speculator's
            self._event("lossy_applied", source="actor", update=actor)
        return out

    def _child(self, config: RunnableConfig | None, source: str) -> RunnableConfig:
        cfg: RunnableConfig = dict(config or {})  # type: ignore[assignment]
        cfg["metadata"] = {**(cfg.get("metadata") or {}), "lossy": True, "lossy_source": source}
        cfg["run_name"] = f"lossy_{source}"
        return cfg

    # ---- async twin --------------------------------------------------------------------------

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One window: apply the speculator's update now; the actor's when it has one."""
        actor_update = None
        if self._task is not None and self._task.done():
            actor_update = self._collect_task(self._task)
            self._task = None
        spec_update = None
        if self.speculator is not None:
            try:
                raw = await asyncio.wait_for(
                    self.speculator.ainvoke(input, self._child(config, "speculator")),
                    self.policy.speculator_timeout,
                )
                spec_update = self._check("speculator", raw)
            except asyncio.TimeoutError:
                self._event("lossy_speculator_timeout")
            except Exception as exc:
                self._event("lossy_speculator_error", error=repr(exc))
        if self.actor is not None and self._task is None:
            self._task = asyncio.ensure_future(self.actor.ainvoke(input, self._child(config, "actor")))
            self._event("lossy_actor_started")
        return self._merge(spec_update, actor_update)

    def _collect_task(self, task: asyncio.Task[Any]) -> dict[str, Any] | None:
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is not None:
            self._event("lossy_actor_error", error=repr(exc))
            return None
        return self._check("actor", task.result())

    async def aclose(self) -> None:
        """Cancel the actor call still in flight (and wait for it to end)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._event("lossy_actor_cancelled")
            await asyncio.gather(task, return_exceptions=True)
        self.close()

    async def __aenter__(self) -> LossyNode:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ---- sync twin ---------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        """Sync twin of `ainvoke`: the actor runs in a worker thread across windows."""
        actor_update = None
        if self._future is not None and self._future.done():
            fut, self._future = self._future, None
            if fut.exception() is not None:
                self._event("lossy_actor_error", error=repr(fut.exception()))
            else:
                actor_update = self._check("actor", fut.result())
        spec_update = None
        if self.speculator is not None:
            try:
                spec_update = self._check(
                    "speculator", self.speculator.invoke(input, self._child(config, "speculator"))
                )
            except Exception as exc:
                self._event("lossy_speculator_error", error=repr(exc))
        if self.actor is not None and self._future is None:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="langgraph-speculative-lossy"
                )
            self._future = self._pool.submit(self.actor.invoke, input, self._child(config, "actor"))
            self._event("lossy_actor_started")
        return self._merge(spec_update, actor_update)

    def close(self) -> None:
        """Drop the sync actor call in flight (a thread cannot be killed: it is left to finish) and
        release the worker thread."""
        fut, self._future = self._future, None
        if fut is not None and not fut.done():
            fut.cancel()
            self._event("lossy_actor_cancelled")
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LossyNode:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
