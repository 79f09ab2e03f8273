"""Overhead of speculation when it cannot help.

Plain LangGraph vs `speculate` with every guess wrong (k=3) and with
`enabled=False`: a 200-step chain, node latency 0 ms and 20 ms, InMemorySaver.
Reports per-step overhead in ms and the ratio to plain (medians of repeats).
`--async` runs async nodes (`asyncio.sleep`) through `ainvoke` instead.

    python benchmarks/overhead.py --quick [--async]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, median, parser  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from langgraph_speculative import SpeculationPolicy, speculate  # noqa: E402


class S(TypedDict):
    n: int


def build(steps: int, latency: float, use_async: bool = False) -> StateGraph:  # type: ignore[type-arg]
    def node(state: S) -> dict[str, int]:
        if latency:
            time.sleep(latency)
        return {"n": state["n"] + 1}

    async def anode(state: S) -> dict[str, int]:
        if latency:
            await asyncio.sleep(latency)
        return {"n": state["n"] + 1}

    b = StateGraph(S)
    b.add_node("step", anode if use_async else node)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else END, ["step", END])
    return b


def all_wrong(state: S) -> list[dict[str, int]]:
    return [{"n": -1}, {"n": -2}, {"n": -3}]


def run(graph: Any, steps: int, use_async: bool) -> float:
    cfg = {"configurable": {"thread_id": f"t{time.perf_counter_ns()}"}, "recursion_limit": steps + 10}

    async def timed() -> tuple[Any, float]:  # the event loop's start-up is not timed
        t0 = time.perf_counter()
        out = await graph.ainvoke({"n": 0}, cfg)
        return out, time.perf_counter() - t0

    if use_async:
        out, elapsed = asyncio.run(timed())
    else:
        t0 = time.perf_counter()
        out = graph.invoke({"n": 0}, cfg)
        elapsed = time.perf_counter() - t0
    assert out == {"n": steps}
    return elapsed


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--async", dest="use_async", action="store_true", help="async nodes through ainvoke")
    args = p.parse_args()
    steps, reps = (100, 3) if args.quick else (200, 5)
    rows = []
    for latency_ms in (0, 20):
        b = build(steps, latency_ms / 1000, args.use_async)
        graphs = {
            "plain": b.compile(checkpointer=InMemorySaver()),
            "all_miss_k3": speculate(b, {"step": all_wrong}, policy=SpeculationPolicy(k=3)).compile(
                checkpointer=InMemorySaver()
            ),
            "disabled": speculate(b, {"step": all_wrong}, policy=SpeculationPolicy(enabled=False)).compile(
                checkpointer=InMemorySaver()
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in graphs}
        for _ in range(reps):
            for name, g in graphs.items():  # interleaved, so drift hits all alike
                times[name].append(run(g, steps, args.use_async))
        base = median(times["plain"])
        for name in graphs:
            t = median(times[name])
            rows.append(
                {
                    "latency_ms": latency_ms,
                    "variant": name,
                    "total_s": round(t, 4),
                    "per_step_ms": round(1000 * t / steps, 3),
                    "overhead_ms_per_step": round(1000 * (t - base) / steps, 3),
                    "ratio": round(t / base, 4),
                }
            )
    ratio = {(r["latency_ms"], r["variant"]): r["ratio"] for r in rows}
    extra = {
        "steps": steps,
        "repeats": reps,
        "mode": "async" if args.use_async else "sync",
        "all_miss_20ms_ratio": ratio[(20, "all_miss_k3")],
        "disabled_20ms_ratio": ratio[(20, "disabled")],
        "disabled_0ms_ratio": ratio[(0, "disabled")],
    }
    emit(
        rows,
        ["latency_ms", "variant", "total_s", "per_step_ms", "overhead_ms_per_step", "ratio"],
        args.json,
        extra,
    )


if __name__ == "__main__":
    main()
