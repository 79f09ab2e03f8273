"""Does the simulated CFS plant agree with the real one? Ratios at 30, 60 and 120 s.

Fits the sim's event time to this machine's real plant (the p95 of the
`sysbench cpu` workload at a 1 ms slice, over the workload's 4 threads), then
runs `cfs --perturb` on the real `slice` backend and on the sim (10x faster)
at each duration and prints both ratios (actor+speculator / actor-only mean
p95) and their difference. Exit status 1 if any differs by more than
`--tolerance` (0.05). Real runs are timing-sensitive: run it on a quiet
machine (it takes about 3 x the durations, 11 minutes by default).

    python scripts/cfs_sim_check.py
    python scripts/cfs_sim_check.py --durations 30 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from langgraph_speculative_graphs.cfs._backends import SliceBackend, fit_event_ms  # noqa: E402
from langgraph_speculative_graphs.cfs._run import compare, terminate_as_interrupt  # noqa: E402


async def _fit() -> float | None:
    with SliceBackend() as knob:
        return await fit_event_ms(knob)


def _args(backend: str, duration: float, event_ms: float | None, speed: float) -> argparse.Namespace:
    return argparse.Namespace(
        backend=backend,
        duration=duration,
        perturb=True,
        window=1.0,
        deliberation=10.0,
        actor="careful",
        speculator="local",
        speed=speed,
        event_ms=event_ms,
        plot=None,
        json=True,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--durations", type=float, nargs="+", default=[30.0, 60.0, 120.0])
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--event-ms", type=float, default=None, help="skip the fit and simulate this event time")
    p.add_argument("--sim-speed", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    why = SliceBackend.unusable()
    if why:
        print(f"error: the real plant is unusable here: {why}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with terminate_as_interrupt():  # Ctrl-C or SIGTERM: the knob is restored, the workload stopped
            return _check(args, log)
    except KeyboardInterrupt:
        print("interrupted: the knob was restored", file=sys.stderr)
        return 130


def _check(args: argparse.Namespace, log: Any) -> int:
    event_ms = args.event_ms or asyncio.run(_fit())
    log(f"sim event time: {event_ms} ms ({'given' if args.event_ms else 'fitted to this machine'})")
    rows: list[dict[str, Any]] = []
    for duration in args.durations:
        real, _ = compare(_args("slice", duration, None, 1.0), log)
        sim, _ = compare(_args("sim", duration, event_ms, args.sim_speed), log)
        row = {
            "duration_s": duration,
            "real_ratio": real["ratio_spec_vs_actor"],
            "sim_ratio": sim["ratio_spec_vs_actor"],
            "real_mean_p95_ms": {k: real[k]["mean_p95_ms"] for k in ("actor_only", "actor_speculator")},
            "sim_mean_p95_ms": {k: sim[k]["mean_p95_ms"] for k in ("actor_only", "actor_speculator")},
        }
        row["diff"] = round(row["sim_ratio"] - row["real_ratio"], 4)
        row["within_tolerance"] = abs(row["diff"]) <= args.tolerance
        rows.append(row)
        log(f"{duration:g} s: real {row['real_ratio']}, sim {row['sim_ratio']}, diff {row['diff']:+.3f}")
    ok = all(r["within_tolerance"] for r in rows)
    if args.json:
        out = {"sim_event_ms": event_ms, "tolerance": args.tolerance, "all_within": ok, "rows": rows}
        print(json.dumps(out))
    else:
        print(f"sim event time {event_ms} ms; tolerance {args.tolerance}")
        print(f"{'duration':>8}  {'real':>6}  {'sim':>6}  {'diff':>7}")
        for r in rows:
            real, sim = r["real_ratio"], r["sim_ratio"]
            print(f"{r['duration_s']:>7g}s  {real:>6.3f}  {sim:>6.3f}  {r['diff']:>+7.3f}")
        print("all within tolerance" if ok else "NOT all within tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
