"""`langgraph-speculative eval hotpotqa`: next-action accuracy on recorded ReAct runs.

Before each step the speculator sees the question and the steps before it
(thoughts, actions, observations) and guesses the next action. Strict
matching: same tool, same argument after whitespace trimming.

- default: the shipped offline speculator (weights fitted on the 50 dev runs:
  in-sample on them);
- `--cv N`: nested N-fold cross-validation grouped by question (`_cv.py`):
  the weights, each part's L2 strength and the rule families in use are all
  chosen on the training folds only (by inner cross-validation, grouped too),
  each fold is scored by a speculator fitted without it, and `--repeat R`
  shuffles (default 3) give the mean and sd; the same procedure fitted on all
  runs and scored on them (in-sample) and the shipped weights are reported
  beside it;
- `--speculator MODEL`: a chat model (`openai:gpt-4o-mini`) guesses too, and three rows are
  scored on the same steps from one chat call per step: the rules alone, the chat model alone,
  and the two merged (`_combined.merge`, what the graph uses when a chat model is configured),
  with what each adds: the steps whose truth is in the top-k of only one of them, of both, of
  neither;
- `--backend recorded|local|live`: also score the observation speculator (the
  local mirror's answer to each Search) against that wiki: the runs' recorded
  observations, the local wiki itself, or the live MediaWiki API (network).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from .._common import SpecError, check_chat_spec, load_records, redact, run_async
from ._combined import CombinedActionSpeculator, merge
from ._cv import in_sample, nested_cv
from ._speculator import ActionSpeculator

__all__ = (
    "add_parser",
    "check_args",
    "evaluate",
    "evaluate_combined",
    "evaluate_observations",
    "load_runs",
    "what_each_adds",
)

Guesses = list[tuple[str, str]]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("hotpotqa", help="next-action accuracy of the ReAct speculator on recorded runs")
    p.add_argument(
        "--trajectories",
        default="dev",
        help="recorded runs (a file in the format of react_trajectories_dev.json), or the packaged ones "
        "by name from any directory: dev (react_trajectories_dev.json, 50 runs); default: dev",
    )
    p.add_argument("--k", type=int, default=3, help="guesses per step (default 3)")
    p.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="N",
        help="nested N-fold cross-validation grouped by question (everything fitted on training folds)",
    )
    p.add_argument("--seed", type=int, default=0, help="how --cv shuffles questions into folds (default 0)")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="R",
        help="with --cv: R shuffles (seeds --seed..--seed+R-1), reported as mean and sd (default 3)",
    )
    p.add_argument(
        "--no-select",
        action="store_true",
        help="with --cv: keep every rule family (fit only the weights and L2 strengths)",
    )
    p.add_argument(
        "--speculator",
        default="offline",
        help="offline (default) or a chat model, e.g. openai:gpt-4o-mini (options: ,temperature=0): "
        "then the rules alone, the chat model alone and the two combined are scored side by side",
    )
    p.add_argument(
        "--weights", default=None, help="offline speculator weights JSON (default: the shipped ones)"
    )
    p.add_argument(
        "--backend",
        choices=["recorded", "local", "live"],
        default=None,
        help="also score guessed observations against the runs' recorded ones, the local wiki, "
        "or live Wikipedia",
    )
    p.add_argument("--wiki-url", default=None, help="MediaWiki API for --backend live (default: Wikipedia's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, check=check_args)


RUN_FILES = {"dev": "react_trajectories_dev.json"}
"""The packaged recorded runs by short name (Reflexion's 50 ReAct runs on HotpotQA dev questions)."""


def load_runs(path: str = "dev") -> list[dict[str, Any]]:
    """Recorded runs in the format of `react_trajectories_dev.json`: a file, or the packaged ones by
    name from any directory (`RUN_FILES`)."""
    package = __name__.rpartition(".")[0]
    return load_records(path, "trajectory", ["question", "steps"], package=package, packaged=RUN_FILES)


def _items(runs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]], tuple[str, str]]]:
    return [
        (run["question"], run["steps"][:i], (str(step["tool"]).strip(), str(step["arg"]).strip()))
        for run in runs
        for i, step in enumerate(run["steps"])
    ]


def _strict(guesses: Guesses) -> Guesses:
    """Guesses as the strict match compares them: the argument whitespace-trimmed."""
    return [(t, a.strip()) for t, a in guesses]


def score(items: list[tuple[str, Any, tuple[str, str]]], guesses: list[Guesses], k: int) -> dict[str, Any]:
    """Top-1/top-k accuracy of `guesses` (one list per item), overall and per tool."""
    steps = top1 = topk = 0
    per_tool: dict[str, dict[str, int]] = {}
    for (_, _, want), raw in zip(items, guesses):
        g = _strict(raw)
        hit1, hitk = bool(g) and g[0] == want, want in g[:k]
        steps, top1, topk = steps + 1, top1 + hit1, topk + hitk
        tool = per_tool.setdefault(want[0], {"steps": 0, "top1": 0, "topk": 0})
        tool["steps"], tool["top1"], tool["topk"] = (
            tool["steps"] + 1,
            tool["top1"] + hit1,
            tool["topk"] + hitk,
        )
    return {
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
    }


def evaluate(runs: list[dict[str, Any]], speculator: Any, k: int) -> dict[str, Any]:
    """Score `speculator`'s top-k guesses of every recorded step (`speculator.guess(question, steps, k)`)."""
    items = _items(runs)
    latencies: list[float] = []
    if hasattr(speculator, "aguess_many"):
        guesses = run_async(speculator.aguess_many([(q, s) for q, s, _ in items], k))
        latencies = list(getattr(speculator, "latencies", []))
    else:
        guesses = []
        for q, s, _ in items:
            t0 = time.perf_counter()
            guesses.append(speculator.guess(q, s, k))
            latencies.append(time.perf_counter() - t0)
    return {
        "runs": len(runs),
        **score(items, guesses, k),
        "speculator_median_s": round(statistics.median(latencies), 4) if latencies else None,
    }


def what_each_adds(
    items: list[tuple[str, Any, tuple[str, str]]], chat: list[Guesses], rules: list[Guesses], k: int
) -> dict[str, int]:
    """Steps whose truth is in the top-k of the chat model only, of the rules only, of both, of neither."""
    out = {"chat_only": 0, "rules_only": 0, "both": 0, "neither": 0}
    for (_, _, want), c, r in zip(items, chat, rules):
        in_c, in_r = want in _strict(c[:k]), want in _strict(r[:k])
        key = "both" if in_c and in_r else "chat_only" if in_c else "rules_only" if in_r else "neither"
        out[key] += 1
    return out


def evaluate_combined(runs: list[dict[str, Any]], speculator: Any, k: int) -> dict[str, Any]:
    """Score the rules alone, the chat model alone and the two merged on every recorded step, from
    one chat call per step (`speculator`: a `CombinedActionSpeculator`), and what each adds.

    The top-level figures are the merged list's (what the graph uses); `rows` has all three."""
    items = _items(runs)
    parts = run_async(speculator.aguess_parts_many([(q, s) for q, s, _ in items], k))
    chat, rules = [c for c, _ in parts], [r for _, r in parts]
    rows = {
        "rules": score(items, rules, k),
        "chat": score(items, chat, k),
        "combined": score(items, [merge(c, r, k) for c, r in parts], k),
    }
    latencies = list(speculator.latencies)
    return {
        "runs": len(runs),
        **rows["combined"],
        "rows": {
            name: {key: v[key] for key in ("top1_acc", "topk_acc", "per_tool")} for name, v in rows.items()
        },
        "adds": what_each_adds(items, chat, rules, k),
        "chat_errors": speculator.failures,
        "chat_empty": sum(not c for c in chat),
        "first_chat_error": speculator.first_error,
        "speculator_median_s": round(statistics.median(latencies), 4) if latencies else None,
    }


def evaluate_observations(
    runs: list[dict[str, Any]], backend: str, wiki_url: str | None = None
) -> dict[str, Any]:
    """How often the local mirror's observation of a recorded Search equals what `backend` answers."""
    from ._wiki import LocalWiki, RecordedWiki, WikipediaAPI, WikiSession

    local = LocalWiki()
    truth: Any = (
        RecordedWiki(runs, local)
        if backend == "recorded"
        else local
        if backend == "local"
        else WikipediaAPI(base_url=wiki_url)
        if wiki_url
        else WikipediaAPI()
    )
    searches = hits = 0
    for run in runs:
        real, mirror = WikiSession(truth), WikiSession(local)
        for step in run["steps"]:
            tool, arg = str(step["tool"]), str(step["arg"])
            answer, guess = real.observe(tool, arg), mirror.observe(tool, arg)
            if tool == "Search":
                searches, hits = searches + 1, hits + (answer == guess)
    return {
        "backend": backend,
        "searches": searches,
        "hits": hits,
        "acc": round(hits / searches, 4) if searches else None,
    }


def _speculator(args: argparse.Namespace) -> Any:
    if args.speculator == "offline":
        return ActionSpeculator(weights=args.weights)
    return CombinedActionSpeculator(args.speculator, ActionSpeculator(weights=args.weights), k=args.k)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _print(out: dict[str, Any], k: int) -> None:
    if "per_repeat" in out:
        t1, tk = out["top1_acc"], out["topk_acc"]
        print(
            f"{out['runs']} runs ({out['questions']} questions), {out['steps']} steps: nested "
            f"{out['folds']}-fold CV grouped by question, {out['repeats']} repeats: "
            f"top-{k} {_pct(tk['mean'])} ± {_pct(tk['sd'])} (top-1 {_pct(t1['mean'])} ± {_pct(t1['sd'])})"
        )
        for name, v in out["per_tool"].items():
            print(
                f"  {name:<8} {v['steps']:>4} steps  top-1 {_pct(v['top1_acc']['mean'])}  "
                f"top-{k} {_pct(v['topk_acc']['mean'])} ± {_pct(v['topk_acc']['sd'])}"
            )
        print(f"  per repeat top-{k}: " + ", ".join(_pct(r["topk_acc"]) for r in out["per_repeat"]))
        print(f"  sd over the {len(out['per_fold'])} held-out folds: {_pct(out['fold_topk_sd'])}")
        if out["families_off"]:
            n = len(out["per_fold"])
            print("  rule families switched off (folds of " + str(n) + "): "
                  + ", ".join(f"{f} {c}" for f, c in out["families_off"].items()))  # fmt: skip
        ins = out["in_sample"]
        print(f"  in-sample (the same procedure fitted on all runs, scored on them): "
              f"top-{k} {_pct(ins['topk_acc'])} (top-1 {_pct(ins['top1_acc'])})")  # fmt: skip
        s = out["shipped_weights"]
        print(f"  shipped weights (fitted on all runs): "
              f"top-{k} {_pct(s['topk_acc'])} (top-1 {_pct(s['top1_acc'])})")  # fmt: skip
        print(f"  expect on unseen runs: the nested figure ({_pct(tk['mean'])}), or less: {out['caveat']}")
    elif "rows" in out:
        _print_rows(out, k)
    else:
        print(f"{out['runs']} runs, {out['steps']} steps: top-1 {out['top1_acc']}, top-{k} {out['topk_acc']}")
        for name, v in out["per_tool"].items():
            print(
                f"  {name:<8} {v['steps']:>4} steps  top-1 {v['top1_acc']:.2f}  top-{k} {v['topk_acc']:.2f}"
            )
    if "observations" in out:
        o = out["observations"]
        print(f"  guessed observations vs {o['backend']}: {o['hits']}/{o['searches']} Searches")


def _print_rows(out: dict[str, Any], k: int) -> None:
    """The rules alone, the chat model alone and the two combined, then what each adds."""
    tools = {t: f"{t} ({v['steps']})" for t, v in out["per_tool"].items()}
    width = {t: max(len(h), 9) for t, h in tools.items()}
    print(f"{out['runs']} runs, {out['steps']} steps: {out['speculator']}")
    print(f"  {'':<13} top-1  top-{k}  " + "  ".join(h.ljust(width[t]) for t, h in tools.items())
          + f"  (per tool: top-1/top-{k})")  # fmt: skip
    for name, label in (("rules", "rules alone"), ("chat", "chat alone"), ("combined", "combined")):
        row = out["rows"][name]
        cells = "  ".join(
            f"{row['per_tool'][t]['top1_acc']:.2f}/{row['per_tool'][t]['topk_acc']:.2f}".ljust(width[t])
            for t in tools
        )
        print(f"  {label:<13} {row['top1_acc']:.2f}   {row['topk_acc']:.2f}   {cells}".rstrip())
    a = out["adds"]
    print(f"  truth in the top-{k} of the chat model only: {a['chat_only']} steps, of the rules only: "
          f"{a['rules_only']}, of both: {a['both']}, of neither: {a['neither']}")  # fmt: skip
    if out["chat_empty"]:
        print(f"  the chat model gave no action on {out['chat_empty']} steps ({out['chat_errors']} errors, "
              f"first: {out['first_chat_error']}); the rules' list stood in")  # fmt: skip


CAVEAT = (
    "the candidate rules and feature templates were written by people who read these runs; "
    "the nested CV re-chooses which families to use inside each fold, but not the rules themselves"
)


def check_args(args: argparse.Namespace) -> None:
    """The numbers and the speculator spec, before anything runs; `SpecError` (one line) if one
    cannot work."""
    for flag, value in (("--k", args.k), ("--repeat", args.repeat)):
        if value < 1:
            raise SpecError(f"{flag} must be at least 1, got {value}")
    if args.speculator != "offline":
        check_chat_spec(args.speculator, "--speculator", ("offline",))


def run(args: argparse.Namespace) -> int:
    """The `eval hotpotqa` command."""
    check_args(args)
    try:
        runs = load_runs(args.trajectories)
        if args.cv:
            if args.speculator != "offline":
                raise ValueError(
                    "--cv fits the offline speculator; it cannot be combined with --speculator MODEL"
                )
            cv = nested_cv(runs, args.cv, args.repeat, args.k, args.seed, select=not args.no_select)
            figures, _ = in_sample(runs, args.k, args.seed, select=not args.no_select)
            shipped = evaluate(runs, ActionSpeculator(weights=args.weights), args.k)
            out: dict[str, Any] = {
                **cv,
                "speculator": (
                    f"offline, nested {args.cv}-fold cross-validation grouped by question "
                    "(weights, L2 strengths"
                    + ("" if args.no_select else " and rule families")
                    + " fitted on training folds only)"
                ),
                "in_sample": figures,
                "shipped_weights": {key: shipped[key] for key in ("top1_acc", "topk_acc", "per_tool")},
                "caveat": CAVEAT,
            }
        elif args.speculator == "offline":
            out = evaluate(runs, _speculator(args), args.k)
            out["speculator"] = (
                "offline (learned ranker over candidates from the question, thoughts and observations)"
            )
        else:
            out = evaluate_combined(runs, _speculator(args), args.k)
            where = f"--speculator {redact(args.speculator)!r}"
            if out["steps"] and out["chat_errors"] == out["steps"]:
                raise SpecError(
                    f"{where}: the chat model failed on all {out['steps']} steps (first: "
                    f"{out['first_chat_error']}); check the model name, its key and base_url"
                )
            out["speculator"] = f"rules, chat model {redact(args.speculator)}, and the two combined"
        if args.backend:
            out["observations"] = evaluate_observations(runs, args.backend, args.wiki_url)
    except (FileNotFoundError, ValueError) as exc:
        raise SpecError(str(exc)) from None
    if args.json:
        print(json.dumps(out))
    else:
        _print(out, args.k)
    return 0
