"""`prefetch=`: speculation without a speculator (issue 29). While a listed node runs, the nodes
that can follow it start early on its input; the main run adopts the one whose key matches on
its real input and the others are cancelled. Lossless by the same rule as every adoption."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore

from langgraph_speculative import AdaptivePolicy, SpeculationPolicy, speculate

from . import oracle
from .leftovers import leftover_work

TARGETS = ("billing", "shipping", "returns")
KEYS = {t: (lambda s: s["text"]) for t in TARGETS}


class S(TypedDict, total=False):
    text: str
    route: str
    answer: str
    final: str


def _graph(
    calls: Counter[str],
    asynchronous: bool,
    store_writer: bool = False,
    route: Callable[[str], str] | None = None,
) -> StateGraph:
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            calls[name] += 1

    def route_of(text: str) -> str:
        return route(text) if route is not None else TARGETS[sum(map(ord, text)) % 3]

    def router(state: S) -> dict[str, Any]:
        count("router")
        time.sleep(0.08)
        return {"route": route_of(state["text"])}

    async def arouter(state: S) -> dict[str, Any]:
        count("router")
        await asyncio.sleep(0.08)
        return {"route": route_of(state["text"])}

    def target(name: str) -> Any:
        def run(state: S) -> dict[str, Any]:
            count(name)
            time.sleep(0.08)
            if store_writer:
                get_store().put(("answers",), state["text"], {"by": name})
            return {"answer": f"{name}: {state['text']}"}

        async def arun(state: S) -> dict[str, Any]:
            count(name)
            await asyncio.sleep(0.08)
            if store_writer:
                await get_store().aput(("answers",), state["text"], {"by": name})
            return {"answer": f"{name}: {state['text']}"}

        return arun if asynchronous else run

    def final(state: S) -> dict[str, Any]:
        count("final")
        return {"final": state["answer"].upper()}

    builder = StateGraph(S)
    builder.add_node("router", arouter if asynchronous else router)
    for name in TARGETS:
        builder.add_node(name, target(name))
        builder.add_edge(name, "final")
    builder.add_node("final", final)
    builder.add_edge(START, "router")
    builder.add_conditional_edges("router", lambda s: s["route"], list(TARGETS))
    builder.add_edge("final", END)
    return builder


@pytest.mark.parametrize("asynchronous", [False, True])
def test_prefetch_adopts_the_chosen_successor_and_commits_what_plain_commits(asynchronous: bool) -> None:
    plain_calls: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    plain = _graph(plain_calls, asynchronous).compile(checkpointer=InMemorySaver())
    graph = speculate(
        _graph(calls, asynchronous), {}, prefetch={"router"}, keys=KEYS, policy=SpeculationPolicy(k=3)
    ).compile(checkpointer=InMemorySaver())
    texts = [f"question {i}" for i in range(6)]
    for i, text in enumerate(texts):
        cfg: Any = {"configurable": {"thread_id": f"t{i}"}}
        if asynchronous:
            want = asyncio.run(plain.ainvoke({"text": text}, cfg))
            got = asyncio.run(graph.ainvoke({"text": text}, cfg))
        else:
            want = plain.invoke({"text": text}, cfg)
            got = graph.invoke({"text": text}, cfg)
        assert got == want
        assert [s.values for s in graph.get_state_history(cfg)] == [
            s.values for s in plain.get_state_history(cfg)
        ]
        report = graph.last_report
        assert report is not None
        assert sum(report.node(t).adopted for t in TARGETS) == 1  # the chosen one, every run
        oracle.assert_report_sound(report)
    assert calls["final"] == plain_calls["final"] == len(texts)  # downstream: once per input
    assert calls["router"] == plain_calls["router"]
    assert leftover_work() == []


@pytest.mark.parametrize("asynchronous", [False, True])
def test_adaptive_prefetch_learns_which_successors_pay(asynchronous: bool) -> None:
    """With an adaptive policy a prefetch launches only the successors whose early calls the
    graph's runs showed adopted; every successor is checked against the main run's next call,
    launched or not, so one that starts to be chosen is launched again."""
    chosen = {"route": "billing"}
    plain_calls: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    plain = _graph(plain_calls, asynchronous, route=lambda _: chosen["route"]).compile(
        checkpointer=InMemorySaver()
    )
    graph = speculate(
        _graph(calls, asynchronous, route=lambda _: chosen["route"]),
        {},
        prefetch={"router"},
        keys=KEYS,
        policy=SpeculationPolicy(k=3, adaptive=AdaptivePolicy()),
    ).compile(checkpointer=InMemorySaver())

    def run(i: int) -> tuple[Counter[str], Any]:
        before = Counter(calls)
        cfg: Any = {"configurable": {"thread_id": f"a{i}"}}
        if asynchronous:
            want = asyncio.run(plain.ainvoke({"text": f"q{i}"}, cfg))
            got = asyncio.run(graph.ainvoke({"text": f"q{i}"}, cfg))
        else:
            want = plain.invoke({"text": f"q{i}"}, cfg)
            got = graph.invoke({"text": f"q{i}"}, cfg)
        assert got == want
        assert [s.values for s in graph.get_state_history(cfg)] == [
            s.values for s in plain.get_state_history(cfg)
        ]
        report = graph.last_report
        assert report is not None
        oracle.assert_report_sound(report)
        return calls - before, report

    first, report = run(0)  # nothing learned yet: every successor launched
    assert all(first[t] == 1 for t in TARGETS) and report.node("billing").adopted == 1
    for i in range(1, 8):
        made, report = run(i)
        assert report.node("billing").adopted == 1
        if i >= 2:  # two misses each: the others' early calls do not pay
            assert made["shipping"] == made["returns"] == 0, (i, made)
    rates = graph.speculation.tuning.snapshot()["router"]["prefetch_hit_rates"]
    assert rates["billing"] > 0.9 and rates["shipping"] < 0.1 and rates["returns"] < 0.1

    chosen["route"] = "returns"  # the router changes its mind: learned without launching
    made, report = run(8)
    assert report.node("returns").adopted == 0 and made["returns"] == 1  # the main run's own call
    for i in range(9, 12):
        made, report = run(i)
        assert report.node("returns").adopted == 1 and made["returns"] == 1
    assert calls["final"] == plain_calls["final"] and calls["router"] == plain_calls["router"]
    assert leftover_work() == []


def test_a_prefetched_store_write_is_made_only_by_the_adopted_call() -> None:
    calls: Counter[str] = Counter()
    store = InMemoryStore()
    graph = speculate(_graph(calls, False, store_writer=True), {}, prefetch={"router"}, keys=KEYS).compile(
        checkpointer=InMemorySaver(), store=store
    )
    plain_store = InMemoryStore()
    plain = _graph(Counter(), False, store_writer=True).compile(
        checkpointer=InMemorySaver(), store=plain_store
    )
    cfg: Any = {"configurable": {"thread_id": "t"}}
    assert graph.invoke({"text": "hello"}, cfg) == plain.invoke({"text": "hello"}, cfg)
    assert [i.value for i in store.search(("answers",))] == [
        i.value for i in plain_store.search(("answers",))
    ]
    assert sum(calls[t] for t in TARGETS) >= 2  # the others ran early too, and wrote nothing


def test_prefetch_is_checked_at_build_time() -> None:
    with pytest.raises(ValueError, match=r"prefetch=.*'nope'.*not a node"):
        speculate(_graph(Counter(), False), {}, prefetch={"nope"}, keys=KEYS)
    with pytest.raises(TypeError, match="prefetch must be a set of node names"):
        speculate(_graph(Counter(), False), {}, prefetch="router", keys=KEYS)
    builder = StateGraph(S)
    builder.add_node("router", lambda s: {"route": "billing"})
    builder.add_node("billing", lambda s: {"answer": "x"})
    builder.add_edge(START, "router")
    builder.add_conditional_edges("router", lambda s: s["route"])  # no path map
    with pytest.raises(ValueError, match=r"cannot tell which nodes follow 'router'.*targets"):
        speculate(builder, {}, prefetch={"router"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        speculate(_graph(Counter(), False), {}, prefetch={"router"})
    assert any("have no key" in str(w.message) for w in caught)


def test_unsafe_successors_are_never_prefetched() -> None:
    calls: Counter[str] = Counter()
    graph = speculate(
        _graph(calls, False), {}, prefetch={"router"}, keys=KEYS, unsafe={"billing", "returns"}
    ).compile(checkpointer=InMemorySaver())
    for i in range(6):
        graph.invoke({"text": f"question {i}"}, {"configurable": {"thread_id": f"u{i}"}})
    plain_calls: Counter[str] = Counter()
    plain = _graph(plain_calls, False).compile(checkpointer=InMemorySaver())
    for i in range(6):
        plain.invoke({"text": f"question {i}"}, {"configurable": {"thread_id": f"u{i}"}})
    assert calls["billing"] == plain_calls["billing"] and calls["returns"] == plain_calls["returns"]
