"""Wall-clock saving of the ReAct graph: Searches started on guessed actions while the agent thinks.

Each recorded ReAct run (react_trajectories_dev.json) is replayed: the agent
replays the run's thoughts and actions with a model latency per step, and the
wiki answers with the observations the run recorded from live Wikipedia
(`RecordedWiki`), each Search taking `--search-latency` seconds. With
`--backend local` the local wiki answers instead: the speculator's mirror is
then current, so every guessed observation is right (the replayed agent's
actions do not depend on what it reads). Every run goes sequentially and
speculatively in the same process; both must end with the same state and the
same checkpoint history.

The offline speculator's weights were fitted on these same runs (and its
candidate rules written while reading them), so these are in-sample figures;
`langgraph-speculative eval hotpotqa --cv 5` gives the nested, question-grouped cross-validated accuracy.

`--adaptive` also replays every run on one speculative graph with an adaptive policy
(`SpeculationPolicy(k=k, adaptive=True)`), shared by all the runs in order (its estimates carry
over from run to run, as a server's would), and reports its time and waste beside the static one.

    python benchmarks/hotpotqa_replay.py --quick
    python benchmarks/hotpotqa_replay.py --json --plot hotpotqa.png
    python benchmarks/hotpotqa_replay.py --json --adaptive
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, parser, totals  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from langgraph_speculative import AdaptivePolicy  # noqa: E402
from langgraph_speculative_graphs.hotpotqa._graph import ReplayReAct, initial_state, make_graph  # noqa: E402
from langgraph_speculative_graphs.hotpotqa._wiki import LocalWiki, RecordedWiki, WikipediaAPI  # noqa: E402

RUNS = os.path.join(
    os.path.dirname(__file__),
    "..",
    "langgraph_speculative_graphs",
    "hotpotqa",
    "data",
    "react_trajectories_dev.json",
)


class ReplayByQuestion(ReplayReAct):
    """`ReplayReAct` for many recorded runs at once: the scratchpad's question picks the run,
    so one graph (and one adaptive policy's estimates) serves all of them."""

    runs: dict[str, list[dict[str, Any]]]

    def _reply(self, messages: list[Any]) -> Any:
        question = str(messages[-1].content).rsplit("\nQuestion: ", 1)[-1].split("\n", 1)[0]
        return ReplayReAct(steps=self.runs[question])._reply(messages)


def adaptive_graph(runs: list[dict[str, Any]], wiki: Any, agent_s: float, search_s: float, k: int) -> Any:
    """One speculative graph with an adaptive policy for all `runs`."""
    model = ReplayByQuestion(steps=[], runs={r["question"]: r["steps"] for r in runs}, delay=agent_s)
    builder = make_graph(agent_model=model, backend=wiki, latency=search_s, k=k, adaptive=AdaptivePolicy())
    return builder.compile(checkpointer=InMemorySaver())


async def _run(
    run: dict[str, Any],
    wiki: Any,
    speculative: bool,
    agent_s: float,
    search_s: float,
    k: int,
    graph: Any = None,
    thread: str = "react",
) -> dict[str, Any]:
    if graph is None:
        builder = make_graph(
            agent_model=ReplayReAct(steps=run["steps"], delay=agent_s),
            backend=wiki,
            latency=search_s,
            speculative=speculative,
            k=k,
        )
        graph = builder.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "recursion_limit": 100}
    t0 = time.perf_counter()
    final = await graph.ainvoke(initial_state(run["question"]), config)
    elapsed = time.perf_counter() - t0
    history = [json.dumps(s.values, sort_keys=True) async for s in graph.aget_state_history(config)]
    report = getattr(graph, "last_report", None)
    return {"elapsed": elapsed, "final": final, "history": history, "report": report}


def _plot(path: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [2.6, 1]})
    xs = range(len(rows))
    seq = [r["sequential_s"] for r in rows]
    left.bar([x - 0.2 for x in xs], seq, 0.4, label="sequential (no speculation)")
    left.bar([x + 0.2 for x in xs], [r["speculative_s"] for r in rows], 0.4, label="speculative")
    left.set_xlabel("recorded ReAct run (react_trajectories_dev.json, index)")
    left.set_ylabel("wall-clock of the run (s)")
    left.set_title("each recorded run replayed twice, sequential and speculative", fontsize=9)
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)
    counts = {
        "Searches the agent made": extra["searches"],
        "  of them already started on a\n  branch from a guessed action\n  (adopted: answer ready sooner)": (
            extra["adopted_searches"]
        ),
        "extra Searches on wrong guesses\n(cancelled or never used)": extra["wasted_searches"],
    }
    labels = list(counts)[::-1]
    bars = right.barh(labels, [counts[c] for c in labels], color=["#d62728", "#2ca02c", "#888888"])
    right.bar_label(bars, fontsize=8, padding=2)
    right.set_title("Search calls over all runs (speculative replay)", fontsize=9)
    right.tick_params(axis="y", labelsize=8)
    right.set_xlim(0, max(counts.values()) * 1.2)
    right.grid(axis="x", alpha=0.3)
    wiki = {
        "recorded": "observations replayed from the runs",
        "local": "local wiki",
        "live": "live Wikipedia",
    }
    fig.suptitle(
        f"ReAct agent on HotpotQA, replayed: {extra['agent_latency_s']:g} s per agent step, "
        f"{extra['search_latency_s']:g} s per Search, k={extra['k']} guesses, "
        f"{wiki.get(extra['backend'], extra['backend'])}\n"
        f"{extra['saved_pct']}% of wall-clock saved; final states and checkpoint histories identical: "
        f"{'yes' if extra['all_identical'] else 'NO'}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--search-latency", type=float, default=None, help="seconds per Search (default 0.5)")
    p.add_argument("--agent-latency", type=float, default=None, help="seconds per agent step (default 1.0)")
    p.add_argument("--k", type=int, default=3, help="guessed actions per step")
    p.add_argument("--trajectories", default=RUNS, help="recorded runs (react_trajectories_dev.json format)")
    p.add_argument(
        "--backend",
        choices=["recorded", "local", "live"],
        default="recorded",
        help="recorded: the runs' live observations (default); local: the wiki the speculator mirrors; "
        "live: the MediaWiki API now (network; the replayed agent's actions stay the recorded ones)",
    )
    p.add_argument("--plot", metavar="FILE", help="PNG: wall-clock per run, and the Search calls")
    p.add_argument(
        "--adaptive", action="store_true", help="also replay on one graph with an adaptive policy (shared)"
    )
    args = p.parse_args()
    search = args.search_latency if args.search_latency is not None else (0.2 if args.quick else 0.5)
    agent = args.agent_latency if args.agent_latency is not None else (0.4 if args.quick else 1.0)
    with open(args.trajectories) as f:
        runs = json.load(f)[: 10 if args.quick else None]
    wiki: Any = (
        LocalWiki()
        if args.backend == "local"
        else WikipediaAPI()
        if args.backend == "live"
        else RecordedWiki(runs, LocalWiki())
    )
    rows = []
    shared = adaptive_graph(runs, wiki, agent, search, args.k) if args.adaptive else None
    for i, run in enumerate(runs):
        seq = asyncio.run(_run(run, wiki, False, agent, search, args.k))
        spec = asyncio.run(_run(run, wiki, True, agent, search, args.k))
        adaptive = None
        if shared is not None:
            adaptive = asyncio.run(_run(run, wiki, True, agent, search, args.k, shared, f"react-{i}"))
        report = spec["report"]
        agent_stats, tool_stats = report.node("agent"), report.node("tool")
        searches = sum(1 for s in spec["final"]["steps"] if s["tool"] == "Search")
        rows.append(
            {
                "run": i,
                "steps": len(spec["final"]["steps"]),
                "searches": searches,
                "sequential_s": round(seq["elapsed"], 3),
                "speculative_s": round(spec["elapsed"], 3),
                "saved_pct": round(100 * (1 - spec["elapsed"] / seq["elapsed"]), 1),
                "action_hits": agent_stats.hits,
                "adopted_searches": tool_stats.adopted,
                "wasted_searches": tool_stats.wasted,
                "adopted_agent_calls": agent_stats.adopted,
                "wasted_agent_calls": agent_stats.wasted,
                "identical": seq["final"] == spec["final"] and seq["history"] == spec["history"],
            }
        )
        if adaptive is not None:
            ad = adaptive["report"]
            rows[-1].update(
                {
                    "adaptive_s": round(adaptive["elapsed"], 3),
                    "adaptive_adopted_searches": ad.node("tool").adopted,
                    "adaptive_wasted_searches": ad.node("tool").wasted,
                    "adaptive_adopted_agent_calls": ad.node("agent").adopted,
                    "adaptive_wasted_agent_calls": ad.node("agent").wasted,
                    "adaptive_speculator_calls": ad.summary()["speculator_calls"],
                    "speculator_calls": report.summary()["speculator_calls"],
                }
            )
            rows[-1]["identical"] = rows[-1]["identical"] and (
                seq["final"] == adaptive["final"] and seq["history"] == adaptive["history"]
            )
        print(
            f"run {i + 1}/{len(runs)}: {rows[-1]['sequential_s']:.2f} s -> {rows[-1]['speculative_s']:.2f} s",
            file=sys.stderr,
        )
    extra = {
        "runs": len(rows),
        "agent_latency_s": agent,
        "search_latency_s": search,
        "k": args.k,
        "backend": args.backend,
        **totals(rows),
        "searches": sum(r["searches"] for r in rows),
        "adopted_searches": sum(r["adopted_searches"] for r in rows),
        "wasted_searches": sum(r["wasted_searches"] for r in rows),
        "agent_calls": sum(r["steps"] for r in rows),
        "adopted_agent_calls": sum(r["adopted_agent_calls"] for r in rows),
        "wasted_agent_calls": sum(r["wasted_agent_calls"] for r in rows),
        "all_identical": all(r["identical"] for r in rows),
    }
    if shared is not None:
        adaptive_s = sum(r["adaptive_s"] for r in rows)
        extra["adaptive"] = {
            "speculative_s": round(adaptive_s, 3),
            "saved_pct": round(100 * (1 - adaptive_s / extra["sequential_s"]), 1),
            **{
                key: sum(r[f"adaptive_{key}"] for r in rows)
                for key in (
                    "adopted_searches",
                    "wasted_searches",
                    "adopted_agent_calls",
                    "wasted_agent_calls",
                    "speculator_calls",
                )
            },
            "static_speculator_calls": sum(r["speculator_calls"] for r in rows),
            "estimates": shared.speculation.tuning.snapshot(),
        }
    if args.plot:
        _plot(args.plot, rows, extra)
    emit(
        rows,
        [
            "run",
            "steps",
            "searches",
            "sequential_s",
            "speculative_s",
            "saved_pct",
            "adopted_searches",
            "wasted_searches",
            "adopted_agent_calls",
            "wasted_agent_calls",
            "identical",
        ],
        args.json,
        extra,
    )


if __name__ == "__main__":
    main()
