"""A learned ranker of candidate next actions, and honest (cross-validated) estimates of it.

The ranker is a conditional logit: each candidate's score is a weighted sum of
its features, and the weights maximise the likelihood of the action the agent
took among the candidates of its step (L2-regularised). Steps whose action is
not among the candidates teach nothing but still count as misses.

`cross_validate` splits the runs into folds; for each held-out fold it picks the
regularisation by an inner cross-validation on the training folds alone, fits on
the training folds, and scores the held-out fold. Nothing of a held-out run is
seen while fitting the model that scores it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._features import Action, Features, candidates
from ._wiki import data_text

__all__ = ("Ranker", "Step", "cross_validate", "featurize", "fit", "load_weights", "score_steps")

L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
WEIGHTS_FILE = "action_weights.json"


@dataclass(frozen=True)
class Step:
    """One recorded step to rank: its run, the candidates, and the action the agent took."""

    run: int
    index: int
    tool: str
    want: Action
    tools: tuple[tuple[str, Features], ...]
    options: tuple[tuple[Action, Features], ...]

    @property
    def truth(self) -> int:
        """Index of the agent's action among the candidates, or -1."""
        return next((i for i, (a, _) in enumerate(self.options) if a == self.want), -1)


def featurize(runs: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Every step of `runs` with its candidates (the speculator's view: the steps before it)."""
    out = []
    for r, run in enumerate(runs):
        steps = list(run["steps"])
        for i, step in enumerate(steps):
            want = (str(step["tool"]).strip(), str(step["arg"]).strip())
            tools, options = candidates(str(run["question"]), steps[:i])
            out.append(Step(r, i, want[0], want, tuple(tools.items()), tuple(options.items())))
    return out


def _log_softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    lse = top + math.log(sum(math.exp(x - top) for x in scores))
    return [x - lse for x in scores]


class Ranker:
    """Ranks candidates by log P(tool) + log P(argument | tool); unknown features weigh nothing.

    Both factors are softmaxes of weighted feature sums: over the tools that
    have candidates, and over the candidates of each tool.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)

    def score(self, feats: Features) -> float:
        """The weighted sum of `feats`."""
        w = self.weights
        return sum(w.get(name, 0.0) * value for name, value in feats.items())

    def log_probs(
        self, tools: Sequence[tuple[str, Features]], options: Sequence[tuple[Action, Features]]
    ) -> list[float]:
        """log P(action) of every option, in the options' order."""
        if not options:
            return []
        tool_lp = dict(zip([t for t, _ in tools], _log_softmax([self.score(f) for _, f in tools])))
        out = [0.0] * len(options)
        for tool in {a[0] for a, _ in options}:
            idx = [i for i, (a, _) in enumerate(options) if a[0] == tool]
            for i, lp in zip(idx, _log_softmax([self.score(options[i][1]) for i in idx])):
                out[i] = lp + tool_lp.get(tool, -30.0)
        return out

    def rank(
        self, tools: Sequence[tuple[str, Features]], options: Sequence[tuple[Action, Features]], k: int
    ) -> list[Action]:
        """The k likeliest actions, best first (ties keep the candidates' order)."""
        lp = self.log_probs(tools, options)
        order = sorted(range(len(options)), key=lambda i: (-lp[i], i))
        return [options[i][0] for i in order[:k]]


def _clogit(groups: Sequence[tuple[Sequence[Features], int]], l2: float) -> dict[str, float]:
    """Conditional-logit weights: each group is (options' features, index of the chosen one)."""
    from scipy.optimize import minimize
    from scipy.sparse import csr_matrix

    usable = [(opts, y) for opts, y in groups if y >= 0 and len(opts) > 1]
    names = sorted({n for opts, _ in usable for f in opts for n in f})
    if not usable or not names:
        return {}
    index = {n: j for j, n in enumerate(names)}
    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    starts, truths, r = [], [], 0
    for opts, y in usable:
        starts.append(r)
        truths.append(r + y)
        for f in opts:
            for n, v in f.items():
                cols.append(index[n])
                data.append(v)
            indptr.append(len(cols))
            r += 1
    x = csr_matrix((data, cols, indptr), shape=(r, len(names)))
    xt = x.T.tocsr()
    seg = np.repeat(np.arange(len(usable)), [len(opts) for opts, _ in usable])
    truth_rows = np.array(truths)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        top = np.maximum.reduceat(z, starts)
        e = np.exp(z - top[seg])
        total = np.add.reduceat(e, starts)
        p = e / total[seg]
        value = float(np.sum(top + np.log(total)) - np.sum(z[truth_rows])) + 0.5 * l2 * float(w @ w)
        p[truth_rows] -= 1.0
        return value, xt @ p + l2 * w

    res = minimize(loss, np.zeros(len(names)), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return {n: round(float(v), 6) for n, v in zip(names, res.x) if abs(v) > 1e-9}


COMPONENTS = ("tool", "Search", "Lookup", "Finish")
"""The separately regularised parts of the model: the tool choice, and each tool's argument choice."""


def _strength(l2: float | Mapping[str, float], part: str) -> float:
    return float(l2) if isinstance(l2, (int, float)) else float(l2[part])


def fit(steps: Sequence[Step], l2: float | Mapping[str, float] = 1.0) -> dict[str, float]:
    """Weights of both factors: the tool the agent chose, and its argument among that tool's candidates.

    Each part (`COMPONENTS`) maximises its conditional likelihood minus
    l2/2 ||w||^2, with `l2` one strength or one per part. A step whose
    argument is not among the candidates still teaches the tool.
    """
    groups: dict[str, list[tuple[list[Features], int]]] = {part: [] for part in COMPONENTS}
    for s in steps:
        names = [t for t, _ in s.tools]
        groups["tool"].append(([f for _, f in s.tools], names.index(s.tool) if s.tool in names else -1))
        same = [(a, f) for a, f in s.options if a[0] == s.tool]
        truth = next((i for i, (a, _) in enumerate(same) if a == s.want), -1)
        groups.setdefault(s.tool, []).append(([f for _, f in same], truth))
    weights: dict[str, float] = {}
    for part in COMPONENTS:
        weights.update(_clogit(groups[part], _strength(l2, part)))
    return weights


def _part_scores(steps: Sequence[Step], ranker: Ranker, k: int) -> dict[str, float]:
    """Held-out quality of each part: the tool's log-likelihood, each tool's in-tool top-k hits."""
    out = dict.fromkeys(COMPONENTS, 0.0)
    for s in steps:
        names = [t for t, _ in s.tools]
        if s.tool in names:
            out["tool"] += _log_softmax([ranker.score(f) for _, f in s.tools])[names.index(s.tool)]
        same = [(a, f) for a, f in s.options if a[0] == s.tool]
        order = sorted(range(len(same)), key=lambda i: (-ranker.score(same[i][1]), i))
        if s.tool in out:
            out[s.tool] += any(same[i][0] == s.want for i in order[:k])
    return out


def score_steps(steps: Sequence[Step], ranker: Ranker, k: int) -> dict[str, Any]:
    """Top-1 and top-k hits, overall and per tool."""
    per_tool: dict[str, dict[str, int]] = {}
    total = {"steps": 0, "top1": 0, "topk": 0}
    for s in steps:
        guesses = ranker.rank(s.tools, s.options, k)
        hit1, hitk = bool(guesses) and guesses[0] == s.want, s.want in guesses
        for row in (total, per_tool.setdefault(s.tool, {"steps": 0, "top1": 0, "topk": 0})):
            row["steps"] += 1
            row["top1"] += hit1
            row["topk"] += hitk
    return {**total, "per_tool": per_tool}


def _folds(n_runs: int, n_folds: int, seed: int) -> list[list[int]]:
    order = list(range(n_runs))
    random.Random(seed).shuffle(order)
    return [sorted(order[f::n_folds]) for f in range(n_folds)]


def choose_l2(steps: Sequence[Step], k: int, n_folds: int = 4, seed: int = 0) -> dict[str, float]:
    """Per part, the L2 strength of `L2_GRID` that does best in an inner cross-validation on `steps` alone.

    The tool part by held-out log-likelihood, each argument part by held-out
    in-tool top-k hits; ties go to the stronger regularisation.
    """
    runs = sorted({s.run for s in steps})
    folds = _folds(len(runs), min(n_folds, len(runs)), seed)
    best: dict[str, tuple[float, float]] = {}
    for l2 in reversed(L2_GRID):
        total = dict.fromkeys(COMPONENTS, 0.0)
        for fold in folds:
            held = {runs[i] for i in fold}
            ranker = Ranker(fit([s for s in steps if s.run not in held], l2))
            for part, value in _part_scores([s for s in steps if s.run in held], ranker, k).items():
                total[part] += value
        for part, value in total.items():
            if part not in best or value > best[part][1] + 1e-9:
                best[part] = (l2, value)
    return {part: best[part][0] for part in COMPONENTS}


def _rates(row: Mapping[str, int]) -> dict[str, float | None]:
    n = row["steps"]
    return {
        "top1_acc": round(row["top1"] / n, 4) if n else None,
        "topk_acc": round(row["topk"] / n, 4) if n else None,
    }


def cross_validate(
    runs: Sequence[Mapping[str, Any]], n_folds: int = 5, k: int = 3, seed: int = 0
) -> dict[str, Any]:
    """K-fold cross-validation by run: fit (and choose L2) on the other folds, score each fold.

    Returns the mean over folds of top-1/top-k (overall and per tool, a tool's
    mean over the folds that have it), the pooled counts, and each fold's runs,
    chosen L2 and scores.
    """
    if not 2 <= n_folds <= len(runs):
        raise ValueError(f"--cv needs 2 <= folds <= {len(runs)} runs, got {n_folds}")
    steps = featurize(runs)
    folds = _folds(len(runs), n_folds, seed)
    rows = []
    for f, fold in enumerate(folds):
        held = set(fold)
        train = [s for s in steps if s.run not in held]
        l2 = choose_l2(train, k, seed=seed + 1 + f)
        ranker = Ranker(fit(train, l2))
        rows.append(
            {"fold": f, "runs": fold, "l2": l2, **score_steps([s for s in steps if s.run in held], ranker, k)}
        )
    tools = sorted({t for row in rows for t in row["per_tool"]})
    pooled = {key: sum(row[key] for row in rows) for key in ("steps", "top1", "topk")}

    def mean(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    per_tool = {}
    for t in tools:
        have = [row["per_tool"][t] for row in rows if t in row["per_tool"]]
        counts = {key: sum(h[key] for h in have) for key in ("steps", "top1", "topk")}
        per_tool[t] = {
            **counts,
            "top1_acc": mean([_rates(h)["top1_acc"] for h in have]),
            "topk_acc": mean([_rates(h)["topk_acc"] for h in have]),
            "pooled": _rates(counts),
        }
    return {
        "folds": n_folds,
        "seed": seed,
        "k": k,
        "runs": len(runs),
        "steps": pooled["steps"],
        "top1_acc": mean([_rates(row)["top1_acc"] for row in rows]),
        "topk_acc": mean([_rates(row)["topk_acc"] for row in rows]),
        "pooled": _rates(pooled),
        "per_tool": per_tool,
        "per_fold": [
            {"fold": row["fold"], "runs": row["runs"], "l2": row["l2"], "steps": row["steps"], **_rates(row)}
            for row in rows
        ],
    }


def load_weights(path: str | None = None) -> dict[str, float]:
    """The shipped weights (fitted on the 50 dev runs), or those in the JSON file at `path`."""
    if path is None:
        text = data_text(WEIGHTS_FILE)
    else:
        with open(path) as f:
            text = f.read()
    data = json.loads(text)
    return {str(k): float(v) for k, v in data["weights"].items()}
