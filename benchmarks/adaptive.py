"""Adaptive speculation against static k, measured (issue 18).

An agent loop: one slow node `act` called once per step, T steps (a self-loop, so a node's
estimates learn from step to step). Actor latency ~ Exp(mean 100 ms), speculator ~ Exp at 10x the
speed; the speculator returns three guesses and the right one is its first with probability p
(the other two are always wrong). A wrong guess's branch launches the next step's call with the
wrong input, which the main run never adopts: a wasted call. Workloads: p0, p0.3, p0.8 (20 steps)
and drift (p = 0.9, 0.1, 0.9 for 20 steps each: 60 steps). Each workload is one run of its
steps, so the adaptive estimates carry over from step to step; every repeat compiles a fresh
graph, so every repeat pays for learning from scratch.

Policies: static_k1, static_k2, static_k3 (`SpeculationPolicy(k=...)`), and adaptive
(`SpeculationPolicy(k=3, adaptive=True)`: k is at most 3, chosen each step). Per policy:
ratio = speculative / sequential wall clock on the same draws (median over repeats),
wasted_per_step = early actor calls never adopted, per step (mean over repeats). "ideal_*" is a
zero-overhead simulation of the same policy (the library's own decision rule for adaptive) on the
same draws, "expected_*" that simulation averaged over 400 draws: no timing noise, and
"expected_warm_*" the same after one earlier run of the workload on the same estimates (what a
server that has seen the node before gets).

    python benchmarks/adaptive.py --quick
    python benchmarks/adaptive.py --json --plot docs/adaptive_frontier.png
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import median, parser  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from langgraph_speculative import AdaptivePolicy, SpeculationPolicy, speculate  # noqa: E402
from langgraph_speculative import _estimate as est  # noqa: E402

WRONG = 10_000  # a wrong guess of rank r at step t is the value WRONG * r + t
RANKS = 3
NODE = "act"
WORKLOADS: dict[str, list[float]] = {
    "p0": [0.0] * 20,
    "p0.3": [0.3] * 20,
    "p0.8": [0.8] * 20,
    "drift": [0.9] * 20 + [0.1] * 20 + [0.9] * 20,
}
STATIC = {"static_k1": 1, "static_k2": 2, "static_k3": 3}
POLICIES = (*STATIC, "adaptive")
SWEEP = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)  # cost weights of the plotted frontier


class S(TypedDict):
    t: int
    v: int


@dataclass
class Draws:
    """One workload's random draws, shared by the sequential run and every policy."""

    actor: list[float]  # the step's call with the right input
    wrong: list[list[float]]  # the step's call with the wrong input of rank r (index r - 1)
    spec: list[float]
    right: list[bool]

    @classmethod
    def make(cls, seed: int, ps: list[float], mean: float, speed: float = 10.0) -> Draws:
        rng = random.Random(seed)
        n = len(ps)
        return cls(
            actor=[rng.expovariate(1 / mean) for _ in range(n)],
            wrong=[[rng.expovariate(1 / mean) for _ in range(RANKS)] for _ in range(n)],
            spec=[rng.expovariate(speed / mean) for _ in range(n)],
            right=[rng.random() < p for p in ps],
        )

    def latency(self, t: int, v: int) -> float:
        return self.actor[t] if v == t else self.wrong[t][v // WRONG - 1]


def build(d: Draws) -> StateGraph:  # type: ignore[type-arg]
    steps = len(d.actor)

    async def act(state: S) -> dict[str, int]:
        await asyncio.sleep(d.latency(state["t"], state["v"]))
        return {"t": state["t"] + 1, "v": state["t"] + 1}

    b = StateGraph(S)
    b.add_node(NODE, act)
    b.add_edge(START, NODE)
    b.add_conditional_edges(NODE, lambda s: NODE if s["t"] < steps else END, [NODE, END])
    return b


def speculator(d: Draws) -> Any:
    async def guess(state: S) -> list[dict[str, int]]:
        t = state["t"]
        await asyncio.sleep(d.spec[t])
        first = t + 1 if d.right[t] else WRONG + t + 1
        return [{"t": t + 1, "v": first}, *({"t": t + 1, "v": WRONG * r + t + 1} for r in (2, 3))]

    return guess


def policy(name: str, cost_weight: float = 0.1, seed: int = 0) -> SpeculationPolicy:
    if name in STATIC:
        return SpeculationPolicy(k=STATIC[name], max_inflight=64)
    return SpeculationPolicy(
        k=RANKS, max_inflight=64, adaptive=AdaptivePolicy(cost_weight=cost_weight, seed=seed)
    )


# ---------------------------------------------------------------------- the zero-overhead simulation


def simulate(
    d: Draws, name: str, cost_weight: float = 0.1, seed: int = 0, state: Any = None
) -> dict[str, Any]:
    """The policy on the same draws with zero overhead (depth 1): the main run's time, and the
    wasted and speculator calls. The adaptive policy runs the library's own estimator and rule;
    `state` (the "state" of an earlier result) continues from its estimates."""
    p = policy(name, cost_weight, seed)
    adaptive = p.adaptive if isinstance(p.adaptive, AdaptivePolicy) else None
    e, rng = state if state is not None else (est.Estimates(), random.Random(f"{seed}:{NODE}"))
    main = start = 0.0
    wasted = spec_calls = 0
    for t in range(len(d.actor)):
        end = start + d.actor[t]
        nxt = None
        if end > main:  # the call is still running when the main run reaches it: it speculates
            mode = "on" if adaptive is None else est.gate(e, adaptive, rng, k=RANKS)
            if mode == "off":
                est.observe(e, est.Outcome(actor_s=d.actor[t]), adaptive)  # type: ignore[arg-type]
            else:
                spec_calls += 1
                arrived = main + d.spec[t]
                if arrived < end:
                    confs = [None] * RANKS
                    if adaptive is None:
                        ranks = list(range(1, p.k + 1))
                    else:
                        ranks = est.choose(e, confs, adaptive, limit=RANKS)
                    for r in ranks:
                        if r == 1 and d.right[t]:
                            nxt = arrived
                        else:
                            wasted += 1
                    hits = tuple(r == 1 and d.right[t] for r in range(1, RANKS + 1))
                    outcome = est.Outcome(
                        hits, tuple(confs), d.actor[t], d.spec[t], end - arrived, 0.0 if ranks else None
                    )
                else:
                    outcome = est.Outcome(actor_s=d.actor[t], speculator_s=end - main, lead_s=0.0)
                if adaptive is not None:
                    est.observe(e, outcome, adaptive)
        elif adaptive is not None:
            est.observe(e, est.Outcome(actor_s=d.actor[t]), adaptive)
        main = max(main, end)
        start = nxt if nxt is not None else main
    steps = len(d.actor)
    return {
        "ratio": main / sum(d.actor),
        "wasted_per_step": wasted / steps,
        "speculator_per_step": spec_calls / steps,
        "state": (e, rng),
    }


def expected(
    ps: list[float], name: str, cost_weight: float = 0.1, draws: int = 400, warm: bool = False
) -> dict[str, float]:
    """The simulation averaged over many draws: E[T_spec] / E[T_seq] and mean waste. `warm`:
    each measured run follows one earlier run of the workload (other draws) on the same
    estimates, as on a server that has seen a request before."""
    num = den = waste = spec = 0.0
    for i in range(draws):
        d = Draws.make(50_000 + i, ps, 1.0)
        state = simulate(Draws.make(90_000 + i, ps, 1.0), name, cost_weight)["state"] if warm else None
        s = simulate(d, name, cost_weight, state=state)
        num, den = num + s["ratio"] * sum(d.actor), den + sum(d.actor)
        waste, spec = waste + s["wasted_per_step"], spec + s["speculator_per_step"]
    return {"ratio": num / den, "wasted_per_step": waste / draws, "speculator_per_step": spec / draws}


# ---------------------------------------------------------------------- measured


async def timed(graph: Any, steps: int) -> float:
    gc.collect()  # each run starts clean: no garbage of earlier runs collected in it
    t0 = time.perf_counter()
    out = await graph.ainvoke({"t": 0, "v": 0}, {"recursion_limit": steps + 10})
    elapsed = time.perf_counter() - t0
    assert out == {"t": steps, "v": steps}, out
    return elapsed


async def one(d: Draws, order: list[str]) -> dict[str, dict[str, float]]:
    steps = len(d.actor)
    t_seq = await timed(build(d).compile(), steps)
    out = {}
    for name in order:
        graph = speculate(build(d), {NODE: speculator(d)}, policy=policy(name)).compile()
        t_spec = await timed(graph, steps)
        report = graph.last_report
        assert report is not None
        out[name] = {
            "ratio": t_spec / t_seq,
            "wasted_per_step": report.wasted / steps,
            "speculator_per_step": report.summary()["speculator_calls"] / steps,
        }
    return out


def run(args: Any) -> tuple[dict[str, Any], dict[str, list[Draws]]]:
    """Every workload measured and simulated: its figures, and the draws they were measured on."""
    mean, reps = (0.05, 3) if args.quick else (0.1, args.repeats)
    result: dict[str, Any] = {}
    used: dict[str, list[Draws]] = {}
    for wi, (w, ps) in enumerate(WORKLOADS.items()):
        used[w] = []
        measured: dict[str, list[dict[str, float]]] = {n: [] for n in POLICIES}
        ideal: dict[str, list[dict[str, float]]] = {n: [] for n in POLICIES}
        for r in range(reps):
            d = Draws.make(args.seed * 1000 + wi * 100 + r, ps, mean)
            used[w].append(d)
            order = list(POLICIES) if r % 2 == 0 else list(reversed(POLICIES))  # no policy always first
            for name, m in asyncio.run(one(d, order)).items():
                measured[name].append(m)
                ideal[name].append(simulate(d, name))
        result[w] = {}
        for name in POLICIES:
            exp = expected(ps, name, draws=100 if args.quick else 400)
            warm = expected(ps, name, draws=100 if args.quick else 400, warm=True)
            result[w][name] = {
                "ratio": round(median([m["ratio"] for m in measured[name]]), 4),
                "wasted_per_step": round(sum(m["wasted_per_step"] for m in measured[name]) / reps, 4),
                "speculator_per_step": round(sum(m["speculator_per_step"] for m in measured[name]) / reps, 4),
                "ideal_ratio": round(median([m["ratio"] for m in ideal[name]]), 4),
                "ideal_wasted_per_step": round(sum(m["wasted_per_step"] for m in ideal[name]) / reps, 4),
                "expected_ratio": round(exp["ratio"], 4),
                "expected_wasted_per_step": round(exp["wasted_per_step"], 4),
                "expected_warm_ratio": round(warm["ratio"], 4),
                "expected_warm_wasted_per_step": round(warm["wasted_per_step"], 4),
            }
    return result, used


def checks(workloads: dict[str, Any], prefix: str = "") -> dict[str, bool]:
    """The issue's acceptance criteria, on the measured figures (prefix "ideal_" or "expected_":
    on the simulated ones)."""
    out = {}
    for w, row in workloads.items():
        best = min(row[n][prefix + "ratio"] for n in STATIC)
        ad = row["adaptive"]
        out[f"{w}_ratio_within_0.03_of_best_static"] = ad[prefix + "ratio"] <= best + 0.03
        if w == "p0":
            out["p0_ratio_at_most_1.01"] = ad[prefix + "ratio"] <= 1.01
            out["p0_wasted_at_most_0.1_per_step"] = ad[prefix + "wasted_per_step"] <= 0.1
        else:
            k3 = row["static_k3"][prefix + "wasted_per_step"]
            out[f"{w}_wasted_at_most_60pct_of_k3"] = ad[prefix + "wasted_per_step"] <= 0.6 * k3
    return out


def _on(draws: list[Draws], name: str, cost_weight: float = 0.1) -> tuple[float, float]:
    """(wasted per step, time saved) of the simulated policy on `draws`: mean and 1 - median."""
    sims = [simulate(d, name, cost_weight) for d in draws]
    waste = sum(s["wasted_per_step"] for s in sims) / len(sims)
    return waste, 1 - median([s["ratio"] for s in sims])


def plot(path: str, workloads: dict[str, Any], draws: dict[str, list[Draws]]) -> None:
    """Time saved against wasted calls per step, one panel per workload: the measured policies,
    and on the same draws the zero-overhead frontier of the adaptive policy over cost weights
    (and the static policies' points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 4.3))
    colors = {"static_k1": "#9ecae1", "static_k2": "#4292c6", "static_k3": "#08519c", "adaptive": "#d62728"}
    for ax, (w, row) in zip(axes, workloads.items()):
        static = [_on(draws[w], n) for n in STATIC]
        ax.plot(*zip(*static), "s--", color="0.6", label="static k=1, 2, 3: simulated on the same draws")
        sweep = [_on(draws[w], "adaptive", cw) for cw in SWEEP]
        ax.plot(*zip(*sweep), "o-", color="#fb6a4a", alpha=0.7, label="adaptive by cost_weight: simulated")
        ax.sweep = sweep  # type: ignore[attr-defined]  # labelled once the layout is final
        for name, marker in zip(POLICIES, ("v", "^", "D", "*")):
            m = row[name]
            ax.plot(
                m["wasted_per_step"],
                1 - m["ratio"],
                marker,
                color=colors[name],
                markersize=13 if name == "adaptive" else 8,
                markeredgecolor="black",
                markeredgewidth=0.5,
                label=f"{name}: measured" + (" (cost_weight 0.1)" if name == "adaptive" else ""),
            )
        ax.set_title(f"{w} ({len(WORKLOADS[w])} steps)", fontsize=10)
        ax.set_xlabel("wasted actor calls per step")
        ax.grid(alpha=0.3)
        ax.set_ylabel("wall-clock saved (1 - ratio)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        "Adaptive speculation: time saved against waste, fresh graph per run (benchmarks/adaptive.py)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    for ax in axes:
        _label_cost_weights(fig, ax, ax.sweep)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_cost_weights(fig: Any, ax: Any, sweep: list[tuple[float, float]]) -> None:
    """Label the simulated adaptive points with their cost_weight: points that fall within a few
    pixels of each other share one label, and each label goes where it overlaps no other label,
    no marker, and stays inside the panel."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    screen = [ax.transData.transform(p) for p in sweep]
    groups: list[list[int]] = []
    for i, (px, py) in enumerate(screen):
        for g in groups:
            gx, gy = screen[g[0]]
            if abs(px - gx) < 14 and abs(py - gy) < 14:
                g.append(i)
                break
        else:
            groups.append([i])
    markers = [(x, y) for line in ax.lines for x, y in ax.transData.transform(line.get_xydata())]
    box = ax.get_window_extent(renderer)
    offsets = [(dx, dy) for dy in (-14, 8, -28, 22, -42, -56) for dx in (8, -8)]
    placed: list[Any] = []
    for g in groups:
        names = ", ".join(f"{SWEEP[i]:g}" for i in g)
        text = f"cost_weight {names}"
        best: tuple[float, int, int] | None = None
        for dx, dy in offsets:  # the first clear place, else the least crowded one
            ann = ax.annotate(
                text, sweep[g[0]], xytext=(dx, dy), textcoords="offset points", fontsize=7,
                ha="left" if dx > 0 else "right", color="#a50f15",
                arrowprops={"arrowstyle": "-", "color": "#fb6a4a", "lw": 0.6},
            )  # fmt: skip
            ann.update_positions(renderer)
            bb = Text.get_window_extent(ann, renderer).expanded(1.05, 1.15)  # the text, not its leader line
            ann.remove()
            outside = not (box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1)
            crowd = 10 * outside + 5 * sum(bb.overlaps(p) for p in placed)
            crowd += sum(bb.contains(mx, my) for mx, my in markers)
            if best is None or crowd < best[0]:
                best = (crowd, dx, dy)
            if crowd == 0:
                break
        assert best is not None
        _, dx, dy = best
        ann = ax.annotate(
            text, sweep[g[0]], xytext=(dx, dy), textcoords="offset points", fontsize=7,
            ha="left" if dx > 0 else "right", color="#a50f15",
            arrowprops={"arrowstyle": "-", "color": "#fb6a4a", "lw": 0.6},
        )  # fmt: skip
        ann.update_positions(renderer)
        placed.append(Text.get_window_extent(ann, renderer))


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--repeats", type=int, default=7, help="draws per workload (default 7)")
    p.add_argument(
        "--plot", metavar="FILE", help="draw the frontier of time saved against waste to FILE (PNG)"
    )
    args = p.parse_args()
    workloads, draws = run(args)
    out = {
        "workloads": workloads,
        "checks": checks(workloads),
        "checks_expected": checks(workloads, "expected_"),
        "checks_expected_warm": checks(workloads, "expected_warm_"),
        "config": {
            "mean_actor_s": 0.05 if args.quick else 0.1,
            "speculator_speed": 10,
            "repeats": 3 if args.quick else args.repeats,
            "runs": "each workload is one run of its steps (fresh graph per repeat: learning included)",
        },
    }
    if args.plot:
        plot(args.plot, workloads, draws)
    if args.json:
        print(json.dumps(out))
        return
    head = ("ratio", "ideal", "expected", "wasted/step", "ideal", "spec/step")
    print(f"{'workload':<8} {'policy':<10} " + " ".join(f"{h:>11}" for h in head))
    for w, row in workloads.items():
        for name, m in row.items():
            cols = ("ratio", "ideal_ratio", "expected_ratio", "wasted_per_step", "ideal_wasted_per_step")
            values = [m[c] for c in cols] + [m["speculator_per_step"]]
            print(f"{w:<8} {name:<10} " + " ".join(f"{v:11.3f}" for v in values))
    for k, v in out["checks"].items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
