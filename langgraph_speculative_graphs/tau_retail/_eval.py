"""`langgraph-speculative eval tau-retail`: how well the speculator guesses the next call.

For every task of a tau-bench task file, its ground-truth actions are replayed
against a fresh database; before each action the speculator sees only the
earlier calls and their real outputs, and guesses the next call (exact match
of tool name and arguments).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._common import SpecError
from ._db import READ_TOOLS, TASK_FILES, RetailDB, load_tasks
from ._speculator import CallSpeculator

__all__ = ("add_parser", "check_args", "evaluate")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tau-retail", help="next-call accuracy of the retail speculator on tau-bench tasks")
    p.add_argument(
        "--tasks",
        default="test",
        help="a tau-bench task file, or a packaged one by name from any directory: "
        f"{', '.join(f'{k} ({v})' for k, v in TASK_FILES.items())}; default: test",
    )
    p.add_argument("--k", type=int, default=3, help="guesses per call (default 3)")
    p.add_argument("--tool-latency", type=float, default=0.5, help="seconds per tool call (default 0.5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, check=check_args)


def evaluate(
    tasks: list[dict[str, Any]], speculator: CallSpeculator, k: int, tool_latency: float
) -> dict[str, Any]:
    """Replay `tasks` and score `speculator`'s guesses."""
    calls = reads = top1 = topk = read1 = readk = 0
    per_tool: dict[str, dict[str, int]] = {}
    rewards = 0
    for task in tasks:
        db, truth = RetailDB(), RetailDB()
        history: list[dict[str, Any]] = []
        for action in task["actions"]:
            want = {"name": action["name"], "kwargs": action.get("kwargs", {})}
            guesses = speculator.guess(history, k)
            hit1, hitk = bool(guesses) and guesses[0] == want, want in guesses[:k]
            calls, top1, topk = calls + 1, top1 + hit1, topk + hitk
            tool = per_tool.setdefault(want["name"], {"calls": 0, "top1": 0, "topk": 0})
            tool["calls"], tool["top1"], tool["topk"] = (
                tool["calls"] + 1,
                tool["top1"] + hit1,
                tool["topk"] + hitk,
            )
            if want["name"] in READ_TOOLS:
                reads, read1, readk = reads + 1, read1 + hit1, readk + hitk
            history.append({**want, "output": db.call(want["name"], want["kwargs"])})
            truth.call(want["name"], want["kwargs"])
        rewards += db.hash() == truth.hash()  # the replay's end state is the ground truth's
    return {
        "tasks": len(tasks),
        "calls": calls,
        "read_calls": reads,
        "k": k,
        "top1_acc": round(top1 / calls, 4) if calls else None,
        "topk_acc": round(topk / calls, 4) if calls else None,
        "read_top1_acc": round(read1 / reads, 4) if reads else None,
        "read_topk_acc": round(readk / reads, 4) if reads else None,
        "tool_latency_s": tool_latency,
        "hidden_latency_s": round(readk * tool_latency, 3),
        "reward": round(rewards / len(tasks), 4) if tasks else None,
        "per_tool": {
            name: {**v, "topk_acc": round(v["topk"] / v["calls"], 4)} for name, v in sorted(per_tool.items())
        },
        "speculator": "offline (learned from tau-bench's train tasks and recorded conversations)",
    }


def check_args(args: argparse.Namespace) -> None:
    """The numbers, before anything runs; `SpecError` (one line) if one cannot work."""
    if args.k < 1:
        raise SpecError(f"--k must be at least 1, got {args.k}")
    if not args.tool_latency >= 0:  # NaN too
        raise SpecError(f"--tool-latency must be 0 or more seconds, got {args.tool_latency}")


def run(args: argparse.Namespace) -> int:
    """The `eval tau-retail` command."""
    check_args(args)
    try:
        tasks = load_tasks(args.tasks)
    except (FileNotFoundError, ValueError) as exc:
        raise SpecError(str(exc)) from None
    out = evaluate(tasks, CallSpeculator.fit(), args.k, args.tool_latency)
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{out['tasks']} tasks, {out['calls']} calls ({out['read_calls']} reads): "
            f"top-1 {out['top1_acc']}, top-{args.k} {out['topk_acc']}; reads top-1 {out['read_top1_acc']}, "
            f"top-{args.k} {out['read_topk_acc']}; hidden latency {out['hidden_latency_s']} s"
        )
        for name, v in out["per_tool"].items():
            print(f"  {name:<32} {v['calls']:>4} calls  top-{args.k} {v['topk_acc']:.2f}")
    return 0
