"""Where the all-miss overhead comes from: forks and bookkeeping, or the wasted early calls.

A 100-step loop of a 20 ms node, plain vs speculative with three wrong guesses (k=3), twice: once
as a self-loop (each wrong branch launches the next actor call early, as Algorithm 1 does) and once
with an `unsafe` gate node after the step (the same forks, but branches stop before any early call).
Prints the wall-clock and the main actor's measured node time (its 20 ms sleep) per variant.

    python benchmarks/overhead_sources.py
"""

import statistics
import threading
import time
from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, speculate


class S(TypedDict):
    n: int


marks = []


def node(state):
    t = time.perf_counter()
    time.sleep(0.02)
    e = time.perf_counter()
    marks.append((t, e, threading.current_thread().name))
    return {"n": state["n"] + 1}


def gate(state):
    return {}


def build(with_gate):
    b = StateGraph(S)
    b.add_node("step", node)
    b.add_edge(START, "step")
    if with_gate:
        b.add_node("gate", gate)
        b.add_conditional_edges("step", lambda s: "gate" if s["n"] < 100 else END, ["gate", END])
        b.add_edge("gate", "step")
    else:
        b.add_conditional_edges("step", lambda s: "step" if s["n"] < 100 else END, ["step", END])
    return b


def wrong(s):
    return [{"n": -1}, {"n": -2}, {"n": -3}]


for label, wg, unsafe in [("loop", False, ()), ("gate-unsafe", True, ("gate",))]:
    b = build(wg)
    for name, g in [
        ("plain", b.compile(checkpointer=InMemorySaver())),
        (
            "spec",
            speculate(b, {"step": wrong}, policy=SpeculationPolicy(k=3), unsafe=unsafe).compile(
                checkpointer=InMemorySaver()
            ),
        ),
    ]:
        ts = []
        durs = []
        for _ in range(3):
            marks.clear()
            t0 = time.perf_counter()
            g.invoke({"n": 0}, {"configurable": {"thread_id": str(time.time())}, "recursion_limit": 400})
            ts.append(time.perf_counter() - t0)
            main = [m for m in marks if not m[2].startswith("langgraph-speculative")]
            durs.append(statistics.mean(e - t for t, e, _ in main))
        print(
            label, name, round(statistics.median(ts), 3), "node ms", round(1000 * statistics.median(durs), 3)
        )
