"""The cost curve of speculation (issue 29): overhead per speculative step along five axes.

A chain of async nodes (`asyncio.sleep`, 50 ms each; `--quick` 20 ms), each but the last
speculated; the state is a `messages` list (`add_messages`, fixed ids) that no node changes, and a
counter `n` each node increments. From a base point (100 messages, 10 nodes, k=1, depth=1, one
run) one axis varies at a time:

- `messages`: the state's size, 10 to 10,000 messages;
- `nodes`: the graph's size (= steps of a run), 5 to 200;
- `k`: guesses per speculated step, 1 to 8;
- `depth`: how far a branch may speculate again, 1 to 8;
- `runs`: concurrent runs of the graph on one event loop, 1 to 100 (each its own thread).

Each point runs plain LangGraph and three speculative graphs: `miss` (every guess wrong: the
speculator returns k wrong updates), `hit` (the first of k guesses right) and `none` (no guess,
below), on InMemorySaver
and on PostgreSQL (`AsyncPostgresSaver` on `LGS_PG_URI`, default
postgresql://postgres@127.0.0.1:54329/postgres as `.ci/start-postgres.sh` starts it; skipped with
a note when it is not reachable). The speculator answers at once, so every step branches.
Reported per point (medians over repeats; the three graphs in turns, the order rotating):

- `wall_ms_per_step`: (speculative - plain wall-clock) / steps of a run. Positive is overhead;
  at `hit` it is usually negative (the time speculation saves), so read `cpu_*` there.
- `cpu_ms_per_step`: extra CPU of this process (`time.process_time`, all threads) per step of a
  run, (speculative - plain) / (runs * steps). PostgreSQL's own server CPU is not counted.
- `fixed_cpu_ms_per_step`: the same for a third speculative graph whose speculator is called at
  every step but guesses nothing: what speculation costs a step before any branch (the
  speculator call, keys, bookkeeping).
- `cpu_ms_per_branch`: (speculative - no-guess CPU) / the branches speculation started (the
  report's `guesses` that got a branch): the figure issue 29's 1 ms target is about.
- `branches_per_step`, `adopted_per_step` (early calls the main run adopted), `shed`
  (speculation not started: busy process or full budgets), `ratio` (speculative / plain
  wall-clock) and the plain run's own `plain_ms_per_step` and `plain_cpu_ms_per_step`.

`--plot [FILE]` draws one column of panels per axis (rows: wall overhead, CPU per step, CPU per
step without a guess, CPU per branch; log-x) to FILE (default docs/scaling.png).

    python benchmarks/scaling.py --quick
    python benchmarks/scaling.py --json --plot            # full grid, docs/scaling.png
    python benchmarks/scaling.py --axes messages --savers memory --json
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any, TypedDict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, median, parser  # noqa: E402
from langchain_core.messages import AnyMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from langgraph_speculative import SpeculationPolicy, speculate  # noqa: E402

PG_URI = os.environ.get("LGS_PG_URI", "postgresql://postgres@127.0.0.1:54329/postgres")
DEFAULT_PLOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "docs", "scaling.png"))

AXES: dict[str, tuple[int, ...]] = {
    "messages": (10, 100, 1000, 10_000),
    "nodes": (5, 10, 20, 50, 100, 200),
    "k": (1, 2, 4, 8),
    "depth": (1, 2, 4, 8),
    "runs": (1, 10, 100),
}
QUICK_AXES: dict[str, tuple[int, ...]] = {
    "messages": (10, 1000),
    "nodes": (5, 20),
    "k": (1, 4),
    "depth": (1, 4),
    "runs": (1, 10),
}
LOG_X = {"messages", "nodes", "runs"}
MODES = ("miss", "hit")
NO_GUESS = "none"  # the speculator is called at every step but guesses nothing: the fixed cost


class S(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int


@dataclass(frozen=True)
class Point:
    """One grid point: the base values with one axis changed."""

    messages: int = 100
    nodes: int = 10
    k: int = 1
    depth: int = 1
    runs: int = 1


def build(nodes: int, latency: float) -> StateGraph:  # type: ignore[type-arg]
    async def step(state: S) -> dict[str, int]:
        await asyncio.sleep(latency)
        return {"n": state["n"] + 1}

    b = StateGraph(S)
    names = [f"s{i}" for i in range(nodes)]
    for name in names:
        b.add_node(name, step)
    b.add_edge(START, names[0])
    for x, y in zip(names, names[1:]):
        b.add_edge(x, y)
    b.add_edge(names[-1], END)
    return b


def speculators(nodes: int, k: int, mode: str) -> dict[str, Any]:
    """Every node but the last: `k` guesses, all wrong (`miss`), the first right (`hit`), or none."""

    def guess(state: S) -> list[dict[str, int]]:
        if mode == NO_GUESS:
            return []
        wrong = [{"n": -(j + 1)} for j in range(k)]
        return wrong if mode == "miss" else [{"n": state["n"] + 1}, *wrong[: k - 1]]

    return {f"s{i}": guess for i in range(nodes - 1)}


_HISTORIES: dict[int, list[AnyMessage]] = {}


def history(size: int) -> list[AnyMessage]:
    """A message history of `size` messages with fixed ids (the same input for every graph)."""
    if size not in _HISTORIES:
        _HISTORIES[size] = [
            HumanMessage(content=f"message {i}: " + "lorem ipsum dolor sit amet " * 4, id=f"m{i}")
            for i in range(size)
        ]
    return _HISTORIES[size]


@dataclass
class Level:
    wall: float
    cpu: float
    branches: int
    shed: int
    adopted: int


def _totals(graph: Any) -> tuple[int, int, int]:
    """Branches started, speculation shed and calls adopted so far (the graph's merged report)."""
    report = getattr(graph, "report", None)
    if report is None:
        return 0, 0, 0
    return sum(s.guesses for s in report.nodes.values()), report.shed, report.adopted


async def level(graph: Any, pt: Point) -> Level:
    """`pt.runs` concurrent runs from the same input, each on its own thread; threads deleted after."""
    msgs = history(pt.messages)
    threads = [uuid.uuid4().hex for _ in range(pt.runs)]
    cfg = [{"configurable": {"thread_id": t}, "recursion_limit": pt.nodes + 10} for t in threads]
    before = _totals(graph)
    gc.collect()  # each level starts clean: no garbage of an earlier one collected in it
    c0, t0 = time.process_time(), time.perf_counter()
    outs = await asyncio.gather(*(graph.ainvoke({"messages": msgs, "n": 0}, c) for c in cfg))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for out in outs:
        assert out["n"] == pt.nodes and len(out["messages"]) == pt.messages, (out["n"], pt)
    after = _totals(graph)
    for t in threads:  # as a server's would: the saver's tables do not grow from point to point
        await graph.checkpointer.adelete_thread(t)
    return Level(wall, cpu, *(a - b for a, b in zip(after, before)))


async def measure_point(saver: Any, pt: Point, latency: float, reps: int) -> dict[str, dict[str, float]]:
    b = build(pt.nodes, latency)
    graphs = {"plain": b.compile(checkpointer=saver)}
    for mode in (*MODES, NO_GUESS):
        policy = SpeculationPolicy(k=pt.k, depth=pt.depth)
        graphs[mode] = speculate(b, speculators(pt.nodes, pt.k, mode), policy=policy).compile(
            checkpointer=saver
        )
    levels: dict[str, list[Level]] = {name: [] for name in graphs}
    order = list(graphs)
    for r in range(reps):
        for name in order[r % len(order) :] + order[: r % len(order)]:  # rotate who goes first
            levels[name].append(await level(graphs[name], pt))
    plain_wall = median([lv.wall for lv in levels["plain"]])
    plain_cpu = median([lv.cpu for lv in levels["plain"]])
    fixed_cpu = median([lv.cpu for lv in levels[NO_GUESS]])
    steps = pt.nodes
    out = {}
    for mode in MODES:
        wall = median([lv.wall for lv in levels[mode]])
        cpu = median([lv.cpu for lv in levels[mode]])
        branches = median([lv.branches for lv in levels[mode]])
        extra_cpu = cpu - plain_cpu
        out[mode] = {
            "wall_ms_per_step": 1000 * (wall - plain_wall) / steps,
            "cpu_ms_per_step": 1000 * extra_cpu / (pt.runs * steps),
            "fixed_cpu_ms_per_step": 1000 * (fixed_cpu - plain_cpu) / (pt.runs * steps),
            "cpu_ms_per_branch": 1000 * (cpu - fixed_cpu) / branches if branches else float("nan"),
            "branches_per_step": branches / (pt.runs * steps),
            "adopted_per_step": median([lv.adopted for lv in levels[mode]]) / (pt.runs * steps),
            "shed": median([lv.shed for lv in levels[mode]]),
            "ratio": wall / plain_wall,
            "plain_ms_per_step": 1000 * plain_wall / steps,
            "plain_cpu_ms_per_step": 1000 * plain_cpu / (pt.runs * steps),
        }
    return out


async def postgres_reachable() -> str | None:
    """None when PostgreSQL answers on `PG_URI`, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg not installed (pip install -e .[postgres])"
    try:
        conn = await psycopg.AsyncConnection.connect(PG_URI, connect_timeout=3)
        await conn.close()
    except Exception as e:
        return f"not reachable at {PG_URI} ({type(e).__name__}); start it with .ci/start-postgres.sh"
    return None


@asynccontextmanager
async def open_saver(kind: str) -> AsyncIterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": 0}
    async with AsyncConnectionPool(PG_URI, max_size=20, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        yield saver


async def run(
    axes: dict[str, tuple[int, ...]], savers: list[str], latency: float, reps: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    notes: dict[str, str] = {}
    if "postgres" in savers and (why := await postgres_reachable()) is not None:
        notes["postgres"] = f"skipped: {why}"
        savers = [s for s in savers if s != "postgres"]
    rows: list[dict[str, Any]] = []
    for kind in savers:
        async with open_saver(kind) as saver:
            await measure_point(saver, Point(), latency, 1)  # warm up: imports, pools, first compile
            done: dict[Point, dict[str, dict[str, float]]] = {}
            for axis, values in axes.items():
                for value in values:
                    pt = replace(Point(), **{axis: value})
                    if pt not in done:  # the base point is on every axis: measured once
                        done[pt] = await measure_point(saver, pt, latency, reps)
                    for mode, m in done[pt].items():
                        rows.append(
                            {
                                "axis": axis,
                                "value": value,
                                "saver": kind,
                                "mode": mode,
                                **{key: round(v, 4) for key, v in m.items()},
                                "point": asdict(pt),
                            }
                        )
    return rows, notes


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 29's targets, where the grid holds them (InMemorySaver)."""
    at = {(r["axis"], r["value"], r["saver"], r["mode"]): r for r in rows}
    out: dict[str, Any] = {}
    base = at.get(("k", 1, "memory", "miss"))
    if base is not None:
        out["cpu_ms_per_branch_10_nodes_miss"] = base["cpu_ms_per_branch"]
        out["per_branch_cpu_at_most_1ms"] = base["cpu_ms_per_branch"] <= 1.0
    msgs = sorted({r["value"] for r in rows if r["axis"] == "messages"})
    if len(msgs) >= 2:
        lo, hi = (
            at.get(("messages", msgs[0], "memory", "miss")),
            at.get(("messages", msgs[-1], "memory", "miss")),
        )
        if lo is not None and hi is not None:
            out["cpu_ms_per_step_messages"] = {
                msgs[0]: lo["cpu_ms_per_step"],
                msgs[-1]: hi["cpu_ms_per_step"],
            }
    return out


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(dict.fromkeys(r["axis"] for r in rows))
    metrics = [
        ("wall_ms_per_step", "wall-clock overhead\n(ms per step)"),
        ("cpu_ms_per_step", "extra CPU\n(ms per step)"),
        ("fixed_cpu_ms_per_step", "extra CPU, no guess\n(ms per step)"),
        ("cpu_ms_per_branch", "extra CPU\n(ms per branch)"),
    ]
    fig, grid = plt.subplots(len(metrics), len(axes), figsize=(3.6 * len(axes), 11), squeeze=False)
    series = sorted({(r["saver"], r["mode"]) for r in rows})
    styles = {"memory": "-", "postgres": "--"}
    colors = {"miss": "tab:red", "hit": "tab:green"}
    for j, axis in enumerate(axes):
        for i, (metric, ylabel) in enumerate(metrics):
            ax = grid[i][j]
            for saver, mode in series:
                if metric == "fixed_cpu_ms_per_step" and mode != MODES[0]:
                    continue  # measured once per point, on the no-guess graph: one line per saver
                pts = sorted(
                    (r["value"], r[metric])
                    for r in rows
                    if r["axis"] == axis and r["saver"] == saver and r["mode"] == mode
                )
                ax.plot(
                    [x for x, _ in pts],
                    [y for _, y in pts],
                    styles.get(saver, ":"),
                    marker="o",
                    color="black" if metric == "fixed_cpu_ms_per_step" else colors.get(mode),
                    label=f"no guess, {saver}" if metric == "fixed_cpu_ms_per_step" else f"{mode}, {saver}",
                )
            values = sorted({r["value"] for r in rows if r["axis"] == axis})
            ax.set_xscale("log", base=10 if axis in LOG_X else 2)
            ax.set_xticks(values, [f"{v:,}" for v in values])
            ax.minorticks_off()
            ax.axhline(0, color="grey", lw=0.6)
            ax.grid(alpha=0.3)
            if i == len(metrics) - 1:
                ax.set_xlabel(
                    {
                        "messages": "messages in state",
                        "nodes": "nodes in graph (steps)",
                        "runs": "concurrent runs",
                    }.get(axis, axis)
                )
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == 0:
                ax.set_title(f"by {axis}", fontsize=10)
    grid[0][0].legend(fontsize=8)
    grid[2][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = parser(__doc__ or "")
    ap.add_argument(
        "--plot", nargs="?", const=DEFAULT_PLOT, metavar="FILE", help="PNG (default docs/scaling.png)"
    )
    ap.add_argument("--repeats", type=int, default=None, help="repeats per point (default 3, quick 2)")
    ap.add_argument(
        "--latency", type=float, default=None, help="node latency in s (default 0.05, quick 0.02)"
    )
    ap.add_argument("--axes", default=None, help="comma-separated subset of " + ",".join(AXES))
    ap.add_argument("--savers", default="memory,postgres", help="comma-separated: memory, postgres")
    args = ap.parse_args()
    grid = QUICK_AXES if args.quick else AXES
    if args.axes:
        unknown = set(args.axes.split(",")) - set(AXES)
        if unknown:
            ap.error(f"unknown axes {sorted(unknown)}; choose from {', '.join(AXES)}")
        grid = {a: v for a, v in grid.items() if a in args.axes.split(",")}
    latency = args.latency if args.latency is not None else (0.02 if args.quick else 0.05)
    reps = args.repeats or (2 if args.quick else 3)
    savers = [s.strip() for s in args.savers.split(",") if s.strip()]
    # the `none` graph's speculator guesses nothing on purpose: its warning is not news here
    warnings.filterwarnings("ignore", message="the speculator of node .* gave no usable guess")
    t0 = time.perf_counter()
    rows, notes = asyncio.run(run(grid, savers, latency, reps))
    extra: dict[str, Any] = {
        "latency_s": latency,
        "repeats": reps,
        "base_point": asdict(Point()),
        **notes,
        **summary(rows),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    if args.plot:
        plot(
            rows,
            args.plot,
            f"speculation's cost per step (node latency {latency * 1000:.0f} ms, medians of {reps})",
        )
        extra["plot"] = args.plot
    if args.json:
        print(json.dumps({**extra, "rows": rows}))
        return
    table = [{k: v for k, v in r.items() if k != "point"} for r in rows]
    emit(
        table,
        [
            "axis",
            "value",
            "saver",
            "mode",
            "wall_ms_per_step",
            "cpu_ms_per_step",
            "fixed_cpu_ms_per_step",
            "cpu_ms_per_branch",
            "branches_per_step",
            "adopted_per_step",
            "shed",
            "ratio",
        ],
        False,
        extra,
    )


if __name__ == "__main__":
    main()
