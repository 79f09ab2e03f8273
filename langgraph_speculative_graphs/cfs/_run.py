"""`langgraph-speculative cfs`: actor-only, speculator-only and actor+speculator on one workload."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .._common import SpecError, check_chat_spec, run_async
from ._backends import BACKENDS, SimBackend, make_backend
from ._graph import make_graph

__all__ = ("add_parser", "compare", "run", "terminate_as_interrupt")

CONFIGS = {"actor_only": ("careful", "none"), "speculator_only": ("none", "local"), "actor_speculator": None}
ACTORS, SPECULATORS = ("careful", "none"), ("local", "none")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cfs",
        help="lossy speculation: live scheduler-slice tuning (actor vs speculator)",
        description="Tunes the time slice of a real `sysbench cpu` workload three times: actor only, "
        "speculator only, actor+speculator (lossy: the speculator writes every window, the slow actor's "
        "write overwrites it when it lands). Prints the mean p95 latency of each and their ratio.",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="slice",
        help="slice (default: per-thread slices, kernel >= 6.12, no root), debugfs (root), "
        "sim (a simulated plant, no kernel)",
    )
    p.add_argument("--duration", type=float, default=40.0, help="seconds per configuration (default 40)")
    p.add_argument(
        "--perturb",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start each run from a bad setting, the range's top (30 ms: p95 about 100 ms; the default). "
        "--no-perturb starts at 3 ms, already near the optimum: nothing to tune, the ratio stays near 1",
    )
    p.add_argument("--window", type=float, default=1.0, help="control window in seconds (default 1)")
    p.add_argument(
        "--deliberation", type=float, default=10.0, help="the offline actor's thinking time (s, default 10)"
    )
    p.add_argument(
        "--actor", default="careful", help="careful (offline, default), none, or a chat model spec"
    )
    p.add_argument(
        "--speculator", default="local", help="local (offline, default), none, or a chat model spec"
    )
    p.add_argument("--speed", type=float, default=1.0, help="sim only: run windows this many times faster")
    p.add_argument(
        "--event-ms",
        type=float,
        default=None,
        help="sim only: the workload's event time (default 3.7 ms, fitted to this repository's machine; "
        "scripts/cfs_sim_check.py fits yours)",
    )
    p.add_argument("--plot", metavar="FILE", default=None, help="write a PNG of p95 and slice over time")
    p.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
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


def check_args(args: argparse.Namespace) -> None:
    """Every choice before anything starts; `SpecError` (one line) if one cannot work here."""
    for flag, value in (("--duration", args.duration), ("--window", args.window), ("--speed", args.speed)):
        if value <= 0:
            raise SpecError(f"{flag} must be positive, got {value}")
    for flag, spec, offline in (
        ("--actor", args.actor, ACTORS),
        ("--speculator", args.speculator, SPECULATORS),
    ):
        if spec not in offline:
            check_chat_spec(spec, flag, offline)
    if args.backend != "sim":
        try:
            make_backend(args.backend)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    elif args.event_ms is not None and args.event_ms <= 0:
        raise SpecError(f"--event-ms must be positive, got {args.event_ms}")


def _knob(args: argparse.Namespace) -> Any:
    if args.backend == "sim":
        kwargs = {} if args.event_ms is None else {"event_ms": args.event_ms}
        return SimBackend(speed=args.speed, **kwargs)
    return make_backend(args.backend)


async def _one(args: argparse.Namespace, name: str, log: Any) -> dict[str, Any]:
    actor, speculator = CONFIGS[name] or (args.actor, args.speculator)
    knob = _knob(args)
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


def compare(args: argparse.Namespace, log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the three configurations; the summary (the JSON the command prints) and the raw histories."""
    results: dict[str, Any] = {}
    for name in CONFIGS:
        log(f"{name}:")
        results[name] = run_async(_one(args, name, log))  # one loop for all: a chat model's client
    start = "the range's top (30 ms)" if args.perturb else "3 ms (near the optimum)"
    out: dict[str, Any] = {
        "backend": args.backend,
        "duration_s": args.duration,
        "window_s": args.window,
        "start": start,
    }
    if args.backend == "sim":
        knob = _knob(args)
        out["sim_event_ms"] = knob.event_ms
        out["sim_speed"] = knob.speed
    for name, res in results.items():
        out[name] = {
            **summarize(res["history"], args.window),
            "applied": sum(e["event"] == "lossy_applied" for e in res["events"]),
            "ignored": sum(e["event"] in ("lossy_junk", "lossy_speculator_error") for e in res["events"]),
        }
    a, s = out["actor_only"]["mean_p95_ms"], out["actor_speculator"]["mean_p95_ms"]
    out["ratio_spec_vs_actor"] = round(s / a, 4) if a and s else None
    return out, results


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C (the knob is restored, the workload stopped) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    """The `cfs` command."""
    check_args(args)  # before anything starts
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    try:
        with terminate_as_interrupt():
            out, results = compare(args, log)
    except KeyboardInterrupt:
        print("interrupted: the knob was restored", file=sys.stderr)
        return 130
    if args.plot:
        ratio = out["ratio_spec_vs_actor"]
        how = {"perturbed": args.perturb, "ratio": ratio, "deliberation_s": args.deliberation}
        plot(results, args.plot, args.backend, **how)
        out["plot"] = args.plot
    if args.json:
        print(json.dumps(out))
    else:
        for name in CONFIGS:
            print(f"{name:<17} {json.dumps(out[name])}")
        print(f"ratio (actor+speculator / actor-only mean p95): {out['ratio_spec_vs_actor']}")
        if not args.perturb:
            print(
                "(started near the optimum: nothing to tune; drop --no-perturb to start from a bad setting)"
            )
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def plot(
    results: dict[str, Any],
    path: str,
    backend: str,
    *,
    perturbed: bool,
    ratio: float | None,
    deliberation_s: float = 10.0,
) -> None:
    """p95 and the applied slice over time, one line per configuration; dots mark the actor's writes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True)
    colors = {"actor_only": "#1565c0", "speculator_only": "#e65100", "actor_speculator": "#2e7d32"}
    styles = {"actor_only": "-", "speculator_only": (0, (4, 3)), "actor_speculator": "-"}
    # Where speculator-only and actor+speculator agree their lines coincide: the speculator's is
    # drawn last, dashed and thinner, over a wider translucent actor+speculator line, so both show.
    widths = {"actor_only": 1.4, "speculator_only": 1.5, "actor_speculator": 3.2}
    alphas = {"actor_only": 1.0, "speculator_only": 1.0, "actor_speculator": 0.55}
    labels = {
        "actor_only": f"actor only (slow: {deliberation_s:g} s per decision)",
        "speculator_only": "speculator only (fast: a greedy step each window; dashed, on top)",
        "actor_speculator": "actor + speculator (lossy: last write wins)",
    }
    order = ["actor_only", "actor_speculator", "speculator_only"]
    for name, res in sorted(results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9):
        h = res["history"]
        t = [r["t"] for r in h]
        style = {
            "color": colors[name],
            "linestyle": styles[name],
            "linewidth": widths[name],
            "alpha": alphas[name],
            "zorder": 2 + order.index(name) if name in order else 2,
        }
        top.plot(t, [r["p95"] for r in h], label=labels[name], **style)
        bottom.step(t, [r["setting"] for r in h], where="post", **style)
        acted = [
            r
            for i, r in enumerate(h)
            if r["by"] == "actor"
            and (i == 0 or (h[i - 1]["by"], h[i - 1]["setting"]) != ("actor", r["setting"]))
        ]
        bottom.scatter(
            [r["t"] for r in acted], [r["setting"] for r in acted], color=colors[name], s=14, zorder=3
        )
    top.set_title(title(backend, perturbed, ratio), fontsize=10)
    top.set_ylabel("p95 latency per window (ms)")
    top.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=3, fontsize=8, frameon=False)
    top.grid(alpha=0.3)
    low = min(r["setting"] for res in results.values() for r in res["history"])
    high = max(r["setting"] for res in results.values() for r in res["history"])
    slice_axis(bottom, low, high)
    bottom.set_xlabel("time (s); dots: the actor's writes (each overwrites the speculator's)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.subplots_adjust(hspace=0.28)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def title(backend: str, perturbed: bool, ratio: float | None) -> str:
    """The plot's title: where the runs started, which plant, the ratio."""
    what = "a real sysbench workload" if backend != "sim" else "a SIMULATED plant"
    start = "from a bad setting (30 ms)" if perturbed else "from 3 ms (near the optimum)"
    ratio_text = f"; mean p95 actor+speculator / actor only = {ratio:.2f}" if ratio else ""
    return f"Scheduler slice tuning {start}, {backend} backend ({what}){ratio_text}"


def slice_axis(ax: Any, low: float, high: float) -> None:
    """A log axis for slices in ms with plain tick labels (0.3, 1, 3, 10, 30: no 3x10^0)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_ylabel("time slice (ms, log)")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([0.1, 0.3, 1, 3, 10, 30, 100]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(low / 1.5, high * 1.5)
