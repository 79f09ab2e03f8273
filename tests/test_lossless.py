"""Lossless, property-based: a speculative run commits exactly what a plain run does.

Random apps (`tests/random_graphs.py`: seven layouts with `Send`, `Command` and subgraphs, the
run's context, the store, a node that asks a person and is resumed, a node that raises, unsafe
nodes with side effects, custom keys and matches, confidences and budgets, `prefetch=` nodes (their
successors launched early; adaptive in `test_adaptive`), one or two turns on a
thread), speculated with right, wrong, partly right, raising, hanging and junk speculators. For
every example, plain and speculative runs must agree on everything the differential oracle
(`tests/oracle.py`) compares: every turn's result or exception, every stream mode's chunks (half
the examples run by `stream`), the main thread's full history, side effects, the store's
contents and operations, every node call and what it read; and on which threads the
checkpointer holds; and a helpful guess must be adopted (latches, not races, see `random_graphs`).

Each run draws fresh examples: the seed is printed in pytest's header (`LGS_SEED=<n>` replays
it); a seed that once failed goes into `REGRESSION_SEEDS`. `LGS_HYPOTHESIS_EXAMPLES` scales the
example counts (200 is CI's).
"""

from __future__ import annotations

import asyncio
import operator
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_speculative import SpeculationPolicy, speculate
from langgraph_speculative._budget import ProcessBudget, process_budget

from . import oracle
from .conftest import ASYNC_SAVERS, SYNC_SAVERS, amake_saver, examples, make_saver
from .random_graphs import (
    Ctx,
    Probe,
    RunResult,
    Spec,
    build,
    key_v,
    make_speculator,
    match_v,
    random_spec,
    successors,
    waits,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EXAMPLES = examples(100)
SAVER_EXAMPLES = examples(10)  # per checkpointer: each example is slower there
REGRESSION_SEEDS: list[int] = [3, 11, 2024]  # seeds worth keeping (add any that ever fails)

_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def specs(asynchronous: bool | None = None) -> st.SearchStrategy[Spec]:
    return st.randoms(use_true_random=False).map(lambda rnd: random_spec(rnd, asynchronous))


def _turns(spec: Spec) -> list[Any]:
    first = {"v": 1, "log": [], "messages": []}
    if spec.turns == 1:
        return [first]
    if spec.interrupt is not None:
        return [first, Command(resume="yes")]
    return [first, {"v": 2, "log": ["again"], "messages": []}]


def _graph(spec: Spec, probe: Probe, speculative: bool, saver: Any) -> Any:
    builder = build(spec, probe)
    if speculative:
        names = [f"n{i}" for i in spec.speculators]
        keyed = [f"n{i}" for i in range(spec.n)] if spec.prefetch else names
        prefetch = {f"n{i}" for i in spec.prefetch}
        while True:
            try:
                speculative_builder = speculate(
                    builder,
                    {f"n{i}": make_speculator(spec, i) for i in spec.speculators},
                    policy=SpeculationPolicy(
                        k=spec.k,
                        depth=spec.depth,
                        min_confidence=spec.min_confidence,
                        max_inflight=spec.max_inflight,
                        speculator_timeout=0.5,
                    ),
                    unsafe={f"n{i}" for i in spec.unsafe},
                    keys={n: key_v for n in keyed} if spec.custom_key else None,
                    matches={n: match_v for n in names} if spec.custom_match else None,
                    prefetch=prefetch or None,
                )
                break
            except ValueError as exc:  # a node whose successors the graph cannot tell: not listed
                found = re.search(r"prefetch=\{'(n\d+)'\}\): the graph cannot tell", str(exc))
                if found is None:
                    raise
                prefetch.discard(found.group(1))
        builder = speculative_builder
    return builder.compile(checkpointer=saver, store=oracle.RecordingStore())


def _turn_sync(spec: Spec, graph: Any, turn: Any, cfg: Any, res: RunResult) -> None:
    try:
        if spec.stream:
            chunks = list(graph.stream(turn, cfg, context=Ctx(spec.context), stream_mode=oracle.STREAM_MODES))
            res.obs.streams.append(oracle.stream_view(chunks))
            res.obs.turns.append(oracle.result(graph.get_state(cfg).values))
        else:
            res.obs.turns.append(oracle.result(graph.invoke(turn, cfg, context=Ctx(spec.context))))
    except Exception as exc:  # the same error must come out of both runs
        res.obs.turns.append(oracle.raised(exc))


async def _turn_async(spec: Spec, graph: Any, turn: Any, cfg: Any, res: RunResult) -> None:
    try:
        if spec.stream:
            chunks = [
                c
                async for c in graph.astream(
                    turn, cfg, context=Ctx(spec.context), stream_mode=oracle.STREAM_MODES
                )
            ]
            res.obs.streams.append(oracle.stream_view(chunks))
            res.obs.turns.append(oracle.result((await graph.aget_state(cfg)).values))
        else:
            res.obs.turns.append(oracle.result(await graph.ainvoke(turn, cfg, context=Ctx(spec.context))))
    except Exception as exc:  # the same error must come out of both runs
        res.obs.turns.append(oracle.raised(exc))


def run_sync(spec: Spec, saver: Any, thread: str, speculative: bool, latch: bool = True) -> RunResult:
    probe = Probe(latch=speculative and latch)
    graph = _graph(spec, probe, speculative, saver)
    cfg: Any = {"configurable": {"thread_id": thread}, "recursion_limit": 60}
    res = RunResult()
    for turn in _turns(spec):
        _turn_sync(spec, graph, turn, cfg, res)
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report)
            res.adopted += graph.last_report.adopted
            res.events += [e["event"] for e in graph.last_report.events]
    res.obs.fill(probe.recorder, graph.store)
    res.obs.history = oracle.history(graph.get_state_history(cfg))
    res.threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
    return res


async def run_async(spec: Spec, saver: Any, thread: str, speculative: bool, latch: bool = True) -> RunResult:
    probe = Probe(latch=speculative and latch)
    graph = _graph(spec, probe, speculative, saver)
    cfg: Any = {"configurable": {"thread_id": thread}, "recursion_limit": 60}
    res = RunResult()
    for turn in _turns(spec):
        await _turn_async(spec, graph, turn, cfg, res)
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report)
            res.adopted += graph.last_report.adopted
            res.events += [e["event"] for e in graph.last_report.events]
    res.obs.fill(probe.recorder, graph.store)
    res.obs.history = oracle.history([s async for s in graph.aget_state_history(cfg)])
    res.threads = {c.config["configurable"]["thread_id"] async for c in saver.alist(None)}
    return res


def expects_adoption(spec: Spec, plain: RunResult) -> bool:
    """Must this example adopt something? When a node that ran (turn 1) has a helpful guess
    within the budget and a node after it that a branch may run, and nothing can spoil it."""
    if spec.store_write is not None and spec.store_read is not None:
        return False
    if spec.prefetch:  # a prefetched call may open the latch a branch was meant to (or hold its slot)
        return False
    first = plain.obs.turns[0]
    if "ok" not in first:  # (a node that raises did not, in a first turn that finished)
        return False
    ran = {int(e.split(":")[0][1:]) for e in first["ok"].get("log", []) if e[:1] == "n"}
    for i in ran:
        if not waits(spec, i) or i == spec.interrupt:
            continue
        rank = 1 if spec.speculators[i] == "right" else 2
        if rank > min(spec.k, spec.max_inflight):
            continue
        safe = [
            j
            for j in successors(spec, i)
            if j in ran
            and j not in spec.unsafe
            and j != spec.interrupt
            and not (spec.layout == "subgraph" and j == 1)
        ]
        if safe:
            return True
    return False


def check(spec: Spec, plain: RunResult, spec_run: RunResult, thread: str, adoption: bool = True) -> None:
    info = spec.describe()
    oracle.assert_same(plain.obs, spec_run.obs, info)
    assert thread in spec_run.threads and not any(":spec:" in t for t in spec_run.threads), info
    assert "branch_error" not in spec_run.events and "internal_error" not in spec_run.events, (
        info,
        spec_run.events,
    )
    if adoption and expects_adoption(spec, plain):
        assert spec_run.adopted >= 1, (info, spec_run.events)


def check_sync(spec: Spec, saver_plain: Any, saver_spec: Any, latch: bool = True) -> None:
    thread = uuid.uuid4().hex
    plain = run_sync(spec, saver_plain, thread, False)
    check(spec, plain, run_sync(spec, saver_spec, thread, True, latch), thread, adoption=latch)


async def check_async(spec: Spec, saver_plain: Any, saver_spec: Any, latch: bool = True) -> None:
    thread = uuid.uuid4().hex
    plain = await run_async(spec, saver_plain, thread, False)
    check(spec, plain, await run_async(spec, saver_spec, thread, True, latch), thread, adoption=latch)


def _check_any(spec: Spec, latch: bool = True) -> None:
    if spec.asynchronous:
        asyncio.run(check_async(spec, InMemorySaver(), InMemorySaver(), latch))
    else:
        check_sync(spec, InMemorySaver(), InMemorySaver(), latch)


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(spec=specs())
def test_lossless_random_apps_memory(spec: Spec) -> None:
    _check_any(spec)


@contextmanager
def _shedding_at_random(seed: int) -> Iterator[ProcessBudget]:
    """The process budget sheds at random points, as a busy server's would: whole runs, calls,
    single branches (each a coin toss), so every point where speculation stops is exercised."""
    budget = process_budget()
    rnd, lock = random.Random(seed), threading.Lock()
    shed_run, acquire = budget.shed_run, budget.acquire

    def coin() -> bool:
        with lock:
            return rnd.random() < 0.5

    def random_shed_run() -> bool:
        shed_run()  # counts the run
        return coin()

    def random_acquire() -> str | None:
        why = acquire()
        if why is None and coin():
            budget.release()
            return "busy"
        return why

    budget.shed_run, budget.shedding, budget.acquire = random_shed_run, coin, random_acquire  # type: ignore[method-assign]
    try:
        yield budget
    finally:
        del budget.shed_run, budget.shedding, budget.acquire


@settings(max_examples=examples(50), **_SETTINGS)  # type: ignore[arg-type]
@given(spec=specs(), seed=st.integers(0, 2**32))
def test_lossless_when_a_busy_process_sheds_at_random_points(spec: Spec, seed: int) -> None:
    """Shedding (a whole run, a call, one branch) changes nothing a run commits, and gives
    back every slot: no run and nothing speculative is left counted once runs end."""
    with _shedding_at_random(seed) as budget:
        _check_any(spec, latch=False)  # no latches: a shed branch never comes
    assert budget.active_runs == 0 and budget.inflight == 0, (budget.active_runs, budget.inflight)


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_lossless_regression_seeds(seed: int) -> None:
    _check_any(random_spec(random.Random(seed)))


@pytest.mark.parametrize("kind", [k for k in SYNC_SAVERS if k != "none"])
def test_lossless_every_sync_checkpointer(kind: str, tmp_path: Any) -> None:
    with make_saver(kind, tmp_path) as saver_plain, make_saver(kind, tmp_path) as saver_spec:

        @settings(max_examples=SAVER_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
        @given(spec=specs(asynchronous=False))
        def body(spec: Spec) -> None:
            check_sync(spec, saver_plain, saver_spec)

        body()


@contextmanager
def _loop_in_thread() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """An event loop on its own thread, so one async saver serves every hypothesis example."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop")
    thread.start()
    try:
        yield lambda aw: asyncio.run_coroutine_threadsafe(aw, loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.mark.parametrize("kind", [k for k in ASYNC_SAVERS if k != "none"])
def test_lossless_every_async_checkpointer(kind: str, tmp_path: Any) -> None:
    with _loop_in_thread() as run:
        cms = [amake_saver(kind, tmp_path), amake_saver(kind, tmp_path)]
        savers = [run(cm.__aenter__()) for cm in cms]
        try:

            @settings(max_examples=SAVER_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
            @given(spec=specs(asynchronous=True))
            def body(spec: Spec) -> None:
                run(check_async(spec, savers[0], savers[1]))

            body()
        finally:
            for cm in cms:
                run(cm.__aexit__(None, None, None))


def test_the_property_adopts_in_most_examples() -> None:
    """The property is not vacuous: most random apps adopt something (latched, not raced)."""
    rnd = random.Random(int(os.environ.get("LGS_SEED", "0")) or 12345)
    specs_ = [random_spec(rnd) for _ in range(40)]
    adopted = expected = 0
    for spec in specs_:
        thread = uuid.uuid4().hex
        if spec.asynchronous:
            plain = asyncio.run(run_async(spec, InMemorySaver(), thread, False))
            got = asyncio.run(run_async(spec, InMemorySaver(), thread, True))
        else:
            plain = run_sync(spec, InMemorySaver(), thread, False)
            got = run_sync(spec, InMemorySaver(), thread, True)
        check(spec, plain, got, thread)
        expected += expects_adoption(spec, plain)
        adopted += got.adopted > 0
    print(f"adoption asserted in {expected} of {len(specs_)} examples, seen in {adopted}")
    assert expected > len(specs_) // 2 and adopted >= expected, (adopted, expected, len(specs_))


# ------------------------------------------------- an adopted call and its step's checkpoint put


class SlowPutSaver(InMemorySaver):
    """A saver that stores each checkpoint whole (as SqliteSaver does: `whole`) and takes a while
    (a database's round trip) to store one step's before it serializes it: LangGraph's
    background put of that step is still pending when a call of the next step returns at once
    (adopted); a call that runs (plain) takes longer."""

    SLOW_STEP, DELAY_S = 6, 0.1  # the second turn's step after `a`; `b` runs 0.25 s

    def __init__(self) -> None:
        super().__init__()
        self.whole: list[tuple[int, Any]] = []

    def _keep(self, checkpoint: Any, metadata: Any) -> None:
        values = self.serde.loads_typed(self.serde.dumps_typed(checkpoint["channel_values"]))
        self.whole.append((metadata.get("step"), values))

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        time.sleep(self.DELAY_S if metadata.get("step") == self.SLOW_STEP else 0.0)
        self._keep(checkpoint, metadata)
        return super().put(config, checkpoint, metadata, new_versions)

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        await asyncio.sleep(self.DELAY_S if metadata.get("step") == self.SLOW_STEP else 0.0)
        self._keep(checkpoint, metadata)
        return super().put(config, checkpoint, metadata, new_versions)


class JoinState(TypedDict):
    v: int
    log: Annotated[list[str], operator.add]


def _join_graph(saver: Any, speculative: bool) -> Any:
    """a -> b, then c waits for b (`add_edge(["b"], "c")`: a barrier channel, whose checkpoint
    is its live set of names seen)."""

    seconds = {"a": 0.4, "b": 0.25, "c": 0.05}  # `b`, launched early, is done long before `a`

    def node(name: str) -> Any:
        def run(state: JoinState) -> dict[str, Any]:
            time.sleep(seconds[name])  # `b` takes longer than the slow put: plain never races it
            return {"v": state["v"] + 1, "log": [name]}

        return run

    b = StateGraph(JoinState)
    for name in "abc":
        b.add_node(name, node(name))
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge(["b"], "c")
    b.add_edge("c", END)
    if not speculative:
        return b.compile(checkpointer=saver)

    def right(name: str) -> Any:
        return lambda s: [{"v": s["v"] + 1, "log": [name]}]

    graph = speculate(b, {"a": right("a"), "b": right("b")}, policy=SpeculationPolicy(depth=2))
    return graph.compile(checkpointer=saver)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_adopted_call_waits_for_its_steps_checkpoint(mode: str) -> None:
    """An adopted call returns at once; LangGraph saves the step before it in the background and
    a join's barrier hands the saver its live set: had the adopted call's writes been applied
    before the put serialized, the stored step would hold `b`'s arrival at the barrier: a fork
    from it (time travel) would run `c` too early."""
    histories, saved = [], []
    for speculative in (False, True):
        saver = SlowPutSaver()
        graph = _join_graph(saver, speculative)
        cfg: Any = {"configurable": {"thread_id": "t"}}
        for turn in range(2):  # the second turn starts with the barrier consumed (an empty set)
            if mode == "sync":
                graph.invoke({"v": turn * 10, "log": []}, cfg)
            else:
                asyncio.run(graph.ainvoke({"v": turn * 10, "log": []}, cfg))
        histories.append(oracle.history(graph.get_state_history(cfg)))
        # what a fork from any step (time travel) starts from: each step's channels as stored
        saved.append(oracle.canon(saver.whole))
        if speculative:
            assert graph.last_report is not None and graph.last_report.adopted >= 1
    assert histories[1] == histories[0]
    assert saved[1] == saved[0]
