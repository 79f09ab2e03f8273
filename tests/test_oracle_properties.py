"""Lossless over the thin areas (issue #27): random domain apps, plain vs speculative, by the oracle.

The apps (`tests/domain_graphs.py`) hold records shaped like tool calls and messages, write and
delete in several store namespaces, ask a person in helpers, nested functions, subgraphs, after
a subgraph node and beside a speculated node, fan out equal `Send` payloads, return `Command`s
carrying messages, fail, call a chat model with tags; their speculators are right, right with
other ids, wrong and nearly right. The oracle (`tests/oracle.py`) compares everything
observable and says what differs. `LGS_HYPOTHESIS_EXAMPLES` scales the example counts.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langgraph_speculative import SpeculationPolicy, speculate

from . import oracle
from .conftest import examples
from .domain_graphs import DomainSpec, act_guess, build_domain, guesses, random_domain_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def domain_specs() -> st.SearchStrategy[DomainSpec]:
    return st.randoms(use_true_random=False).map(random_domain_spec)


def _turns(spec: DomainSpec) -> list[Any]:
    first = {"q": spec.q, "records": [], "messages": [], "log": []}
    if spec.gate == "none":
        return [first]
    if spec.gate == "after_subgraph":
        return [first, None]
    return [first, Command(resume="yes")]


def _graph(spec: DomainSpec, rec: oracle.Recorder, speculative: bool) -> Any:
    builder = build_domain(spec, rec)
    if speculative:
        specs: dict[str, Any] = {"plan": lambda s: guesses(spec, s)}
        if spec.speculate_act and spec.gate in ("none", "beside"):
            specs["act"] = act_guess(spec)
        builder = speculate(builder, specs, unsafe={"finish"}, policy=SpeculationPolicy(k=1, depth=2))
    return builder.compile(
        checkpointer=InMemorySaver(),
        store=oracle.RecordingStore(),
        interrupt_after=["act"] if spec.gate == "after_subgraph" else None,
    )


def run_sync(spec: DomainSpec, thread: str, speculative: bool) -> tuple[oracle.Observation, int]:
    rec = oracle.Recorder()
    graph = _graph(spec, rec, speculative)
    cfg: Any = {"configurable": {"thread_id": thread}}
    obs, adopted = oracle.Observation(), 0
    for turn in _turns(spec):
        try:
            if spec.stream:
                chunks = list(graph.stream(turn, cfg, stream_mode=oracle.STREAM_MODES))
                obs.streams.append(oracle.stream_view(chunks))
                obs.turns.append(oracle.result(graph.get_state(cfg).values))
            else:
                obs.turns.append(oracle.result(graph.invoke(turn, cfg)))
        except Exception as exc:  # the same error must come out of both runs
            obs.turns.append(oracle.raised(exc))
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report, spec.describe())
            adopted += graph.last_report.adopted
    obs.fill(rec, graph.store)
    obs.history = oracle.history(graph.get_state_history(cfg))
    return obs, adopted


async def run_async(spec: DomainSpec, thread: str, speculative: bool) -> tuple[oracle.Observation, int]:
    rec = oracle.Recorder()
    graph = _graph(spec, rec, speculative)
    cfg: Any = {"configurable": {"thread_id": thread}}
    obs, adopted = oracle.Observation(), 0
    for turn in _turns(spec):
        try:
            if spec.stream:
                chunks = [c async for c in graph.astream(turn, cfg, stream_mode=oracle.STREAM_MODES)]
                obs.streams.append(oracle.stream_view(chunks))
                obs.turns.append(oracle.result((await graph.aget_state(cfg)).values))
            else:
                obs.turns.append(oracle.result(await graph.ainvoke(turn, cfg)))
        except Exception as exc:  # the same error must come out of both runs
            obs.turns.append(oracle.raised(exc))
        if speculative and graph.last_report is not None:
            oracle.assert_report_sound(graph.last_report, spec.describe())
            adopted += graph.last_report.adopted
    obs.fill(rec, graph.store)
    obs.history = oracle.history([s async for s in graph.aget_state_history(cfg)])
    return obs, adopted


def check(spec: DomainSpec) -> int:
    """Run plain and speculative, assert the oracle sees no difference; the adoptions."""
    thread = uuid.uuid4().hex
    if spec.asynchronous:
        plain, _ = asyncio.run(run_async(spec, thread, False))
        spec_obs, adopted = asyncio.run(run_async(spec, thread, True))
    else:
        plain, _ = run_sync(spec, thread, False)
        spec_obs, adopted = run_sync(spec, thread, True)
    oracle.assert_same(plain, spec_obs, spec.describe())
    return adopted


@settings(max_examples=examples(25), **_SETTINGS)  # type: ignore[arg-type]
@given(spec=domain_specs())
def test_lossless_domain_apps(spec: DomainSpec) -> None:
    check(spec)


def test_domain_apps_adopt_often() -> None:
    """Not vacuous: right guesses (and right up to tool-call ids) get adopted."""
    rnd = random.Random(27)
    adopted = tried = 0
    for _ in range(300):
        spec = random_domain_spec(rnd)
        if spec.guess not in ("right", "other_ids") or spec.gate != "none" or spec.raises:
            continue
        tried += 1
        adopted += check(spec) > 0
        if tried == 6:
            break
    assert tried == 6 and adopted >= 3, (adopted, tried)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_default_key_tells_records_apart_by_their_ids(asynchronous: bool) -> None:
    """Records `{"id": "u-1", "name": "Ann"}` and `{"id": "u-3", "name": "Ann"}` are different
    inputs; a guess that differs from the actor only there must not get its early call adopted."""
    spec = DomainSpec(
        id_field="id",
        command=False,
        guess="nearly",
        nearly_field="record",
        speculate_act=False,
        gate="none",
        sends=0,
        store_ops=[],
        raises=False,
        model_tag=None,
        asynchronous=asynchronous,
        stream=False,
        q=1,
    )
    check(spec)
