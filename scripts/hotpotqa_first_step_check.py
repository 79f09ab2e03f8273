"""How the HotpotQA speculator's question rules carry over to questions it was not written on.

The recorded runs of half of the 100 questions are kept out of this repository
for evaluation, so the speculator cannot be scored on them here. Its first
guess for a question, though, depends only on the question, and HotpotQA
labels each question with the two pages that support its answer. This script
asks, for the dev questions (whose runs the rules were written on) and for the
other 50: is one of the top-k first-step guesses a supporting page? The
speculator never reads those labels; only this check does.

    python scripts/hotpotqa_first_step_check.py [--k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from langgraph_speculative_graphs.hotpotqa import ActionSpeculator  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "langgraph_speculative_graphs", "hotpotqa", "data")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=3)
    args = p.parse_args()
    with open(os.path.join(DATA, "hotpot_distractor_100.json")) as f:
        questions = json.load(f)
    with open(os.path.join(DATA, "react_trajectories_dev.json")) as f:
        runs = json.load(f)
    dev = {r["question"] for r in runs}
    speculator = ActionSpeculator()
    out: dict[str, object] = {}
    for group in ("dev", "other"):
        rows = [q for q in questions if (q["question"] in dev) == (group == "dev")]
        topk = top1 = 0
        for q in rows:
            gold = {title.lower() for title, _ in q["supporting_facts"]}
            guesses = [arg.lower() for _, arg in speculator.guess(q["question"], [], args.k)]
            topk += any(g in gold for g in guesses)
            top1 += bool(guesses) and guesses[0] in gold
        n = len(rows)
        out[group] = {"questions": n, "topk": round(topk / n, 3), "top1": round(top1 / n, 3)}
    exact = sum(
        (r["steps"][0]["tool"], r["steps"][0]["arg"].strip()) in speculator.guess(r["question"], [], args.k)
        for r in runs
    )
    out["dev_first_step_topk_vs_recorded"] = round(exact / len(runs), 3)
    print(json.dumps({"k": args.k, **out}))


if __name__ == "__main__":
    main()
