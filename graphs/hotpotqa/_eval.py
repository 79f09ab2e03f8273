"""`langgraph-speculative eval hotpotqa`: next-action accuracy on recorded ReAct runs.

Before each step the speculator sees the question and the steps before it
(thoughts, actions, observations) and guesses the next action. Strict
matching: same tool, same argument after whitespace trimming.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._common import load_records
from ._speculator import ActionSpeculator

__all__ = ("add_parser", "evaluate")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("hotpotqa", help="next-action accuracy of the ReAct speculator on recorded runs")
    p.add_argument(
        "--trajectories",
        required=True,
        help="recorded runs, e.g. graphs/hotpotqa/data/react_trajectories_dev.json",
    )
    p.add_argument("--k", type=int, default=3, help="guesses per step (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def load_runs(path: str) -> list[dict[str, Any]]:
    """Recorded runs in the format of `react_trajectories_dev.json`."""
    example = "graphs/hotpotqa/data/react_trajectories_dev.json"
    return load_records(path, "trajectory", example, ["question", "steps"])


def evaluate(runs: list[dict[str, Any]], speculator: ActionSpeculator, k: int) -> dict[str, Any]:
    """Score `speculator`'s top-k guesses of every recorded step."""
    steps = top1 = topk = 0
    per_tool: dict[str, dict[str, int]] = {}
    for run in runs:
        for i, step in enumerate(run["steps"]):
            want = (str(step["tool"]).strip(), str(step["arg"]).strip())
            guesses = [(t, a.strip()) for t, a in speculator.guess(run["question"], run["steps"][:i], k)]
            hit1, hitk = bool(guesses) and guesses[0] == want, want in guesses[:k]
            steps, top1, topk = steps + 1, top1 + hit1, topk + hitk
            tool = per_tool.setdefault(want[0], {"steps": 0, "top1": 0, "topk": 0})
            tool["steps"], tool["top1"], tool["topk"] = (
                tool["steps"] + 1,
                tool["top1"] + hit1,
                tool["topk"] + hitk,
            )
    return {
        "runs": len(runs),
        "steps": steps,
        "k": k,
        "top1_acc": round(top1 / steps, 4) if steps else None,
        "topk_acc": round(topk / steps, 4) if steps else None,
        "per_tool": {
            name: {
                **v,
                "top1_acc": round(v["top1"] / v["steps"], 4),
                "topk_acc": round(v["topk"] / v["steps"], 4),
            }
            for name, v in sorted(per_tool.items())
        },
        "speculator": "offline (question, thoughts, observations, local BM25 index)",
    }


def run(args: argparse.Namespace) -> int:
    """The `eval hotpotqa` command."""
    if args.k < 1:
        print(f"--k must be at least 1, got {args.k}", file=sys.stderr)
        return 2
    try:
        runs = load_runs(args.trajectories)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = evaluate(runs, ActionSpeculator(), args.k)
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{out['runs']} runs, {out['steps']} steps: "
            f"top-1 {out['top1_acc']}, top-{args.k} {out['topk_acc']}"
        )
        for name, v in out["per_tool"].items():
            print(
                f"  {name:<8} {v['steps']:>4} steps  "
                f"top-1 {v['top1_acc']:.2f}  top-{args.k} {v['topk_acc']:.2f}"
            )
    return 0
