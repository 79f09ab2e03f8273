"""The live tuning loop: apply the setting, measure a window, tune (lossy: last write wins)."""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_speculative.lossy import LossyNode

from ._backends import SimBackend, make_backend
from ._tuners import resolve

__all__ = ("TuneState", "make_graph")


class TuneState(TypedDict):
    """The applied setting (ms), who set it, and one history row per window."""

    setting: float
    by: str
    history: Annotated[list[dict[str, Any]], operator.add]
    windows: int


def make_graph(
    actor: Any = "careful",
    speculator: Any = "local",
    backend: Any = "sim",
    *,
    window_s: float = 1.0,
    deliberation_s: float = 10.0,
) -> StateGraph:  # type: ignore[type-arg]
    """A loop graph: apply -> measure -> tune -> apply ...

    `actor` / `speculator`: "careful" / "local" (offline), "none", a chat model
    string (`openai:gpt-5`), or a function state -> {"setting": ms}. `backend`:
    "slice", "debugfs", "sim" or a backend object; it is `builder.backend`, and
    the `LossyNode` is `builder.tuner` (close it when done:
    `async with builder.tuner: ...`). Start the backend (`with builder.backend:`)
    around the run so that its knob is restored on every exit.
    """
    knob = make_backend(backend) if isinstance(backend, str) else backend
    low, high = knob.low, knob.high
    speed = knob.speed if isinstance(knob, SimBackend) else 1.0
    tuner = LossyNode(
        resolve(actor, low, high, "actor", deliberation_s / speed),
        speculator=resolve(speculator, low, high, "speculator", deliberation_s / speed),
        name="tune",
    )
    t0: list[float] = []

    def apply(state: TuneState) -> dict[str, Any]:
        knob.apply(state["setting"])
        return {}

    async def measure(state: TuneState) -> dict[str, Any]:
        if not t0:
            t0.append(time.monotonic())
        p95 = await knob.measure(window_s)
        row = {
            "t": round(len(state["history"]) * window_s + window_s, 3),
            "wall_s": round(time.monotonic() - t0[0], 3),
            "setting": state["setting"],
            "by": state["by"],
            "p95": p95,
        }
        return {"history": [row]}

    def more(state: TuneState) -> str:
        return "tune" if len(state["history"]) < state["windows"] else END

    builder = StateGraph(TuneState)
    builder.add_node("apply", apply)
    builder.add_node("measure", measure)
    builder.add_node("tune", tuner)
    builder.add_edge(START, "apply")
    builder.add_edge("apply", "measure")
    builder.add_conditional_edges("measure", more, ["tune", END])
    builder.add_edge("tune", "apply")
    builder.backend = knob  # type: ignore[attr-defined]
    builder.tuner = tuner  # type: ignore[attr-defined]
    return builder
