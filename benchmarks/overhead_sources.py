"""Where the all-miss overhead comes from: forks and bookkeeping, or the wasted early calls.

A 100-step loop of a 20 ms node, plain vs speculative with three wrong guesses (k=3), twice: once
as a self-loop (each wrong branch launches the next actor call early, as Algorithm 1 does) and once
with an `unsafe` gate node after the step (the same forks, but branches stop before any early call).
Reports the wall-clock ratio and how late the main actor's 20 ms sleep returns (node timestamps).

    python benchmarks/overhead_sources.py --quick
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from typing import Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, parser  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from langgraph_speculative import SpeculationPolicy, speculate  # noqa: E402

STEPS, SLEEP = 100, 0.02


class S(TypedDict):
    n: int


marks: list[tuple[float, float, str]] = []


def node(state: S) -> dict[str, int]:
    t = time.perf_counter()
    time.sleep(SLEEP)
    marks.append((t, time.perf_counter(), threading.current_thread().name))
    return {"n": state["n"] + 1}


def gate(state: S) -> dict[str, Any]:
    return {}


def build(with_gate: bool) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    b.add_node("step", node)
    b.add_edge(START, "step")
    if with_gate:
        b.add_node("gate", gate)
        b.add_conditional_edges("step", lambda s: "gate" if s["n"] < STEPS else END, ["gate", END])
        b.add_edge("gate", "step")
    else:
        b.add_conditional_edges("step", lambda s: "step" if s["n"] < STEPS else END, ["step", END])
    return b


def wrong(state: S) -> list[dict[str, int]]:
    return [{"n": -1}, {"n": -2}, {"n": -3}]


def measure(graph: Any, reps: int) -> tuple[float, float]:
    """Median wall-clock and median main-run node time (s)."""
    totals, nodes = [], []
    for _ in range(reps):
        marks.clear()
        t0 = time.perf_counter()
        graph.invoke(
            {"n": 0}, {"configurable": {"thread_id": f"t{time.perf_counter_ns()}"}, "recursion_limit": 400}
        )
        totals.append(time.perf_counter() - t0)
        main = [(t, e) for t, e, name in marks if not name.startswith("langgraph-speculative")]
        nodes.append(statistics.fmean(e - t for t, e in main))
    return statistics.median(totals), statistics.median(nodes)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    reps = 2 if args.quick else 5
    rows = []
    for variant, with_gate, unsafe in (("self_loop", False, ()), ("unsafe_gate", True, ("gate",))):
        b = build(with_gate)
        plain = measure(b.compile(checkpointer=InMemorySaver()), reps)
        spec = speculate(b, {"step": wrong}, policy=SpeculationPolicy(k=3), unsafe=unsafe)
        specd = measure(spec.compile(checkpointer=InMemorySaver()), reps)
        rows.append(
            {
                "variant": variant,
                "plain_s": round(plain[0], 4),
                "speculative_s": round(specd[0], 4),
                "ratio": round(specd[0] / plain[0], 4),
                "sleep_late_plain_ms": round(1000 * (plain[1] - SLEEP), 3),
                "sleep_late_spec_ms": round(1000 * (specd[1] - SLEEP), 3),
            }
        )
    emit(
        rows,
        ["variant", "plain_s", "speculative_s", "ratio", "sleep_late_plain_ms", "sleep_late_spec_ms"],
        args.json,
        {"steps": STEPS, "node_ms": 1000 * SLEEP, "repeats": reps},
    )


if __name__ == "__main__":
    main()
