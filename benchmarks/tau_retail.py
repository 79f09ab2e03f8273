"""Wall-clock saving of the retail graph: tool latency hidden behind the agent's thinking.

For tau-bench tasks whose actions list every call (tasks_test_sample.json),
the offline replay agent makes the ground-truth calls with a model latency per
turn; tools take `--tool-latency` seconds. Each task runs sequentially and
speculatively in the same process; both must end with the same database and
messages.

    python benchmarks/tau_retail.py --quick
    python benchmarks/tau_retail.py --json
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import bar_plot, emit, parser, totals  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from langgraph_speculative_graphs.tau_retail._db import RetailDB, load_tasks, task_reward  # noqa: E402
from langgraph_speculative_graphs.tau_retail._graph import make_graph  # noqa: E402

TASKS = os.path.join(
    os.path.dirname(__file__),
    "..",
    "langgraph_speculative_graphs",
    "tau_retail",
    "data",
    "tasks_test_sample.json",
)


async def _run(
    task: dict[str, Any], speculative: bool, tool_latency: float, agent_s: float
) -> dict[str, Any]:
    db = RetailDB()
    builder = make_graph(
        task=task, db=db, tool_latency=tool_latency, replay_delay=agent_s, speculative=speculative, k=3
    )
    graph = builder.compile(checkpointer=InMemorySaver())
    t0 = time.perf_counter()
    final = await graph.ainvoke(
        {"messages": [], "db_version": 0}, {"configurable": {"thread_id": "t"}, "recursion_limit": 200}
    )
    elapsed = time.perf_counter() - t0
    msgs = [(type(m).__name__, m.content, getattr(m, "tool_calls", None)) for m in final["messages"]]
    return {
        "elapsed": elapsed,
        "hash": db.hash(),
        "reward": task_reward(task, db),
        "messages": msgs,
        "report": getattr(graph, "last_report", None),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tool-latency", type=float, default=None, help="seconds per tool call (default 0.5)")
    p.add_argument("--agent-latency", type=float, default=None, help="seconds per agent turn (default 1.0)")
    p.add_argument("--plot", metavar="FILE", help="PNG: wall-clock per task, sequential and speculative")
    args = p.parse_args()
    tool = args.tool_latency if args.tool_latency is not None else (0.2 if args.quick else 0.5)
    agent = args.agent_latency if args.agent_latency is not None else (0.4 if args.quick else 1.0)
    tasks = load_tasks(TASKS)[: 5 if args.quick else None]
    rows = []
    for i, task in enumerate(tasks):
        seq = asyncio.run(_run(task, False, tool, agent))
        spec = asyncio.run(_run(task, True, tool, agent))
        report = spec["report"]
        rows.append(
            {
                "task": i,
                "calls": len(task["actions"]),
                "sequential_s": round(seq["elapsed"], 3),
                "speculative_s": round(spec["elapsed"], 3),
                "saved_pct": round(100 * (1 - spec["elapsed"] / seq["elapsed"]), 1),
                "adopted_reads": report.node("read_tools").adopted if report else 0,
                "wasted": report.wasted if report else 0,
                "reward": spec["reward"],
                "identical": spec["hash"] == seq["hash"] and spec["messages"] == seq["messages"],
            }
        )
    extra = {
        "tasks": len(rows),
        "tool_latency_s": tool,
        "agent_latency_s": agent,
        **totals(rows),
        "all_identical": all(r["identical"] for r in rows),
        "mean_reward": round(sum(r["reward"] for r in rows) / len(rows), 4),
    }
    if args.plot:
        bar_plot(
            args.plot,
            f"tau-bench retail, replay agent ({agent:g} s/turn, {tool:g} s/tool): "
            f"{extra['saved_pct']}% saved",
            [str(r["task"]) for r in rows],
            {
                "sequential": [r["sequential_s"] for r in rows],
                "speculative": [r["speculative_s"] for r in rows],
            },
            "wall-clock (s)",
        )
    emit(
        rows,
        [
            "task",
            "calls",
            "sequential_s",
            "speculative_s",
            "saved_pct",
            "adopted_reads",
            "wasted",
            "reward",
            "identical",
        ],
        args.json,
        extra,
    )


if __name__ == "__main__":
    main()
