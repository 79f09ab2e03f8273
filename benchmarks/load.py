"""Speculation under load: 1, 10 and 100 concurrent runs of one graph, plain vs speculative.

Each run is a 4-step chain of async actors (50 ms each, `asyncio.sleep`), every step speculated
by a speculator that is right half the time (the same draws for both graphs), each run on its
own thread; all runs of a level start together on one event loop, plain and speculative levels
in turns (each first every other repeat), medians over 7 repeats; a level's threads are deleted
after it (as a server's would be), so the heap does not grow from one level to the next.
Reported: the wall time of the whole level (`ratio`) and the mean latency of its runs
(`latency_ratio`), branch errors, adopted calls, runs and calls that shed speculation because
the process was busy, and calls to the user's checkpointer per step (reads, checkpoint writes,
task writes), counted by a pass-through saver on the plain graph and by the reports of the
speculating runs. `--saver postgres` uses `AsyncPostgresSaver` with a pool of 20 on
`LGS_PG_URI` (default postgresql://postgres@127.0.0.1:54329/postgres).

    python benchmarks/load.py --quick
    python benchmarks/load.py --json                      # memory and postgres, 1/10/100 runs
    python benchmarks/load.py --soak 2000 --json          # memory per run over 2,000 runs
    python benchmarks/load.py --saver memory --runs 100 --shed-all [--no-gc] --json
    python benchmarks/load.py --saver memory --runs 100 --pause 0.3 --json   # bursts after quiet
    python benchmarks/load.py --saver memory --sync --json   # sync invoke, one thread per run
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import random
import sys
import time
import tracemalloc
import uuid
from typing import Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, median, parser  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from langgraph_speculative import SpeculationPolicy, set_process_budget, speculate  # noqa: E402

PG_URI = os.environ.get("LGS_PG_URI", "postgresql://postgres@127.0.0.1:54329/postgres")
STEPS = 4
LATENCY = 0.05


class S(TypedDict):
    run: int
    n: int


def _right(run: int, step: int, seed: int) -> bool:
    return random.Random(f"{seed}:{run}:{step}").random() < 0.5


def build(seed: int) -> StateGraph:  # type: ignore[type-arg]
    async def step(state: S) -> dict[str, int]:
        await asyncio.sleep(LATENCY)
        return {"n": state["n"] + 1}

    def sync_step(state: S) -> dict[str, int]:
        time.sleep(LATENCY)
        return {"n": state["n"] + 1}

    b = StateGraph(S)
    names = [f"s{i}" for i in range(STEPS)]
    for name in names:
        b.add_node(name, sync_step if SYNC else step)
    b.add_edge(START, names[0])
    for x, y in zip(names, names[1:]):
        b.add_edge(x, y)
    b.add_edge(names[-1], END)
    return b


def speculators(seed: int) -> dict[str, Any]:
    def make(i: int) -> Any:
        def guess(state: S) -> list[dict[str, int]]:
            right = {"n": state["n"] + 1}
            return [right] if _right(state["run"], i, seed) else [{"n": -1}]

        return guess

    return {f"s{i}": make(i) for i in range(STEPS - 1)}  # the last step has nothing after it


class Counting(InMemorySaver):
    """Counts the calls a run makes to its checkpointer (the plain graph's)."""

    calls = 0

    async def aget_tuple(self, config: Any) -> Any:
        Counting.calls += 1
        return await super().aget_tuple(config)

    async def aput(self, *a: Any, **k: Any) -> Any:
        Counting.calls += 1
        return await super().aput(*a, **k)

    async def aput_writes(self, *a: Any, **k: Any) -> Any:
        Counting.calls += 1
        return await super().aput_writes(*a, **k)


class SyncCounting(InMemorySaver):
    """`Counting` for sync runs."""

    def get_tuple(self, config: Any) -> Any:
        Counting.calls += 1
        return super().get_tuple(config)

    def put(self, *a: Any, **k: Any) -> Any:
        Counting.calls += 1
        return super().put(*a, **k)

    def put_writes(self, *a: Any, **k: Any) -> Any:
        Counting.calls += 1
        return super().put_writes(*a, **k)


def _thread(run: int) -> str:
    tid = uuid.uuid4().hex
    THREADS.append(tid)
    return tid


async def timed_run(graph: Any, run: int) -> float:
    t0 = time.perf_counter()
    out = await graph.ainvoke({"run": run, "n": 0}, {"configurable": {"thread_id": _thread(run)}})
    assert out["n"] == STEPS, out
    return time.perf_counter() - t0


def sync_run(graph: Any, run: int) -> float:
    t0 = time.perf_counter()
    out = graph.invoke({"run": run, "n": 0}, {"configurable": {"thread_id": _thread(run)}})
    assert out["n"] == STEPS, out
    return time.perf_counter() - t0


def sync_runs(graph: Any, runs: int, offset: int) -> list[float]:
    """`runs` concurrent `invoke`s, each in its own thread (as a threaded server's workers)."""
    with concurrent.futures.ThreadPoolExecutor(runs) as pool:
        return list(pool.map(lambda i: sync_run(graph, offset + i), range(runs)))


async def level(graph: Any, runs: int, offset: int) -> float:
    """Wall time of `runs` concurrent runs (and, in `LAST_LATENCY`, their mean latency)."""
    global LAST_LATENCY
    if PAUSE:
        await asyncio.sleep(PAUSE)  # a quiet process: the runs arrive as one burst
    t0 = time.perf_counter()
    if SYNC:
        latencies = await asyncio.get_running_loop().run_in_executor(None, sync_runs, graph, runs, offset)
    else:
        latencies = await asyncio.gather(*(timed_run(graph, offset + i) for i in range(runs)))
    LAST_LATENCY = sum(latencies) / runs
    elapsed = time.perf_counter() - t0
    for tid in THREADS:  # the level's threads go, as a server's would: the heap does not grow
        await graph.checkpointer.adelete_thread(tid)
    THREADS.clear()
    return elapsed


LAST_LATENCY = 0.0
THREADS: list[str] = []
PAUSE = 0.0
SYNC = False


async def with_saver(kind: str, fn: Any) -> Any:
    if kind == "memory":
        return await fn(InMemorySaver(), SyncCounting() if SYNC else Counting())
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": 0}
    async with AsyncConnectionPool(PG_URI, max_size=20, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        return await fn(saver, saver)


async def measure(kind: str, runs: int, reps: int, seed: int) -> dict[str, Any]:
    async def body(saver: Any, plain_saver: Any) -> dict[str, Any]:
        plain = build(seed).compile(checkpointer=plain_saver)
        graph = speculate(build(seed), speculators(seed), policy=SpeculationPolicy(k=1)).compile(
            checkpointer=saver
        )
        await level(plain, min(runs, 4), 10**6)  # warm both up (imports, pools)
        await level(graph, min(runs, 4), 10**6)
        plain_t, spec_t, plain_l, spec_l = [], [], [], []
        plain_calls = 0
        for r in range(reps):  # in turns, each first every other time (a saver's tables grow)
            for which in ("plain", "spec") if r % 2 == 0 else ("spec", "plain"):
                if which == "plain":
                    Counting.calls = 0
                    plain_t.append(await level(plain, runs, r * runs))
                    plain_l.append(LAST_LATENCY)
                    plain_calls = Counting.calls
                else:
                    spec_t.append(await level(graph, runs, r * runs))
                    spec_l.append(LAST_LATENCY)
        rep = graph.report
        errors = sum(1 for e in rep.events if e["event"] in ("branch_error", "internal_error"))
        adopted = rep.adopted
        spec_calls = rep.checkpointer_calls
        steps = (rep.runs - rep.shed_runs) * STEPS  # runs that speculated (shed runs are plain)
        return {
            "saver": kind,
            "concurrent_runs": runs,
            "plain_s": round(median(plain_t), 3),
            "speculative_s": round(median(spec_t), 3),
            "ratio": round(median(spec_t) / median(plain_t), 3),
            "plain_latency_s": round(median(plain_l), 3),
            "speculative_latency_s": round(median(spec_l), 3),
            "latency_ratio": round(median(spec_l) / median(plain_l), 3),
            "branch_errors": errors,
            "adopted_per_run": round(adopted / max(1, rep.runs), 2),
            "plain_saver_calls_per_step": round(plain_calls / (runs * STEPS), 2)
            if kind == "memory"
            else None,
            "saver_calls_per_step": round(spec_calls / steps, 2) if steps else None,
            "shed_runs": rep.shed_runs,
            "shed_calls": rep.shed,
        }

    return await with_saver(kind, body)  # type: ignore[no-any-return]


async def soak(runs: int, seed: int) -> dict[str, Any]:
    """Memory after every 10% of `runs` sequential runs (traced allocations, after a collection)."""
    saver = InMemorySaver()
    graph = speculate(build(seed), speculators(seed), policy=SpeculationPolicy(k=2)).compile(
        checkpointer=saver
    )
    tracemalloc.start()
    samples = []
    for i in range(runs):
        cfg = {"configurable": {"thread_id": f"t{i}"}}
        await graph.ainvoke({"run": i, "n": 0}, cfg)  # type: ignore[call-overload]
        await saver.adelete_thread(f"t{i}")  # the user's threads go; ours never land
        if (i + 1) % max(1, runs // 10) == 0:
            gc.collect()
            samples.append(round(tracemalloc.get_traced_memory()[0] / 1e6, 3))
    tracemalloc.stop()
    return {"runs": runs, "traced_mb": samples, "graph_report_events": len(graph.report.events)}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--saver", choices=["memory", "postgres", "both"], default="both")
    p.add_argument("--soak", type=int, metavar="RUNS", help="instead: memory over RUNS sequential runs")
    p.add_argument("--runs", type=int, metavar="N", help="only this many concurrent runs")
    p.add_argument(
        "--shed-all", action="store_true", help="shed every speculation (the speculative path's own cost)"
    )
    p.add_argument("--no-gc", action="store_true", help="with the cyclic garbage collector off")
    p.add_argument(
        "--pause", type=float, default=0.0, metavar="S", help="a quiet spell of S seconds before each level"
    )
    p.add_argument("--sync", action="store_true", help="sync actors and invoke, one thread per run (memory)")
    args = p.parse_args()
    global PAUSE, SYNC
    PAUSE, SYNC = args.pause, args.sync
    if SYNC and args.saver != "memory":
        p.error("--sync runs on InMemorySaver only: add --saver memory")
    if args.shed_all:
        set_process_budget(busy=1e-9)
    if args.no_gc:
        gc.disable()
    if args.soak:
        result = asyncio.run(soak(args.soak, args.seed))
        print(result if not args.json else __import__("json").dumps(result))
        return
    levels: tuple[int, ...] = (1, 10, 100) if not args.quick else (1, 10, 50)
    reps = 7 if not args.quick else 3
    if args.runs:
        levels = (args.runs,)
    kinds = ["memory", "postgres"] if args.saver == "both" else [args.saver]
    rows = []
    for kind in kinds:
        for runs in levels:
            rows.append(asyncio.run(measure(kind, runs, reps, args.seed)))
            if not args.json:
                print(
                    f"  {kind}, {runs} concurrent runs: ratio {rows[-1]['ratio']}",
                    file=sys.stderr,
                    flush=True,
                )
    cols = [
        "saver",
        "concurrent_runs",
        "plain_s",
        "speculative_s",
        "ratio",
        "latency_ratio",
        "branch_errors",
        "adopted_per_run",
        "saver_calls_per_step",
        "plain_saver_calls_per_step",
        "shed_runs",
        "shed_calls",
    ]
    meta = {"steps": STEPS, "latency_s": LATENCY, "p_right": 0.5, "reps": reps, "sync": SYNC}
    emit(rows, cols, args.json, meta)


if __name__ == "__main__":
    main()
