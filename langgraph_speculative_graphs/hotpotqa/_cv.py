"""Nested cross-validation of the next-action speculator, grouped by question, with every choice fitted.

What a speculator for unseen questions is fitted from, and therefore what a
held-out fold must never influence:

- the weights (and so the vocabulary of features that carry any weight:
  a feature that no training step has weighs nothing);
- the L2 strength of each part (tool choice, each tool's argument choice),
  chosen from `_ranker.L2_GRID` by an inner cross-validation;
- which rule families (`FAMILIES`: candidate sources and feature templates)
  the speculator uses at all: each is dropped when an inner cross-validation
  on the training questions finds it does not help. A rule written for one
  question is then judged, when that question is held out, only by the
  questions it was not written for.

`fit_speculator` makes all these choices from the runs it is given and
nothing else; `nested_cv` cuts the runs into folds by question (two runs of
one question never sit on both sides), fits on the training folds, scores the
held-out fold, and repeats with other shuffles for a spread (mean and sample
standard deviation over repeats). The features of a step are computed from
that step's own run only (`_ranker.featurize`), so they are not fitted.

What this cannot remove: the candidate generators and feature templates
themselves were written by people who read these 50 runs. The family
selection measures the part of that which can be switched off; the rest is
why an estimate on runs nobody read is still the final word.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._features import Action, Features
from ._ranker import COMPONENTS, L2_GRID, Step, featurize

__all__ = (
    "FAMILIES",
    "Fitted",
    "fit_speculator",
    "group_folds",
    "nested_cv",
    "question_key",
    "restrict",
    "restrict_candidates",
)

FAMILIES: dict[str, str] = {
    # candidate sources: off drops the source's candidates (unless another source proposes them too)
    "search.question": r"^S\.(?:src\.q\b|q\.)",
    "search.plan": r"^S\.(?:src\.plan|plan\.)",
    "search.thought-names": r"^S\.(?:src\.th\b|th\.)",
    "search.similar": r"^S\.(?:src\.sim\b|sim\.)",
    "search.similar-parts": r"^S\.(?:src\.simpart|simpart\.)",
    "search.variants": r"^S\.(?:src\.var|var\.)",
    "search.repeat": r"^S\.(?:src\.rep|rep\.)",
    "search.observation": r"^S\.(?:src\.obs|obs\.)",
    "lookup.question": r"^L\.(?:src\.q\b|q\.)",
    "lookup.find": r"^L\.src\.find",
    "lookup.plan": r"^L\.(?:src\.plan|plan\.)",
    "finish.yesno": r"^F\.(?:src\.yn|yn\.)",
    "finish.either": r"^F\.(?:src\.qent|qent\.)",
    "finish.previous-pages": r"^F\.src\.prev",
    "finish.lookup": r"^F\.src\.look",
    "finish.thoughts": r"^F\.src\.th\b",
    "finish.description": r"^F\.(?:src\.desc|desc\.)",
    "finish.first-name": r"^F\.src\.firstname",
    "finish.page": r"^F\.(?:src\.page|page\.)",
    # feature templates: off drops the features, never a candidate
    "feat.lifespan": r"^F\.life\.",
    "feat.gazetteer": r"^F\.gaz\.",
    "feat.head-noun": r"^(?:F\.head\.|S\.obs\.head)",
    "feat.preposition": r"^F\.prep",
    "feat.pair": r"^F\.pair2",
    "feat.shared": r"^F\.shared",
    "feat.sentence-position": r"^F\.sent\d",
    "feat.span-cut": r"^(?:F\.cut\.|S\.obs\.name|S\.obs\.pair|S\.q\.cut\.)",
    "feat.source-by-state": r"^[SLF]\.src\.[^@]+@",
    "feat.tool-crosses": r"^T\.[SLF]@(?:q\.[a-z]+@|typed@|bothsearched@)",
}
"""Switchable rule families, by the feature names they produce (regular expressions).

Families named `search.*`, `lookup.*` and `finish.*` are candidate sources; the
others are feature templates. What no family names is always on: the
question's and the last observation's names proposed by the main Finish
source, the word overlaps, lengths, "already searched", the tool-choice state.
"""

_SOURCE = re.compile(r"^[SLF]\.src\.[^@]+$")


def question_key(question: str) -> str:
    """The group of a run: its question, case and spacing ignored (two runs of one question share it)."""
    return re.sub(r"\s+", " ", question).strip().lower()


def _pattern(off: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted(off)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown rule families {unknown}; known: {sorted(FAMILIES)}")
    return re.compile("|".join(f"(?:{FAMILIES[n]})" for n in names)) if names else None


def restrict_candidates(
    tools: Sequence[tuple[str, Features]], options: Sequence[tuple[Action, Features]], off: Iterable[str]
) -> tuple[tuple[tuple[str, Features], ...], tuple[tuple[Action, Features], ...]]:
    """One step's (tools, options) without the rule families `off`: their features dropped, and
    candidates no source proposes any more dropped (a tool left without candidates too)."""
    pat = _pattern(off)
    if pat is None:
        return tuple(tools), tuple(options)
    kept_options = []
    for action, feats in options:
        kept = {n: v for n, v in feats.items() if not pat.search(n)}
        if any(_SOURCE.match(n) for n in kept):
            kept_options.append((action, kept))
    left = {a[0] for a, _ in kept_options}
    kept_tools = tuple((t, {n: v for n, v in f.items() if not pat.search(n)}) for t, f in tools if t in left)
    return kept_tools, tuple(kept_options)


def restrict(steps: Sequence[Step], off: Iterable[str]) -> list[Step]:
    """`steps` without the rule families `off` (`restrict_candidates` on each)."""
    off = tuple(off)
    out = []
    for s in steps:
        tools, options = restrict_candidates(s.tools, s.options, off)
        out.append(replace(s, tools=tools, options=options))
    return out


def group_folds(groups: Sequence[str], n_folds: int, seed: int) -> list[list[int]]:
    """Indices of `groups` cut into `n_folds` folds so that equal groups share a fold.

    The distinct groups are shuffled with `random.Random(seed)` and dealt out
    round-robin; each fold lists its indices in order. Deterministic per seed.
    """
    distinct = sorted(set(groups))
    if not 2 <= n_folds <= len(distinct):
        raise ValueError(f"--cv needs 2 <= folds <= {len(distinct)} distinct questions, got {n_folds}")
    random.Random(seed).shuffle(distinct)
    fold_of = {g: i % n_folds for i, g in enumerate(distinct)}
    return [[i for i, g in enumerate(groups) if fold_of[g] == f] for f in range(n_folds)]


TOOLS = ("Search", "Lookup", "Finish")


class Design:
    """All steps' candidates as sparse matrices, to fit and score any subset of steps and families fast.

    Fitting on a subset of steps with some families off gives the weights
    `_ranker.fit(restrict(subset, off), l2)` gives (the same conditional-logit
    objective, on the same rows); scoring ranks like `Ranker.rank`.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        from scipy.sparse import csr_matrix

        self.steps = list(steps)
        names = sorted({n for s in steps for _, f in (*s.tools, *s.options) for n in f})
        self.names = names
        index = {n: j for j, n in enumerate(names)}

        def matrix(rows: list[Features]) -> Any:
            data: list[float] = []
            cols: list[int] = []
            ptr = [0]
            for f in rows:
                for n, v in f.items():
                    cols.append(index[n])
                    data.append(v)
                ptr.append(len(cols))
            return csr_matrix((data, cols, ptr), shape=(len(rows), len(names)))

        opt_feats: list[Features] = []
        tool_feats: list[Features] = []
        self.opt_of: list[np.ndarray] = []  # per step: its option rows, in candidate order
        self.tool_of: list[np.ndarray] = []  # per step: its tool rows
        opt_tool: list[int] = []
        tool_tool: list[int] = []
        self.truth_opt = np.full(len(steps), -1)
        self.truth_tool = np.full(len(steps), -1)
        self.want_tool = np.array([TOOLS.index(s.tool) if s.tool in TOOLS else -1 for s in steps])
        self.run = np.array([s.run for s in steps])
        for i, s in enumerate(steps):
            first = len(opt_feats)
            for j, (action, f) in enumerate(s.options):
                if action == s.want:
                    self.truth_opt[i] = first + j
                opt_feats.append(f)
                opt_tool.append(TOOLS.index(action[0]) if action[0] in TOOLS else -1)
            self.opt_of.append(np.arange(first, len(opt_feats)))
            first = len(tool_feats)
            for j, (tool, f) in enumerate(s.tools):
                if tool == s.tool:
                    self.truth_tool[i] = first + j
                tool_feats.append(f)
                tool_tool.append(TOOLS.index(tool) if tool in TOOLS else -1)
            self.tool_of.append(np.arange(first, len(tool_feats)))
        self.xo = matrix(opt_feats)
        self.xt = matrix(tool_feats)
        self.opt_tool = np.array(opt_tool)
        self.tool_tool = np.array(tool_tool)
        is_src = np.array([bool(_SOURCE.match(n)) for n in names])
        self.src = (self.xo[:, is_src] != 0).astype(float).tocsr()
        self.src_cols = np.flatnonzero(is_src)
        self.family_cols = {
            fam: np.array([bool(re.search(pat, n)) for n in names]) for fam, pat in FAMILIES.items()
        }
        self.part_cols = {
            "tool": np.array([n.startswith("T.") for n in names]),
            **{t: np.array([n.startswith(f"{t[0]}.") for n in names]) for t in TOOLS},
        }
        self._masks: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def masks(self, off: Iterable[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(columns kept, option rows kept, tool rows kept) with the families `off` switched off."""
        key = tuple(sorted(off))
        if key not in self._masks:
            _pattern(key)  # unknown names fail here
            cols = np.ones(len(self.names), dtype=bool)
            for fam in key:
                cols &= ~self.family_cols[fam]
            opts = np.asarray(self.src @ cols[self.src_cols].astype(float)).ravel() > 0
            tools = np.zeros(self.xt.shape[0], dtype=bool)
            for i in range(len(self.steps)):
                have = set(self.opt_tool[self.opt_of[i][opts[self.opt_of[i]]]].tolist())
                rows = self.tool_of[i]
                tools[rows] = [t in have for t in self.tool_tool[rows]]
            self._masks[key] = (cols, opts, tools)
        return self._masks[key]

    def _groups(
        self, which: np.ndarray, part: str, keep_o: np.ndarray, keep_t: np.ndarray
    ) -> tuple[list[np.ndarray], list[int]]:
        groups, truths = [], []
        for i in which:
            if part == "tool":
                rows = self.tool_of[i][keep_t[self.tool_of[i]]]
                truth = self.truth_tool[i]
            else:
                if self.want_tool[i] < 0 or TOOLS[self.want_tool[i]] != part:
                    continue
                rows = self.opt_of[i]
                rows = rows[keep_o[rows] & (self.opt_tool[rows] == TOOLS.index(part))]
                truth = self.truth_opt[i]
            if len(rows) > 1 and truth >= 0 and truth in set(rows.tolist()):
                groups.append(rows)
                truths.append(int(np.searchsorted(rows, truth)))
        return groups, truths

    def fit(self, which: np.ndarray, off: Iterable[str], l2: float | Mapping[str, float]) -> np.ndarray:
        """Weights (one per feature name) fitted on the steps `which` with the families `off` off."""
        cols, keep_o, keep_t = self.masks(off)
        w = np.zeros(len(self.names))
        for part in ("tool", *TOOLS):
            groups, truths = self._groups(which, part, keep_o, keep_t)
            if not groups:
                continue
            x_all = self.xt if part == "tool" else self.xo
            use = np.flatnonzero(cols & self.part_cols[part])
            rows = np.concatenate(groups)
            x = x_all[rows][:, use].tocsr()
            present = np.flatnonzero(np.asarray(abs(x).sum(axis=0)).ravel() > 0)
            if not len(present):
                continue
            x = x[:, present].tocsr()
            sizes = np.array([len(g) for g in groups])
            strength = float(l2) if isinstance(l2, (int, float)) else float(l2[part])
            w[use[present]] = _solve(x, sizes, np.array(truths), strength)
        return w

    def scores(self, w: np.ndarray, off: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every option row's score, every tool row's score) under weights `w` with `off` off."""
        cols, _, _ = self.masks(off)
        wc = np.where(cols, w, 0.0)
        return np.asarray(self.xo @ wc), np.asarray(self.xt @ wc)

    def log_probs(
        self, i: int, zo: np.ndarray, zt: np.ndarray, off: Iterable[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(option rows kept, log P of each) for step `i`: log P(tool) + log P(argument | tool)."""
        _, keep_o, keep_t = self.masks(off)
        rows = self.opt_of[i][keep_o[self.opt_of[i]]]
        if not len(rows):
            return rows, np.zeros(0)
        trows = self.tool_of[i][keep_t[self.tool_of[i]]]
        lt = zt[trows] - _lse(zt[trows])
        tool_lp = dict(zip(self.tool_tool[trows].tolist(), lt.tolist()))
        z = zo[rows]
        out = np.zeros(len(rows))
        tools = self.opt_tool[rows]
        for t in set(tools.tolist()):
            m = tools == t
            out[m] = z[m] - _lse(z[m]) + tool_lp.get(t, -30.0)
        return rows, out

    def score(self, which: Iterable[int], w: np.ndarray, off: Iterable[str], k: int) -> dict[str, Any]:
        """Top-1/top-k hits and the log-likelihood of the agent's actions, over steps `which`, per tool."""
        zo, zt = self.scores(w, off)
        total: dict[str, Any] = {"steps": 0, "top1": 0, "topk": 0, "ll": 0.0}
        per_tool: dict[str, dict[str, Any]] = {}
        for i in which:
            rows, lp = self.log_probs(int(i), zo, zt, off)
            order = sorted(range(len(rows)), key=lambda j: (-lp[j], j))[:k]
            picked = [int(rows[j]) for j in order]
            truth = int(self.truth_opt[i])
            hit1, hitk = bool(picked) and picked[0] == truth, truth in picked
            where = np.flatnonzero(rows == truth)
            if len(where):
                total["ll"] += max(float(lp[where[0]]), -30.0)
            tool = self.steps[i].tool
            for row in (total, per_tool.setdefault(tool, {"steps": 0, "top1": 0, "topk": 0})):
                row["steps"] += 1
                row["top1"] += hit1
                row["topk"] += hitk
        return {**total, "per_tool": dict(sorted(per_tool.items()))}

    def part_scores(
        self, which: Iterable[int], w: np.ndarray, off: Iterable[str], k: int
    ) -> dict[str, float]:
        """Held-out quality of each part (as `_ranker._part_scores`): the tool's log-likelihood, and
        each tool's in-tool top-k hits."""
        _, keep_o, keep_t = self.masks(off)
        zo, zt = self.scores(w, off)
        out = dict.fromkeys(("tool", *TOOLS), 0.0)
        for i in which:
            trows = self.tool_of[i][keep_t[self.tool_of[i]]]
            where = np.flatnonzero(trows == self.truth_tool[i])
            if len(where):
                out["tool"] += float(zt[trows][where[0]] - _lse(zt[trows]))
            if self.want_tool[i] < 0:
                continue
            rows = self.opt_of[i]
            rows = rows[keep_o[rows] & (self.opt_tool[rows] == self.want_tool[i])]
            z = zo[rows]
            order = sorted(range(len(rows)), key=lambda j: (-z[j], j))[:k]
            out[TOOLS[self.want_tool[i]]] += any(int(rows[j]) == self.truth_opt[i] for j in order)
        return out


def _solve(x: Any, sizes: np.ndarray, truths: np.ndarray, l2: float) -> np.ndarray:
    """Conditional-logit weights: rows of `x` in consecutive groups of `sizes`, `truths` the chosen
    row of each group; the negative log-likelihood plus l2/2 ||w||^2, minimised by L-BFGS."""
    from scipy.optimize import minimize

    xt = x.T.tocsr()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    seg = np.repeat(np.arange(len(sizes)), sizes)
    truth_rows = starts + truths

    def loss(v: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ v
        top = np.maximum.reduceat(z, starts)
        e = np.exp(z - top[seg])
        total = np.add.reduceat(e, starts)
        p = e / total[seg]
        value = float(np.sum(top + np.log(total)) - np.sum(z[truth_rows])) + 0.5 * l2 * float(v @ v)
        p[truth_rows] -= 1.0
        return value, xt @ p + l2 * v

    res = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return np.asarray(res.x)


def _lse(z: np.ndarray) -> float:
    top = float(np.max(z))
    return top + float(np.log(np.sum(np.exp(z - top))))


def _steps_of(design: Design, runs: set[int]) -> np.ndarray:
    return np.flatnonzero(np.isin(design.run, sorted(runs)))


def _inner_score(
    design: Design,
    which: np.ndarray,
    folds: Sequence[set[int]],
    off: Sequence[str],
    l2: Mapping[str, float],
    k: int,
) -> tuple[int, float]:
    """Inner cross-validated (top-k hits, log-likelihood) of fitting the steps `which` with `off`, `l2`."""
    hits, ll = 0, 0.0
    for held in folds:
        test = which[np.isin(design.run[which], sorted(held))]
        train = which[~np.isin(design.run[which], sorted(held))]
        row = design.score(test, design.fit(train, off, l2), off, k)
        hits, ll = hits + row["topk"], ll + row["ll"]
    return hits, ll


def _choose_l2(
    design: Design, which: np.ndarray, folds: Sequence[set[int]], off: Sequence[str], k: int
) -> dict[str, float]:
    """Per part, the strength of `L2_GRID` with the best inner score (the tool part by log-likelihood,
    each argument part by in-tool top-k hits); ties go to the stronger regularisation."""
    best: dict[str, tuple[float, float]] = {}
    for l2 in reversed(L2_GRID):
        total = dict.fromkeys(COMPONENTS, 0.0)
        for held in folds:
            test = which[np.isin(design.run[which], sorted(held))]
            train = which[~np.isin(design.run[which], sorted(held))]
            w = design.fit(train, off, l2)
            for part, value in design.part_scores(test, w, off, k).items():
                total[part] += value
        for part, value in total.items():
            if part not in best or value > best[part][1] + 1e-9:
                best[part] = (l2, value)
    return {part: best[part][0] for part in COMPONENTS}


@dataclass(frozen=True)
class Fitted:
    """A speculator fitted by `fit_speculator`: its weights and every choice made to get them."""

    weights: dict[str, float]
    """The feature weights (the `Ranker`'s), rounded to 6 decimals, zeros left out."""
    l2: dict[str, float]
    """The L2 strength of each part, chosen by inner cross-validation."""
    off: tuple[str, ...] = ()
    """The rule families switched off by inner cross-validation (see `FAMILIES`)."""
    trace: list[dict[str, Any]] = field(default_factory=list)
    """Each family tried, with the inner top-k hits with and without it."""

    def digest(self) -> str:
        """A short hash of the weights and choices: equal digests, equal speculators."""
        blob = json.dumps([sorted(self.weights.items()), sorted(self.l2.items()), self.off])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fit_speculator(
    design: Design,
    which: Sequence[int] | np.ndarray,
    groups: Mapping[int, str],
    k: int = 3,
    inner_folds: int = 4,
    seed: int = 0,
    select: bool = True,
) -> Fitted:
    """Fit everything the speculator learns from the steps `which` of `design` (and nothing else).

    `groups` maps each step's run to its question (`question_key`): the inner
    folds are grouped by it. The L2 strengths are chosen first with every rule
    family on; then, with `select`, each family in `FAMILIES` order is switched
    off when the inner top-k hits do not fall without it (hits tied: off
    unless the log-likelihood falls); the L2 strengths are chosen again for
    what is left, and the weights fitted on all the steps `which`.
    """
    which = np.asarray(sorted(int(i) for i in which))
    runs = sorted({int(r) for r in design.run[which]})
    keys = [groups[r] for r in runs]
    n = min(inner_folds, len(set(keys)))
    folds = [{runs[i] for i in fold} for fold in group_folds(keys, n, seed)]
    off: list[str] = []
    l2 = _choose_l2(design, which, folds, off, k)
    trace: list[dict[str, Any]] = []
    if select:
        base = _inner_score(design, which, folds, off, l2, k)
        for family in FAMILIES:
            trial = _inner_score(design, which, folds, [*off, family], l2, k)
            drop = trial[0] > base[0] or (trial[0] == base[0] and trial[1] >= base[1] - 1e-6)
            trace.append({"family": family, "with": base[0], "without": trial[0], "dropped": drop})
            if drop:
                off.append(family)
                base = trial
        if off:
            l2 = _choose_l2(design, which, folds, off, k)
    w = design.fit(which, off, l2)
    weights = {n: round(float(v), 6) for n, v in zip(design.names, w) if abs(v) > 1e-9}
    return Fitted(weights, l2, tuple(off), trace)


def _rates(top1: int, topk: int, n: int) -> dict[str, float | None]:
    return {
        "top1_acc": round(top1 / n, 4) if n else None,
        "topk_acc": round(topk / n, 4) if n else None,
    }


def _vector(design: Design, weights: Mapping[str, float]) -> np.ndarray:
    return np.array([weights.get(n, 0.0) for n in design.names])


def _counts(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "steps": row["steps"],
        **_rates(row["top1"], row["topk"], row["steps"]),
        "per_tool": {
            t: {**v, **_rates(v["top1"], v["topk"], v["steps"])} for t, v in row["per_tool"].items()
        },
    }


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def in_sample(
    runs: Sequence[Mapping[str, Any]], k: int = 3, seed: int = 0, select: bool = True
) -> tuple[dict[str, Any], Fitted]:
    """The speculator fitted on all `runs` (the same procedure as each fold's) and scored on them:
    (the figures, the fitted speculator)."""
    design = Design(featurize(runs))
    groups = {r: question_key(str(run["question"])) for r, run in enumerate(runs)}
    everything = np.arange(len(design.steps))
    fitted = fit_speculator(design, everything, groups, k, seed=seed, select=select)
    row = design.score(everything, _vector(design, fitted.weights), fitted.off, k)
    return {**_counts(row), "l2": fitted.l2, "off": list(fitted.off)}, fitted


def nested_cv(
    runs: Sequence[Mapping[str, Any]],
    n_folds: int = 5,
    repeats: int = 3,
    k: int = 3,
    seed: int = 0,
    select: bool = True,
) -> dict[str, Any]:
    """Nested cross-validation grouped by question, repeated over `repeats` shuffles (seeds
    `seed`..`seed+repeats-1`).

    Each repeat cuts the questions into `n_folds` folds; for each fold,
    `fit_speculator` fits on the other folds' runs alone (its own inner,
    grouped folds choose L2 and the rule families) and the fold is scored.
    A repeat's figure is pooled over its folds (every step scored once);
    the result gives the mean and sample sd over repeats, per tool too, the
    sd over all folds, and each fold's questions, choices and weights digest.
    """
    if repeats < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeats}")
    design = Design(featurize(runs))
    groups = {r: question_key(str(run["question"])) for r, run in enumerate(runs)}
    keys = [groups[r] for r in range(len(runs))]
    repeat_rows: list[dict[str, Any]] = []
    fold_rows: list[dict[str, Any]] = []
    for rep in range(repeats):
        folds = group_folds(keys, n_folds, seed + rep)
        totals = {"steps": 0, "top1": 0, "topk": 0}
        per_tool: dict[str, dict[str, int]] = {}
        for f, fold in enumerate(folds):
            test = _steps_of(design, set(fold))
            train = np.setdiff1d(np.arange(len(design.steps)), test)
            fitted = fit_speculator(design, train, groups, k, seed=seed + rep * 1000 + f + 1, select=select)
            row = design.score(test, _vector(design, fitted.weights), fitted.off, k)
            for key in totals:
                totals[key] += row[key]
            for t, v in row["per_tool"].items():
                acc = per_tool.setdefault(t, {"steps": 0, "top1": 0, "topk": 0})
                for key in acc:
                    acc[key] += v[key]
            fold_rows.append(
                {
                    "repeat": rep,
                    "fold": f,
                    "runs": sorted(fold),
                    "steps": row["steps"],
                    **_rates(row["top1"], row["topk"], row["steps"]),
                    "l2": fitted.l2,
                    "off": list(fitted.off),
                    "digest": fitted.digest(),
                }
            )
        repeat_rows.append(
            {
                "seed": seed + rep,
                **_rates(totals["top1"], totals["topk"], totals["steps"]),
                "per_tool": {
                    t: {**v, **_rates(v["top1"], v["topk"], v["steps"])} for t, v in per_tool.items()
                },
            }
        )
    tools = sorted({t for r in repeat_rows for t in r["per_tool"]})
    off_counts: dict[str, int] = {}
    for row in fold_rows:
        for fam in row["off"]:
            off_counts[fam] = off_counts.get(fam, 0) + 1
    return {
        "folds": n_folds,
        "repeats": repeats,
        "seed": seed,
        "k": k,
        "runs": len(runs),
        "questions": len(set(keys)),
        "steps": len(design.steps),
        "select_families": select,
        "top1_acc": _mean_sd([r["top1_acc"] for r in repeat_rows]),
        "topk_acc": _mean_sd([r["topk_acc"] for r in repeat_rows]),
        "fold_topk_sd": round(statistics.stdev([r["topk_acc"] for r in fold_rows]), 4)
        if len(fold_rows) > 1
        else 0.0,
        "per_tool": {
            t: {
                "steps": repeat_rows[0]["per_tool"].get(t, {}).get("steps", 0),
                "top1_acc": _mean_sd(
                    [r["per_tool"][t]["top1_acc"] for r in repeat_rows if t in r["per_tool"]]
                ),
                "topk_acc": _mean_sd(
                    [r["per_tool"][t]["topk_acc"] for r in repeat_rows if t in r["per_tool"]]
                ),
            }
            for t in tools
        },
        "families_off": dict(sorted(off_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "per_repeat": [{key: r[key] for key in ("seed", "top1_acc", "topk_acc")} for r in repeat_rows],
        "per_fold": fold_rows,
    }
