"""`langgraph-speculative cfs`: actor-only, speculator-only and actor+speculator on one workload."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from typing import Any

from ._backends import BACKENDS, SimBackend, make_backend
from ._graph import make_graph

__all__ = ("add_parser", "run")

CONFIGS = {"actor_only": ("careful", "none"), "speculator_only": ("none", "local"), "actor_speculator": None}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cfs", help="lossy speculation: live scheduler-slice tuning (actor vs speculator)")
    p.add_argument("--backend", choices=BACKENDS, default="slice", help="knob: slice (default), debugfs, sim")
    p.add_argument("--duration", type=float, default=40.0, help="seconds per configuration (default 40)")
    p.add_argument(
        "--perturb", action="store_true", help="start each run from a bad setting (the range's top)"
    )
    p.add_argument("--window", type=float, default=1.0, help="control window in seconds (default 1)")
    p.add_argument("--deliberation", type=float, default=10.0, help="the offline actor's thinking time (s)")
    p.add_argument("--actor", default="careful", help="careful (offline) or a chat model, e.g. openai:gpt-5")
    p.add_argument("--speculator", default="local", help="local (offline) or a chat model")
    p.add_argument("--speed", type=float, default=1.0, help="sim only: run windows this many times faster")
    p.add_argument("--plot", metavar="FILE", default="cfs.png", help="PNG of p95 and setting over time")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def summarize(history: list[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """Mean p95 over the run, final p95 (median of the last 3 windows), and when it converged."""
    p95 = [h["p95"] for h in history if h["p95"] is not None]
    if not p95:
        return {"mean_p95_ms": None, "final_p95_ms": None, "final_setting": None, "convergence_s": None}
    final = statistics.median(p95[-3:])
    settled = len(history)
    for i in range(len(history) - 1, -1, -1):
        if history[i]["p95"] is None or history[i]["p95"] > 1.15 * final:
            break
        settled = i
    return {
        "mean_p95_ms": round(statistics.fmean(p95), 3),
        "final_p95_ms": round(final, 3),
        "final_setting": round(history[-1]["setting"], 4),
        "convergence_s": round(settled * window_s, 2),
    }


async def _one(args: argparse.Namespace, name: str, log: Any) -> dict[str, Any]:
    actor, speculator = CONFIGS[name] or (args.actor, args.speculator)
    knob = SimBackend(speed=args.speed) if args.backend == "sim" else make_backend(args.backend)
    builder = make_graph(actor, speculator, knob, window_s=args.window, deliberation_s=args.deliberation)
    graph = builder.compile()
    windows = max(2, int(args.duration / args.window))
    start = knob.high if args.perturb else 3.0
    state: dict[str, Any] = {
        "setting": start,
        "by": "perturbed" if args.perturb else "start",
        "history": [],
        "windows": windows,
    }
    tuner = builder.tuner  # type: ignore[attr-defined]
    with knob:  # restores the knob on every exit, Ctrl-C included
        async with tuner:
            async for chunk in graph.astream(
                state, {"recursion_limit": 10 * windows + 10}, stream_mode="updates"
            ):
                row = (chunk.get("measure") or {}).get("history")
                if row:
                    r = row[0]
                    p = "-" if r["p95"] is None else f"{r['p95']:.2f}"
                    log(
                        f"  [{name}] t={r['t']:5.1f}s  slice {r['setting']:7.3f} ms "
                        f"({r['by']:<10})  p95 {p} ms"
                    )
                    state["history"].append(r)
    return {"history": state["history"], "events": tuner.report.events}


def run(args: argparse.Namespace) -> int:
    """The `cfs` command."""
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    if args.backend != "sim":
        try:
            make_backend(args.backend)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    results: dict[str, Any] = {}
    for name in CONFIGS:
        log(f"{name}:")
        try:
            results[name] = asyncio.run(_one(args, name, log))
        except KeyboardInterrupt:
            print("interrupted: the knob was restored", file=sys.stderr)
            return 130
    out: dict[str, Any] = {"backend": args.backend, "duration_s": args.duration, "window_s": args.window}
    for name, res in results.items():
        out[name] = {
            **summarize(res["history"], args.window),
            "applied": sum(e["event"] == "lossy_applied" for e in res["events"]),
            "ignored": sum(e["event"] in ("lossy_junk", "lossy_speculator_error") for e in res["events"]),
        }
    a, s = out["actor_only"]["mean_p95_ms"], out["actor_speculator"]["mean_p95_ms"]
    out["ratio_spec_vs_actor"] = round(s / a, 4) if a and s else None
    if args.plot:
        _plot(results, args.plot, args.backend)
        out["plot"] = args.plot
    if args.json:
        print(json.dumps(out))
    else:
        for name in CONFIGS:
            print(f"{name:<17} {json.dumps(out[name])}")
        print(f"ratio (actor+speculator / actor-only mean p95): {out['ratio_spec_vs_actor']}")
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _plot(results: dict[str, Any], path: str, backend: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    colors = {"actor_only": "#1565c0", "speculator_only": "#9e9e9e", "actor_speculator": "#2e7d32"}
    for name, res in results.items():
        h = res["history"]
        t = [r["t"] for r in h]
        top.plot(t, [r["p95"] for r in h], label=name.replace("_", " "), color=colors[name])
        bottom.step(t, [r["setting"] for r in h], where="post", color=colors[name])
        acted = [
            r
            for i, r in enumerate(h)
            if r["by"] == "actor"
            and (i == 0 or (h[i - 1]["by"], h[i - 1]["setting"]) != ("actor", r["setting"]))
        ]
        bottom.scatter([r["t"] for r in acted], [r["setting"] for r in acted], color=colors[name], s=12)
    top.set_ylabel("p95 latency (ms)")
    top.set_title(f"Scheduler slice tuning from a bad setting ({backend} backend); dots: the actor's writes")
    top.legend()
    bottom.set_ylabel("slice (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
