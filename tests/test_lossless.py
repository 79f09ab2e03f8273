"""Lossless, property-based: a speculative run commits exactly what a plain run does.

Random graphs (chains, conditional edges, loops, fan-out/fan-in; `add_messages`
and `operator.add` reducers), random latencies, speculators that are right,
wrong, partly right, raise, hang or return junk. Final state, the main thread's
checkpoint values in order, and side-effect counters of unsafe nodes must equal
the plain graph's.

CI runs the same 200 examples every time. A longer soak on fresh examples:
`LGS_HYPOTHESIS_EXAMPLES=2000 LGS_HYPOTHESIS_RANDOM=1 python -m pytest tests/test_lossless.py`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_speculative import SpeculationPolicy, speculate

from .conftest import ASYNC_SAVERS, SYNC_SAVERS, amake_saver, examples, make_saver
from .graphs_for_tests import BEHAVIOURS, Spec, build, make_speculator, strip_ids

EXAMPLES = examples(200)
SAVER_EXAMPLES = examples(12)  # per checkpointer: each example is slower there


@st.composite
def specs(draw: Any, asynchronous: bool | None = None) -> Spec:
    kind = draw(st.sampled_from(["chain", "cond", "loop", "fanout"]))
    n = draw(st.integers(2, 5))
    latency = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    spec_nodes = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    behaviour = {i: draw(st.sampled_from(BEHAVIOURS)) for i in sorted(spec_nodes)}
    others = [i for i in range(n) if i not in spec_nodes]
    unsafe = draw(st.sets(st.sampled_from(others))) if others else set()
    return Spec(
        kind=kind,
        n=n,
        latency_ms=latency,
        behaviour=behaviour,
        unsafe=set(unsafe),
        asynchronous=draw(st.booleans()) if asynchronous is None else asynchronous,
        depth=draw(st.integers(1, 3)),
        k=draw(st.integers(1, 3)),
    )


def _speculative(spec: Spec, saver: Any, speculator_timeout: float = 0.05) -> Any:
    """`spec`'s graph, speculated; the short timeout cuts hanging speculators quickly."""
    builder = build(spec)
    return speculate(
        builder,
        {f"n{i}": make_speculator(spec, i) for i in spec.behaviour},
        policy=SpeculationPolicy(k=spec.k, depth=spec.depth, speculator_timeout=speculator_timeout),
        unsafe={f"n{i}" for i in spec.unsafe},
    ).compile(checkpointer=saver)


def _history(graph: Any, cfg: dict[str, Any]) -> list[Any]:
    return [strip_ids((s.values, s.next)) for s in graph.get_state_history(cfg)]


async def _ahistory(graph: Any, cfg: dict[str, Any]) -> list[Any]:
    return [strip_ids((s.values, s.next)) async for s in graph.aget_state_history(cfg)]


INPUT = {"v": 1, "log": [], "messages": []}


def _spec_threads(threads: set[str], cfg: dict[str, Any]) -> set[str]:
    return {t for t in threads if t.startswith(f"{cfg['configurable']['thread_id']}:spec:")}


def _committed(graph: Any) -> set[str]:
    """Branch threads the run adopted from: the only ones a run leaves in the saver."""
    return {t for t, outcome in graph.last_report.branches if outcome == "committed"}


def _speculative_calls(spec: Spec, final: dict[str, Any]) -> int:
    """How many times the sequential run called a node that has a speculator (one log entry each)."""
    return sum(1 for entry in final["log"] if int(entry.split(":")[0][1:]) in spec.behaviour)


def check_sync(spec: Spec, saver: Any) -> None:
    """Run plain then speculative (sync) and compare everything committed."""
    plain = build(spec).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": uuid.uuid4().hex}}
    expected = plain.invoke(INPUT, cfg)
    expected_counts = dict(spec.counters)
    spec.counters.clear()
    graph = _speculative(spec, saver)
    cfg2 = {"configurable": {"thread_id": uuid.uuid4().hex}}
    got = graph.invoke(INPUT, cfg2)
    assert strip_ids(got) == strip_ids(expected)
    assert dict(spec.counters) == expected_counts
    if saver is not None:
        assert _history(graph, cfg2) == _history(plain, cfg)
        left = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
        assert _spec_threads(left, cfg2) <= _committed(graph)
    report = graph.last_report
    assert report is not None and report.calls == _speculative_calls(spec, expected)
    assert report.hits + report.misses <= report.calls


async def check_async(spec: Spec, saver: Any) -> None:
    """Async twin of `check_sync`."""
    plain = build(spec).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": uuid.uuid4().hex}}
    expected = await plain.ainvoke(INPUT, cfg)
    expected_counts = dict(spec.counters)
    spec.counters.clear()
    graph = _speculative(spec, saver)
    cfg2 = {"configurable": {"thread_id": uuid.uuid4().hex}}
    got = await graph.ainvoke(INPUT, cfg2)
    assert strip_ids(got) == strip_ids(expected)
    assert dict(spec.counters) == expected_counts
    if saver is not None:
        assert await _ahistory(graph, cfg2) == await _ahistory(plain, cfg)
        left = {c.config["configurable"]["thread_id"] async for c in saver.alist(None)}
        assert _spec_threads(left, cfg2) <= _committed(graph)
    assert graph.last_report is not None
    assert graph.last_report.calls == _speculative_calls(spec, expected)


_SETTINGS = dict(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("LGS_HYPOTHESIS_RANDOM"),
)


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(spec=specs())
def test_lossless_random_graphs_memory(spec: Spec) -> None:
    saver = InMemorySaver()
    if spec.asynchronous:
        asyncio.run(check_async(spec, saver))
    else:
        check_sync(spec, saver)


@pytest.mark.parametrize("kind", SYNC_SAVERS)
def test_lossless_every_sync_checkpointer(kind: str, tmp_path: Any) -> None:
    with make_saver(kind, tmp_path) as saver:

        @settings(max_examples=SAVER_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
        @given(spec=specs(asynchronous=False))
        def body(spec: Spec) -> None:
            check_sync(spec, saver)

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


@pytest.mark.parametrize("kind", ASYNC_SAVERS)
def test_lossless_every_async_checkpointer(kind: str, tmp_path: Any) -> None:
    with _loop_in_thread() as run:
        saver_cm = amake_saver(kind, tmp_path)
        saver = run(saver_cm.__aenter__())
        try:
            for spec in _fixed_specs(asynchronous=True):
                run(check_async(spec, saver))

            @settings(max_examples=SAVER_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
            @given(spec=specs(asynchronous=True))
            def body(spec: Spec) -> None:
                run(check_async(spec, saver))

            body()
        finally:
            run(saver_cm.__aexit__(None, None, None))


def _fixed_specs(asynchronous: bool) -> list[Spec]:
    """A deterministic spread of layouts and speculator behaviours."""
    out = []
    kinds = ["chain", "cond", "loop", "fanout"]
    for j, behaviour in enumerate(BEHAVIOURS):
        n = 3 + j % 3
        out.append(
            Spec(
                kind=kinds[j % 4],
                n=n,
                latency_ms=[(3 * i + j) % 9 for i in range(n)],
                behaviour={0: behaviour, 1: "right"},
                unsafe={n - 1},
                asynchronous=asynchronous,
                depth=1 + j % 3,
            )
        )
    return out


def test_right_guesses_are_adopted() -> None:
    """Not only lossless: a right speculator actually gets its calls adopted."""
    # n1 and n2 are slower than the node before them, so each is still running when the main run
    # adopts it and its own speculation (which starts then, at depth 1) has time to launch the next
    spec = Spec("chain", 4, [100, 250, 250, 50], {0: "right", 1: "right", 2: "right"}, set(), False)
    graph = _speculative(spec, InMemorySaver(), speculator_timeout=5.0)  # never times out here
    graph.invoke(INPUT, {"configurable": {"thread_id": "t"}})
    report = graph.last_report
    assert report is not None
    assert report.hits == 3 and report.misses == 0
    assert report.adopted == 3  # n1, n2, and n3 (no speculator: launched on n2's branch)
    assert report.time_saved_s > 0
    assert report.node("n0").guesses == 2


def test_wrong_guesses_are_cancelled_not_adopted() -> None:
    spec = Spec("chain", 3, [150, 150, 150], {0: "wrong", 1: "wrong"}, set(), True)
    graph = _speculative(spec, InMemorySaver(), speculator_timeout=5.0)  # never times out here
    asyncio.run(graph.ainvoke(INPUT, {"configurable": {"thread_id": "t"}}))
    report = graph.last_report
    assert report is not None
    assert report.hits == 0 and report.misses == 2 and report.adopted == 0, report.events
    assert report.cancelled >= 2
