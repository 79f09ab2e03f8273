"""Fit the HotpotQA next-action speculator on recorded ReAct runs and write its weights JSON.

The procedure is the one every fold of `langgraph-speculative eval hotpotqa --cv`
measures (`langgraph_speculative_graphs/hotpotqa/_cv.py`, `fit_speculator`): the
L2 strength of each part and the rule families to switch off are chosen by an
inner cross-validation grouped by question, then the weights are fitted on all
the runs. The shipped `langgraph_speculative_graphs/hotpotqa/data/action_weights.json` is

    python scripts/hotpotqa_fit_speculator.py \
        --out langgraph_speculative_graphs/hotpotqa/data/action_weights.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from langgraph_speculative_graphs.hotpotqa._cv import in_sample  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "langgraph_speculative_graphs", "hotpotqa", "data")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trajectories", default=os.path.join(DATA, "react_trajectories_dev.json"))
    p.add_argument("--k", type=int, default=3, help="the top-k the choices are made for")
    p.add_argument("--seed", type=int, default=0, help="how the inner folds are cut")
    p.add_argument("--out", required=True, help="where to write the weights JSON")
    args = p.parse_args()
    with open(args.trajectories) as f:
        runs = json.load(f)
    figures, fitted = in_sample(runs, args.k, args.seed)
    out = {
        "about": (
            "Weights of the HotpotQA next-action speculator "
            "(langgraph_speculative_graphs/hotpotqa/_ranker.py), fitted on "
            f"{len(runs)} recorded ReAct runs ({os.path.basename(args.trajectories)}, Reflexion, MIT) "
            "by scripts/hotpotqa_fit_speculator.py (_cv.fit_speculator)"
        ),
        "runs": len(runs),
        "steps": figures["steps"],
        "k": args.k,
        "seed": args.seed,
        "l2": fitted.l2,
        "off": list(fitted.off),
        "weights": dict(sorted(fitted.weights.items())),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=0, ensure_ascii=False)
        f.write("\n")
    print(
        json.dumps(
            {"out": args.out, "l2": fitted.l2, "off": list(fitted.off), "features": len(fitted.weights)}
        )
    )


if __name__ == "__main__":
    main()
