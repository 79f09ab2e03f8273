"""The router workload side by side (issue 29): plain LangGraph, ours, NVIDIA's `nvidia-nat-app`.

A router node (0.3 s) picks one of three targets (0.3 s each), then a final node (0.1 s); 30
inputs, each its own `ainvoke` on its own thread, async nodes (`asyncio.sleep`), InMemorySaver.
The router writes only `route`; a target reads only `query` and writes `result`; `final` reads
`result`. For each hit rate p in {0, 0.33, 0.67, 1} (a speculator whose top guess is right with
probability p, seeded per input; its other guesses are the two remaining routes, so `k=3` always
holds the right one) these configurations run in one process, in turns (the order rotates each
repeat), with the same inputs and draws:

- `plain`: the graph compiled as is.
- `k1`, `k3`: `speculate(builder, {"router": speculator}, policy=SpeculationPolicy(k=...))`.
- `nat`: NVIDIA's released primitives (`nat_app.speculation.plan_speculation` finds the router's
  branches from the graph's edges; `nat_app.executors.run_speculation` launches the router and
  every target at once on the router's input, cancels the unchosen targets and returns the chosen
  one's result) with LangGraph glue: the router node runs `run_speculation`, keeps the chosen
  target's result for its thread, and the target node hands it over instead of running again.
  No speculator; the same at every p. Skipped with a note when `nat_app` is not installed
  (`pip install -e .[bench]`).
- `prefetch`, `prefetch_k3`: `speculate(builder, {}, prefetch={"router"}, keys=...)` (every route
  launched while the router runs, no speculator) and the same with the speculator at `k=3`.
  Reported as not available while `speculate` takes no `prefetch=`.
- `prefetch_adaptive`: `prefetch` with `SpeculationPolicy(k=3, adaptive=True)`: it learns, over
  the warm-up input and the repeats, which routes' early calls pay. With `--skew 0.9` (the router
  picks the first target 90% of the time, else one of the other two; default: a third each) it
  stops launching the other two and pays the router's wait on the inputs that go there.

Reported per configuration and p: `ratio` (median wall-clock of the 30 inputs over repeats,
divided by plain's median at the same p), `ms_per_input_vs_nat` (how far behind nat per input;
negative is ahead), the calls each node made (`router`, the three targets summed and `final`:
every call started counts, cancelled or not, as a paid model call would; the most of any repeat)
and the extra calls beyond plain's, our reports' `wasted` count, and `lossless` (every input's
output equal to plain's, in every repeat). The summary checks issue 29's targets: `final` runs as
often as plain at p=1, `prefetch` <= nat + 0.01 and `k3` <= nat + 0.03 at p=1.

    python benchmarks/router.py --quick
    python benchmarks/router.py --json                       # 30 inputs, 3 repeats
    python benchmarks/router.py --configs plain,k3,nat --p 1 --json
    python benchmarks/router.py --configs plain,nat,prefetch,prefetch_adaptive --p 1 --skew 0.9 --json
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import random
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, median, parser  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from langgraph_speculative import SpeculationPolicy, speculate  # noqa: E402

TARGETS = ("billing", "shipping", "returns")
HIT_RATES = (0.0, 0.33, 0.67, 1.0)
CONFIGS = ("plain", "k1", "k3", "nat", "prefetch", "prefetch_k3", "prefetch_adaptive")

Node = Callable[..., Awaitable[dict[str, Any]]]


class S(TypedDict, total=False):
    query: int
    route: str
    result: str
    answer: str


@dataclass(frozen=True)
class Workload:
    """Latencies (seconds) and the draws every configuration shares."""

    inputs: int
    router_s: float
    target_s: float
    final_s: float
    speculator_s: float
    seed: int
    skew: float | None = None

    def route(self, query: int) -> str:
        """The router's real decision for an input (what plain LangGraph commits): one of the
        three at random, or with `skew` the first with that chance and else one of the others."""
        rnd = random.Random(f"route:{self.seed}:{query}")
        if self.skew is None:
            return TARGETS[rnd.randrange(3)]
        return TARGETS[0] if rnd.random() < self.skew else TARGETS[1 + rnd.randrange(2)]

    def top_right(self, query: int, p: float) -> bool:
        """Whether the speculator's top guess is right for this input at hit rate p."""
        return random.Random(f"hit:{self.seed}:{query}").random() < p


@dataclass
class Calls:
    """How many times each node's own function started (cancelled calls included)."""

    counts: Counter[str] = field(default_factory=Counter)

    def count(self, name: str) -> None:
        self.counts[name] += 1


def node_functions(w: Workload, calls: Calls) -> dict[str, Node]:
    """The workload's node functions, each counting its calls."""

    async def router(state: S) -> dict[str, Any]:
        calls.count("router")
        await asyncio.sleep(w.router_s)
        return {"route": w.route(state["query"])}

    def target(name: str) -> Node:
        async def run(state: S) -> dict[str, Any]:
            calls.count(name)
            await asyncio.sleep(w.target_s)
            return {"result": f"{name} answer to query {state['query']}"}

        return run

    async def final(state: S) -> dict[str, Any]:
        calls.count("final")
        await asyncio.sleep(w.final_s)
        return {"answer": state["result"].upper()}

    return {"router": router, **{t: target(t) for t in TARGETS}, "final": final}


def build(fns: dict[str, Node]) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    for name, fn in fns.items():
        b.add_node(name, fn)  # type: ignore[call-overload]
    b.add_edge(START, "router")
    b.add_conditional_edges("router", lambda s: s["route"], list(TARGETS))
    for t in TARGETS:
        b.add_edge(t, "final")
    b.add_edge("final", END)
    return b


def make_speculator(w: Workload, p: float) -> Callable[[S], Awaitable[list[dict[str, Any]]]]:
    """Guesses of the router's update, best first: the top one right with probability p."""

    async def speculator(state: S) -> list[dict[str, Any]]:
        await asyncio.sleep(w.speculator_s)
        truth = w.route(state["query"])
        others = [t for t in TARGETS if t != truth]
        order = [truth, *others] if w.top_right(state["query"], p) else [others[0], truth, others[1]]
        return [{"route": r} for r in order]

    return speculator


def query_key(state: Any) -> Any:
    """What a target reads: the adoption key `prefetch` matches on."""
    return state["query"]


def prefetch_supported() -> bool:
    return "prefetch" in inspect.signature(speculate).parameters


# ---------------------------------------------------------------------------------------------
# NVIDIA nvidia-nat-app glue: launch every route at once with the router, keep the chosen one.
# ---------------------------------------------------------------------------------------------


def nat_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("nvidia-nat-app")
    except Exception:
        return None


def nat_graph(fns: dict[str, Node]) -> StateGraph:  # type: ignore[type-arg]
    """The same graph, its router node running nvidia-nat-app's `run_speculation`.

    The plan comes from `plan_speculation` on the graph's own edges (the router's conditional
    edges are its branches, `final` the merge node). The router node launches the router and
    every planned target on its input state, waits for the decision, lets `run_speculation`
    cancel the unchosen targets and collect the chosen one, and keeps that result for its thread;
    the chosen target's node then returns it instead of running its function again.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nat_app warns that it is experimental at import
        from nat_app.executors import ExecutionState, run_speculation
        from nat_app.speculation import plan_speculation

    edges = [("router", t) for t in TARGETS] + [(t, "final") for t in TARGETS]
    plans = plan_speculation(
        dict(fns),
        edges,
        conditional_edges={"router": {t: t for t in TARGETS}},  # type: ignore[arg-type]
    )
    (plan,) = [p for p in plans if p.decision_node == "router"]
    kept: dict[tuple[str, str], dict[str, Any]] = {}  # (thread, target) -> the chosen target's result

    def thread(config: RunnableConfig) -> str:
        return str(config["configurable"]["thread_id"])

    async def router(state: S, config: RunnableConfig) -> dict[str, Any]:
        async def run_node(name: str) -> dict[str, Any]:
            return await fns[name](dict(state))

        outcome = await run_speculation(
            plan, ExecutionState(), run_node=run_node, get_decision=lambda update: update["route"]
        )
        for name, result in outcome.chosen_results.items():
            kept[(thread(config), name)] = result
        return outcome.decision_result  # type: ignore[no-any-return]

    def target(name: str) -> Node:
        async def run(state: S, config: RunnableConfig) -> dict[str, Any]:
            early = kept.pop((thread(config), name), None)
            return early if early is not None else await fns[name](state)

        return run

    return build({**fns, "router": router, **{t: target(t) for t in TARGETS}})


# ---------------------------------------------------------------------------------------------


@dataclass
class Config:
    graph: Any
    calls: Calls
    ours: bool


def make_config(name: str, w: Workload, p: float) -> Config | str:
    """A compiled graph for a configuration, or why it is not available."""
    calls = Calls()
    fns = node_functions(w, calls)
    saver = InMemorySaver()
    if name == "plain":
        return Config(build(fns).compile(checkpointer=saver), calls, ours=False)
    if name in ("k1", "k3"):
        g = speculate(build(fns), {"router": make_speculator(w, p)}, policy=SpeculationPolicy(k=int(name[1])))
        return Config(g.compile(checkpointer=saver), calls, ours=True)
    if name == "nat":
        if nat_version() is None:
            return "not installed (pip install -e .[bench])"
        return Config(nat_graph(fns).compile(checkpointer=saver), calls, ours=False)
    if name in ("prefetch", "prefetch_k3", "prefetch_adaptive"):
        if not prefetch_supported():
            return "not available (speculate() takes no prefetch= yet)"
        spec = {"router": make_speculator(w, p)} if name == "prefetch_k3" else {}
        g = speculate(  # type: ignore[call-overload]
            build(fns),
            spec,
            prefetch={"router"},
            keys={t: query_key for t in TARGETS},
            policy=SpeculationPolicy(k=3, adaptive=name == "prefetch_adaptive"),
        )
        return Config(g.compile(checkpointer=saver), calls, ours=True)
    raise ValueError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)}")


@dataclass
class Batch:
    seconds: float
    outputs: list[Any]
    calls: Counter[str]
    wasted: int


async def run_batch(cfg: Config, w: Workload) -> Batch:
    """The inputs one after another (each its own thread); wall-clock of the whole batch."""
    cfg.calls.counts.clear()
    wasted = 0
    outputs = []
    gc.collect()  # each batch starts clean: no garbage of an earlier batch collected in it
    t0 = time.perf_counter()
    for q in range(w.inputs):
        out = await cfg.graph.ainvoke({"query": q}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        outputs.append(out)
        if cfg.ours:
            report = cfg.graph.last_report
            wasted += report.wasted if report is not None else 0
    seconds = time.perf_counter() - t0
    await asyncio.sleep(max(w.target_s, w.router_s))  # cancelled leftovers settle outside the clock
    return Batch(seconds, outputs, Counter(cfg.calls.counts), wasted)


def main() -> None:
    ap = parser(__doc__ or "")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per point (default 3, quick 2)")
    ap.add_argument("--inputs", type=int, default=None, help="inputs per batch (default 30, quick 6)")
    ap.add_argument("--scale", type=float, default=None, help="latency multiplier (default 1, quick 0.2)")
    ap.add_argument("--spec-latency", type=float, default=0.03, help="speculator latency at scale 1 (s)")
    ap.add_argument(
        "--skew",
        type=float,
        default=None,
        help="the router picks the first target with this chance, else one of the others (default: "
        "each a third)",
    )
    ap.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS)
    )
    ap.add_argument("--p", default=None, help="comma-separated hit rates (default 0,0.33,0.67,1)")
    args = ap.parse_args()
    scale = args.scale if args.scale is not None else (0.2 if args.quick else 1.0)
    w = Workload(
        inputs=args.inputs or (6 if args.quick else 30),
        router_s=0.3 * scale,
        target_s=0.3 * scale,
        final_s=0.1 * scale,
        speculator_s=args.spec_latency * scale,
        seed=args.seed,
        skew=args.skew,
    )
    reps = args.repeats or (2 if args.quick else 3)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if "plain" not in names:
        names.insert(0, "plain")
    hit_rates = tuple(float(x) for x in args.p.split(",")) if args.p else HIT_RATES
    rows, notes = asyncio.run(measure(w, names, hit_rates, reps))
    extra = {
        "inputs": w.inputs,
        "router_s": round(w.router_s, 4),
        "target_s": round(w.target_s, 4),
        "final_s": round(w.final_s, 4),
        "speculator_s": round(w.speculator_s, 4),
        "skew": w.skew,
        "repeats": reps,
        "nvidia_nat_app": nat_version() or "not installed",
        "prefetch": "available" if prefetch_supported() else "not available",
        **notes,
        **checks(rows),
    }
    emit(
        rows,
        [
            "p",
            "config",
            "ratio",
            "ms_per_input_vs_nat",
            "router",
            "targets",
            "final",
            "extra_calls",
            "wasted",
            "lossless",
        ],
        args.json,
        extra,
    )


async def measure(
    w: Workload, names: list[str], hit_rates: tuple[float, ...], reps: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rows: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for p in hit_rates:
        configs: dict[str, Config] = {}
        for name in names:
            made = make_config(name, w, p)
            if isinstance(made, str):
                notes[f"{name}_note"] = made
            else:
                configs[name] = made
        for cfg in configs.values():  # warm up: imports, first compile of each path
            await cfg.graph.ainvoke({"query": -1}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        await asyncio.sleep(max(w.target_s, w.router_s))
        batches: dict[str, list[Batch]] = {n: [] for n in configs}
        order = list(configs)
        for r in range(reps):
            for name in order[r % len(order) :] + order[: r % len(order)]:  # rotate who goes first
                batches[name].append(await run_batch(configs[name], w))
        plain = batches["plain"]
        base = median([b.seconds for b in plain])
        plain_calls = plain[0].calls
        nat_s = median([b.seconds for b in batches["nat"]]) if "nat" in batches else None
        for name, bs in batches.items():
            worst: Counter[str] = Counter()
            for b in bs:
                for node, n in b.calls.items():
                    worst[node] = max(worst[node], n)
            lossless = all(b.outputs == pb.outputs for b, pb in zip(bs, plain))
            rows.append(
                {
                    "p": p,
                    "config": name,
                    "ratio": round(median([b.seconds for b in bs]) / base, 4),
                    "seconds": round(median([b.seconds for b in bs]), 3),
                    "ms_per_input_vs_nat": (
                        round(1000 * (median([b.seconds for b in bs]) - nat_s) / w.inputs, 1)
                        if nat_s is not None
                        else None
                    ),
                    "router": worst["router"],
                    "targets": sum(worst[t] for t in TARGETS),
                    "final": worst["final"],
                    "extra_calls": sum(worst.values()) - sum(plain_calls.values()),
                    "extra_final": worst["final"] - plain_calls["final"],
                    "wasted": max(b.wasted for b in bs),
                    "lossless": lossless,
                }
            )
    return rows, notes


def checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 29's targets, where the rows hold what they compare."""
    at = {(r["p"], r["config"]): r for r in rows}
    out: dict[str, Any] = {"lossless_everywhere": all(r["lossless"] for r in rows)}
    full = [r for r in rows if r["p"] == 1.0 and r["config"] != "plain"]
    if full:
        out["final_calls_equal_plain_at_p1"] = {r["config"]: r["extra_final"] == 0 for r in full}
    nat = {p: r["ratio"] for (p, c), r in at.items() if c == "nat"}
    if nat:
        best = {}
        for p, theirs in nat.items():
            ours = [r["ratio"] for (q, c), r in at.items() if q == p and c not in ("plain", "nat")]
            if ours:
                best[str(p)] = round(min(ours) - theirs, 4)
        out["best_ours_minus_nat"] = best
        if (1.0, "k3") in at and 1.0 in nat:
            out["k3_within_0.03_of_nat_at_p1"] = at[(1.0, "k3")]["ratio"] <= nat[1.0] + 0.03
        pre = [r["ratio"] - nat[r["p"]] for r in rows if r["config"] == "prefetch" and r["p"] in nat]
        if pre:
            out["prefetch_within_0.01_of_nat"] = all(d <= 0.01 for d in pre)
    return out


if __name__ == "__main__":
    main()
