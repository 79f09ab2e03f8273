"""A learned ranker of candidate next actions.

The ranker is a conditional logit: each candidate's score is a weighted sum of
its features, and the weights maximise the likelihood of the action the agent
took among the candidates of its step (L2-regularised). Steps whose action is
not among the candidates teach nothing but still count as misses. How the
weights, the regularisation and the rule families are chosen, and the nested
cross-validation that measures the whole procedure, are in `_cv.py`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._features import Action, Features, candidates
from ._wiki import data_text

__all__ = ("Ranker", "Step", "featurize", "fit", "load_model", "load_weights", "score_steps")

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


def load_model(path: str | None = None) -> tuple[dict[str, float], tuple[str, ...]]:
    """(weights, rule families switched off) of the shipped model (fitted on the 50 dev runs by
    `_cv.fit_speculator`), or of the JSON file at `path` (a file without "off" switches none off)."""
    if path is None:
        text = data_text(WEIGHTS_FILE)
    else:
        with open(path) as f:
            text = f.read()
    data = json.loads(text)
    weights = {str(k): float(v) for k, v in data["weights"].items()}
    return weights, tuple(str(n) for n in data.get("off", ()))


def load_weights(path: str | None = None) -> dict[str, float]:
    """The weights of `load_model(path)`."""
    return load_model(path)[0]
