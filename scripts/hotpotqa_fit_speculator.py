"""Fit the HotpotQA next-action speculator's weights on recorded ReAct runs.

The L2 strength is chosen by cross-validation on the same runs (the grid in
`langgraph_speculative_graphs/hotpotqa/_ranker.py`), then the weights are fitted on all of them and
written as JSON. The shipped `langgraph_speculative_graphs/hotpotqa/data/action_weights.json` is

    python scripts/hotpotqa_fit_speculator.py \
        --out langgraph_speculative_graphs/hotpotqa/data/action_weights.json

`langgraph-speculative eval hotpotqa --cv 5` measures the method honestly: it
refits on the training folds only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from langgraph_speculative_graphs.hotpotqa._ranker import choose_l2, featurize, fit  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "langgraph_speculative_graphs", "hotpotqa", "data")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trajectories", default=os.path.join(DATA, "react_trajectories_dev.json"))
    p.add_argument("--k", type=int, default=3, help="the top-k the L2 strength is chosen for")
    p.add_argument("--out", required=True, help="where to write the weights JSON")
    args = p.parse_args()
    with open(args.trajectories) as f:
        runs = json.load(f)
    steps = featurize(runs)
    l2 = choose_l2(steps, args.k)
    weights = fit(steps, l2)
    out = {
        "about": (
            "Weights of the HotpotQA next-action speculator "
            "(langgraph_speculative_graphs/hotpotqa/_ranker.py), fitted on "
            f"{len(runs)} recorded ReAct runs ({os.path.basename(args.trajectories)}, Reflexion, MIT) "
            "by scripts/hotpotqa_fit_speculator.py"
        ),
        "runs": len(runs),
        "steps": len(steps),
        "l2": l2,
        "weights": dict(sorted(weights.items())),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=0, ensure_ascii=False)
        f.write("\n")
    print(json.dumps({"out": args.out, "l2": l2, "features": len(weights)}))


if __name__ == "__main__":
    main()
