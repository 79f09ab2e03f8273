"""Adaptive speculation (issue 18): the estimator and decision rule as pure functions, the
policy in real runs (lossless, switching off and on, learning across runs, budgets), and the
report's cost accounting (speculator calls, tokens, LangSmith metadata).

No wall-clock assertions: runs use real sleeps so that guesses arrive before the actor answers,
and assertions are on counts and committed values.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from typing import Any, TypedDict
from unittest import mock

import pytest
from hypothesis import given, settings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import AdaptivePolicy, Guess, SpeculationPolicy, speculate
from langgraph_speculative import _estimate as E

from . import test_lossless
from .conftest import examples
from .random_graphs import Spec, random_spec
from .test_langsmith import collector  # noqa: F401 - the loopback LangSmith fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WRONG = 10_000


# ---------------------------------------------------------------------- pure functions


def _outcome(
    right_rank: int | None, ranks: int = 3, confidences: Sequence[float | None] | None = None
) -> E.Outcome:
    return E.Outcome(
        hits=tuple(r == right_rank for r in range(1, ranks + 1)),
        confidences=tuple(confidences) if confidences is not None else (None,) * ranks,
        actor_s=0.1,
        speculator_s=0.01,
        lead_s=0.09,
        lag_s=0.0,
    )


def _simulate(
    ps: Sequence[float], policy: AdaptivePolicy, seed: int = 0, right_rank: int = 1
) -> list[tuple[str, list[int]]]:
    """The decision rule on a chain of steps where the guess at `right_rank` is right with
    chance ps[t]: (gate, branched ranks) per step."""
    rng, draws, e = random.Random(f"{policy.seed}:n"), random.Random(seed), E.Estimates()
    out = []
    for p in ps:
        mode = E.gate(e, policy, rng, k=3)
        ranks: list[int] = []
        if mode != "off":
            ranks = E.choose(e, [None] * 3, policy)
            E.observe(e, _outcome(right_rank if draws.random() < p else None), policy)
        else:
            E.observe(e, E.Outcome(actor_s=0.1), policy)
        out.append((mode, ranks))
    return out


def test_hit_rates_by_rank_learn_from_every_guess() -> None:
    policy = AdaptivePolicy(window=1_000_000)  # (next to) no forgetting: exact counts
    e = E.Estimates()
    assert E.hit_rate(e, 1, None, policy.prior) == pytest.approx(0.5)  # the prior, before anything
    assert E.hit_rate(e, 2, None, policy.prior) == 0.0  # lower ranks must prove themselves
    for right in (1, 1, 2, None):
        E.observe(e, _outcome(right), policy)
    # (hits + 0.4 prior) / (seen + 0.4)
    assert E.hit_rate(e, 1, None, policy.prior) == pytest.approx((2 + 0.2) / (4 + 0.4), rel=1e-4)
    assert E.hit_rate(e, 2, None, policy.prior) == pytest.approx(1 / 4.4, rel=1e-4)
    assert E.hit_rate(e, 3, None, policy.prior) == 0.0
    assert e.actor_s.get(0) == pytest.approx(0.1)
    assert E.saved_s(e) == pytest.approx(0.09, rel=0.2)


def test_forgetting_follows_the_window() -> None:
    e = E.Estimates()
    policy = AdaptivePolicy(window=4)
    for _ in range(50):
        E.observe(e, _outcome(1), policy)
    for _ in range(6):
        E.observe(e, _outcome(None), policy)
    # after 6 misses with window 4 the old hits weigh (3/4)^6 of what they did
    assert E.hit_rate(e, 1, None, policy.prior) < 0.25


def test_choose_branches_guesses_worth_their_price() -> None:
    policy = AdaptivePolicy(window=1000)
    e = E.Estimates()
    for i in range(20):  # rank 1 right 60%, rank 2 right 20%, rank 3 never
        E.observe(e, _outcome(1 if i % 5 < 3 else 2 if i % 5 == 3 else None), policy)
    assert E.choose(e, [None] * 3, policy) == [1, 2]
    assert E.choose(e, [None] * 3, policy, limit=1) == [1]  # the best value first
    assert E.choose(e, [None] * 3, AdaptivePolicy(cost_weight=0.5, window=1000)) == [1]
    assert E.choose(e, [None] * 3, AdaptivePolicy(cost_weight=5.0, window=1000)) == []
    # deeper in a tree (the branch itself right 30%): fewer guesses pay
    assert E.choose(e, [None] * 3, policy, path=0.3) == [1]
    assert E.choose(e, [None] * 3, policy, path=0.05) == []


def test_cost_weight_is_monotone() -> None:
    """A higher price never branches more: per decision (subsets), and over a whole workload."""
    rnd = random.Random(7)
    for _ in range(30):
        e = E.Estimates()
        base = AdaptivePolicy(window=rnd.choice([5, 20, 100]))
        for _ in range(rnd.randint(1, 30)):
            E.observe(e, _outcome(rnd.choice([1, 1, 2, 3, None])), base)
        previous: set[int] | None = None
        for cw in (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0):
            chosen = set(E.choose(e, [None] * 3, AdaptivePolicy(cost_weight=cw)))
            if previous is not None:
                assert chosen <= previous
            previous = chosen
            assert E.step_value(e, AdaptivePolicy(cost_weight=cw)) >= E.step_value(
                e, AdaptivePolicy(cost_weight=cw * 2 + 0.01)
            )
    ps = [0.3] * 40
    branched = [
        sum(len(r) for _, r in _simulate(ps, AdaptivePolicy(cost_weight=cw))) for cw in (0.0, 0.1, 0.3, 1.0)
    ]
    assert branched == sorted(branched, reverse=True) and branched[0] > branched[-1]


def test_decisions_are_deterministic_under_a_seed() -> None:
    ps = [0.0] * 30 + [0.6] * 30
    a = _simulate(ps, AdaptivePolicy(seed=3))
    assert a == _simulate(ps, AdaptivePolicy(seed=3))
    others = [_simulate(ps, AdaptivePolicy(seed=s)) for s in range(4, 10)]
    assert any(o != a for o in others)  # the seed drives the probing draws


def test_switches_off_at_p0_and_probes_without_branching() -> None:
    steps = _simulate([0.0] * 200, AdaptivePolicy())
    branched = sum(len(r) for _, r in steps)
    assert branched <= 2  # two misses outweigh the prior of a node never seen right
    modes = [m for m, _ in steps]
    assert "on" not in modes[2:]
    probes = modes[100:].count("probe")
    assert 0 < probes < 50  # still checks now and then, far from every step


def test_switches_back_on_after_a_drift() -> None:
    steps = _simulate([0.0] * 60 + [0.9] * 40, AdaptivePolicy())
    later = [bool(r) for _, r in steps[60:]]
    first_on = later.index(True)
    assert first_on <= 15  # probing noticed the change
    assert sum(later[first_on:]) >= 0.8 * len(later[first_on:])  # and it stays on
    # and off again when the speculator goes bad (within a few windows)
    steps = _simulate([0.9] * 40 + [0.0] * 60, AdaptivePolicy())
    assert not any(r for _, r in steps[40 + 30 :])  # within three windows (of 10)


def test_lower_ranks_are_learned_without_branching_them() -> None:
    steps = _simulate([0.9] * 40, AdaptivePolicy(), right_rank=2)
    assert steps[-1] == ("on", [2])  # rank 2 is the one worth a branch


def test_confidence_feeds_the_estimate() -> None:
    """A calibrated confidence separates the good guesses from the bad at the same rank."""
    policy = AdaptivePolicy(window=200)
    e = E.Estimates()
    rnd = random.Random(1)
    for _ in range(60):  # rank 1 is right half of the time; its confidence says when
        right = rnd.random() < 0.5
        E.observe(e, _outcome(1 if right else None, confidences=[0.9 if right else 0.1, 0.1, 0.1]), policy)
    assert E.hit_rate(e, 1, 0.9, policy.prior) > 0.8
    assert E.hit_rate(e, 1, 0.1, policy.prior) < 0.1
    assert E.choose(e, [0.9, 0.1, 0.1], policy) == [1]
    assert E.choose(e, [0.1, 0.1, 0.1], policy) == []


def test_a_speculator_slower_than_the_actor_is_switched_off() -> None:
    policy = AdaptivePolicy()
    e = E.Estimates()
    rng = random.Random(0)
    for _ in range(30):  # guesses never arrive in time: nothing to hide
        E.observe(e, E.Outcome(actor_s=0.05, speculator_s=0.05, lead_s=0.0), policy)
    assert E.step_value(e, policy) <= 0
    assert [E.gate(e, policy, rng) for _ in range(20)].count("on") == 0


def test_policy_values() -> None:
    assert SpeculationPolicy(adaptive=True).adaptive == AdaptivePolicy()
    assert SpeculationPolicy(adaptive=False).adaptive is None
    assert SpeculationPolicy().adaptive is None
    with pytest.raises(TypeError, match="adaptive"):
        SpeculationPolicy(adaptive="yes")  # type: ignore[arg-type]
    for bad in (
        {"cost_weight": -1},
        {"cost_weight": float("inf")},
        {"prior": 1.5},
        {"probe": -0.1},
        {"window": 0},
        {"max_calls": -1},
        {"max_tokens": 1.5},
        {"seed": "x"},
    ):
        with pytest.raises(ValueError, match="AdaptivePolicy"):
            AdaptivePolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AdaptivePolicy(0.1)  # type: ignore[misc]  # keyword-only


# ---------------------------------------------------------------------- real runs


class S(TypedDict):
    t: int
    v: int


def loop_graph(
    steps: int,
    right: Callable[[int], int | None],
    policy: SpeculationPolicy,
    *,
    actor_s: float = 0.03,
    model: BaseChatModel | None = None,
    speculator_model: BaseChatModel | None = None,
) -> Any:
    """An agent loop of `steps` slow calls; the speculator's right guess is at rank right(t)."""

    async def act(state: S) -> dict[str, int]:
        if model is not None:
            await model.ainvoke(f"step {state['t']} {state['v']}")
        else:
            await asyncio.sleep(actor_s)
        return {"t": state["t"] + 1, "v": state["t"] + 1}

    async def guess(state: S) -> list[dict[str, int]]:
        t = state["t"]
        if speculator_model is not None:
            await speculator_model.ainvoke(f"guess {t}")
        r = right(t)
        return [{"t": t + 1, "v": t + 1 if rank == r else WRONG * rank + t + 1} for rank in (1, 2, 3)]

    b = StateGraph(S)
    b.add_node("act", act)
    b.add_edge(START, "act")
    b.add_conditional_edges("act", lambda s: "act" if s["t"] < steps else END, ["act", END])
    return speculate(b, {"act": guess}, policy=policy).compile()


def _adaptive(**kw: Any) -> SpeculationPolicy:
    return SpeculationPolicy(k=3, max_inflight=32, adaptive=AdaptivePolicy(**kw))


def _run(graph: Any, steps: int) -> Any:
    out = asyncio.run(graph.ainvoke({"t": 0, "v": 0}, {"recursion_limit": steps + 10}))
    assert out == {"t": steps, "v": steps}  # what a plain run commits
    return graph.last_report


def test_a_run_at_p0_stops_wasting_calls() -> None:
    graph = loop_graph(15, lambda t: None, _adaptive())
    report = _run(graph, 15)
    assert report.wasted <= 2 and report.launched <= 2
    events = [e for e in report.events if e["event"] == "adaptive"]
    assert events and all(not e.get("branched") for e in events[2:])
    static = loop_graph(15, lambda t: None, SpeculationPolicy(k=3))
    assert _run(static, 15).wasted > 10  # what it saves: the static policy forks 3 a step


def test_learns_across_runs_and_branches_only_the_rank_that_pays() -> None:
    graph = loop_graph(8, lambda t: 2, _adaptive())
    first = _run(graph, 8)
    second = _run(graph, 8)  # the estimates of the first run carry over
    rates = graph.speculation.tuning.snapshot()["act"]["hit_rates"]
    assert rates[1] > 0.5 and rates[0] < 0.2 and rates[2] == 0.0
    branched = [e["branched"] for e in second.events if e["event"] == "adaptive" and "branched" in e]
    assert branched and all(b == [2] for b in branched)
    assert second.adopted >= 3 and second.wasted <= 1
    # the second run wastes no more than the first, which had to learn the ranks (branch counts
    # alone are timing: a first-run step whose guesses came after its actor branched nothing)
    assert second.nodes["act"].wasted <= first.nodes["act"].wasted
    ranks = {e["rank"] for e in second.events if e["event"] == "hit"}
    assert ranks == {2}  # the branch keeps the speculator's rank


def test_a_run_budget_bounds_speculative_calls() -> None:
    graph = loop_graph(10, lambda t: 1, _adaptive(max_calls=3))
    report = _run(graph, 10)
    assert report.launched <= 3
    assert any(e["event"] == "budget_spent" for e in report.events)
    assert report.adopted >= 1


def test_lossless_when_adaptive_turns_on_and_off() -> None:
    """Right, wrong, rank-2 and silent stretches in one run, repeated: plain results every time."""
    pattern = [1] * 6 + [None] * 8 + [2] * 6 + [3] * 4 + [1] * 6
    graph = loop_graph(len(pattern), lambda t: pattern[t], _adaptive(window=5))
    for _ in range(3):
        _run(graph, len(pattern))


def test_depth_is_chosen_by_the_chance_that_the_branch_is_right() -> None:
    """With depth up to 3, early calls on branches speculate only while the path pays."""
    mostly = [1, 1, 1, 1, None] * 4  # right 80% of the time: a branch's branch is right 64%
    deep = SpeculationPolicy(k=3, depth=3, max_inflight=32, adaptive=AdaptivePolicy(prior=1.0))
    report = _run(loop_graph(20, lambda t: mostly[t], deep), 20)
    deeper = [e for e in report.events if e["event"] == "adaptive" and 0 < e.get("path", 1.0) < 1.0]
    assert deeper and any(e["branched"] == [1] for e in deeper)
    # a speculator right half of the time: deeper branches would be right a quarter of the time
    # or less, and with a high price they do not pay
    half = loop_graph(
        12,
        lambda t: 1 if t % 2 else None,
        SpeculationPolicy(
            k=3, depth=3, max_inflight=32, adaptive=AdaptivePolicy(prior=1.0, cost_weight=0.5, window=4)
        ),
    )
    report = _run(half, 12)
    for e in report.events:
        if e["event"] == "adaptive" and e.get("path", 1.0) < 0.4:
            assert not e.get("branched")


def _adaptive_policy_patch(*args: Any, **kwargs: Any) -> SpeculationPolicy:
    return SpeculationPolicy(*args, **kwargs, adaptive=AdaptivePolicy(prior=1.0, window=3))


@settings(max_examples=examples(40), **test_lossless._SETTINGS)  # type: ignore[arg-type]
@given(spec=test_lossless.specs())
def test_lossless_random_apps_with_the_adaptive_policy(spec: Spec) -> None:
    """The lossless property of `test_lossless`, with every policy adaptive. Adoption is not
    required there: an adaptive policy may rightly decline to branch."""
    with (
        mock.patch.object(test_lossless, "SpeculationPolicy", _adaptive_policy_patch),
        mock.patch.object(test_lossless, "expects_adoption", lambda *a: False),
    ):
        test_lossless._check_any(spec)


def test_the_adaptive_lossless_property_still_adopts() -> None:
    """Not vacuous: with a prior of 1, the random apps adopt as the static ones do."""
    rnd = random.Random(99)
    adopted = 0
    with mock.patch.object(test_lossless, "SpeculationPolicy", _adaptive_policy_patch):
        for _ in range(12):
            spec = random_spec(rnd, asynchronous=True)
            res = asyncio.run(test_lossless.run_async(spec, test_lossless.InMemorySaver(), "t", True))
            adopted += res.adopted
    assert adopted >= 3


# ---------------------------------------------------------------------- cost accounting


class TokenModel(BaseChatModel):
    """A chat model with real latency whose replies carry usage metadata."""

    delay: float = 0.03
    input_tokens: int = 7
    output_tokens: int = 3

    @property
    def _llm_type(self) -> str:
        return "token-model"

    def _reply(self) -> ChatResult:
        usage = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok", usage_metadata=usage))])  # type: ignore[arg-type]

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        return self._reply()

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.delay)
        return self._reply()


def test_report_counts_tokens_of_adopted_wasted_and_speculator_calls() -> None:
    actor = TokenModel(delay=0.04, input_tokens=90, output_tokens=10)  # 100 a call
    spec_model = TokenModel(delay=0.0, input_tokens=4, output_tokens=1)  # 5 a call
    graph = loop_graph(6, lambda t: 1, SpeculationPolicy(k=2), model=actor, speculator_model=spec_model)
    report = _run(graph, 6)
    s = report.summary()
    json.dumps(s)  # plain JSON
    assert s["speculator_calls"] == report.node("act").speculator_calls >= 5
    late = sum(e["event"] == "speculator_late" for e in report.events)  # cancelled: maybe not counted
    assert 5 * (s["speculator_calls"] - late) <= s["speculator_tokens"] <= 5 * s["speculator_calls"]
    assert s["tokens_adopted"] == 100 * report.adopted and report.adopted >= 2
    assert s["tokens_wasted"] % 100 == 0 and s["tokens_wasted"] <= 100 * report.wasted
    assert report.wasted >= 2  # rank 2 is always wrong
    assert s["speculator_s"] > 0
    per = s["cost_per_saved_s"]
    assert set(per) == {"wasted_calls", "wasted_s", "speculator_s", "tokens"}
    assert per["wasted_calls"] == pytest.approx(report.wasted / report.time_saved_s, rel=1e-3)
    assert s["nodes"]["act"]["tokens_adopted"] == s["tokens_adopted"]
    merged = graph.report.summary()  # the graph's report merges the cost fields too
    assert (
        merged["tokens_adopted"] == s["tokens_adopted"]
        and merged["speculator_calls"] == s["speculator_calls"]
    )


def test_tokens_from_an_updates_messages_when_callbacks_saw_none() -> None:
    class M(TypedDict):
        t: int
        messages: list[Any]

    usage = {"input_tokens": 20, "output_tokens": 5, "total_tokens": 25}

    async def act(state: M) -> dict[str, Any]:
        await asyncio.sleep(0.1)  # a model called outside LangChain: only its message tells
        return {"t": state["t"] + 1, "messages": [AIMessage(f"step {state['t']}", usage_metadata=usage)]}  # type: ignore[arg-type]

    def guess(state: M) -> list[Guess]:
        return [
            Guess({"t": state["t"] + 1, "messages": [AIMessage(f"step {state['t']}", usage_metadata=usage)]})
        ]  # type: ignore[arg-type]

    b = StateGraph(M)
    b.add_node("act", act)
    b.add_edge(START, "act")
    b.add_conditional_edges("act", lambda s: "act" if s["t"] < 4 else END, ["act", END])
    graph = speculate(b, {"act": guess}, policy=SpeculationPolicy(k=1)).compile()
    asyncio.run(graph.ainvoke({"t": 0, "messages": []}))
    report = graph.last_report
    assert report is not None and report.adopted >= 1
    assert report.summary()["tokens_adopted"] == 25 * report.adopted


def test_adaptive_prices_tokens() -> None:
    """With a price per token, expensive speculative calls need a better hit rate."""
    policy = AdaptivePolicy(window=1000)
    e = E.Estimates()
    for i in range(20):
        E.observe(e, _outcome(1 if i % 10 < 3 else None), policy)  # rank 1 right 30%
    e.call_tokens.add(2000.0, 1.0)
    assert E.choose(e, [None] * 3, policy) == [1]
    assert E.choose(e, [None] * 3, AdaptivePolicy(window=1000, token_price=1e-4)) == []


def test_langsmith_graph_run_carries_the_summary(collector: str) -> None:  # noqa: F811
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    client = Client(api_url=collector, api_key="test-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="adaptive-test")
    # (tracing posts each run synchronously here: a slow actor leaves branches time to launch)
    graph = loop_graph(5, lambda t: 1, _adaptive(prior=1.0), actor_s=0.2)
    out = asyncio.run(graph.ainvoke({"t": 0, "v": 0}, {"callbacks": [tracer], "recursion_limit": 20}))
    assert out == {"t": 5, "v": 5}
    tracer.wait_for_futures()
    client.flush()
    from .test_langsmith import _Collector

    roots = [r for r in _Collector.posts if r.get("parent_run_id") is None]
    assert len(roots) == 1
    meta = _Collector.patches[roots[0]["id"]]["extra"]["metadata"]["speculation"]
    report = graph.last_report
    assert meta["calls"] == report.calls == 5
    assert meta["adopted"] == report.adopted >= 2
    assert meta["wasted"] == report.wasted
    for key in ("speculator_calls", "tokens_wasted", "cost_per_saved_s", "time_saved_s"):
        assert key in meta


def test_sync_runs_account_and_trace_too(collector: str) -> None:  # noqa: F811
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    client = Client(api_url=collector, api_key="test-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="adaptive-sync")

    def act(state: S) -> dict[str, int]:
        import time

        time.sleep(0.2)
        return {"t": state["t"] + 1, "v": state["t"] + 1}

    def guess(state: S) -> list[dict[str, int]]:
        return [{"t": state["t"] + 1, "v": state["t"] + 1}, {"t": state["t"] + 1, "v": WRONG}]

    b = StateGraph(S)
    b.add_node("act", act)
    b.add_edge(START, "act")
    b.add_conditional_edges("act", lambda s: "act" if s["t"] < 5 else END, ["act", END])
    graph = speculate(b, {"act": guess}, policy=_adaptive(prior=1.0)).compile()
    assert graph.invoke({"t": 0, "v": 0}, {"callbacks": [tracer]}) == {"t": 5, "v": 5}
    tracer.wait_for_futures()
    client.flush()
    from .test_langsmith import _Collector

    report = graph.last_report
    # a call adopted from a branch that ran ahead calls no speculator of its own: at least two did
    assert report is not None and report.adopted >= 2 and report.summary()["speculator_calls"] >= 2
    roots = [r for r in _Collector.posts if r.get("parent_run_id") is None]
    meta = _Collector.patches[roots[0]["id"]]["extra"]["metadata"]["speculation"]
    assert meta["adopted"] == report.adopted
