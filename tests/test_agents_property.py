"""Property: whatever the script and whatever the speculator does, the transcript is the plain
agent's, every write runs exactly as often as without the middleware, and never early."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage

from langgraph_speculative import SpeculationPolicy
from langgraph_speculative.agents import SpeculativeToolCalls

from .agents_fakes import READS, Shop, ask, scripted, transcript
from .conftest import examples

CALLS = st.one_of(
    st.builds(lambda o: ("get_order", {"order_id": o}), st.sampled_from(["A1", "B2"])),
    st.builds(lambda u: ("get_user", {"user_id": u}), st.just("ann_1")),
    st.builds(lambda e: ("find_user", {"email": e}), st.sampled_from(["ann@example.com", "zed@x.org"])),
    st.builds(lambda o: ("cancel_order", {"order_id": o}), st.sampled_from(["A1", "B2"])),
)
GUESS_CALLS = st.one_of(CALLS, st.just(("get_order", {"order_id": "ZZ"})))  # ZZ: the read raises
TURN = st.lists(CALLS, min_size=1, max_size=3).filter(
    # a read and a write of the same turn run concurrently in the plain agent too: its result would race
    lambda calls: not ({"cancel_order"} <= {n for n, _ in calls} and "get_order" in {n for n, _ in calls})
)
BEHAVIOUR = st.sampled_from(["right", "part", "wrong", "junk", "raise", "empty", "slow"])


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    script = draw(st.lists(TURN, min_size=1, max_size=4))
    behaviours = draw(st.lists(BEHAVIOUR, min_size=len(script) + 1, max_size=len(script) + 1))
    wrong = draw(
        st.lists(st.lists(GUESS_CALLS, max_size=3), min_size=len(script) + 1, max_size=len(script) + 1)
    )
    return {
        "script": script,
        "behaviours": behaviours,
        "wrong": wrong,
        "ids": draw(st.sampled_from(["random", "seeded"])),
        "mode": draw(st.sampled_from(["invoke", "ainvoke"])),
        "k": draw(st.integers(1, 3)),
    }


def _speculator(sc: dict[str, Any]) -> Any:
    def guess(state: dict[str, Any]) -> Any:
        turn = sum(isinstance(m, AIMessage) for m in state["messages"])
        kind = sc["behaviours"][turn]
        real = sc["script"][turn] if turn < len(sc["script"]) else []
        as_guesses = [{"name": n, "args": a} for n, a in real]
        wrong = [{"name": n, "args": a} for n, a in sc["wrong"][turn]]
        if kind == "right":
            return as_guesses + wrong
        if kind == "part":
            return wrong[:1] + as_guesses[:1]
        if kind == "wrong":
            return wrong
        if kind == "junk":
            return [None, {"name": 3}, "get_order", *wrong]
        if kind == "raise":
            raise RuntimeError("boom")
        if kind == "slow":
            time.sleep(0.03)  # answers after the model
            return as_guesses
        return []

    return guess


def _run(sc: dict[str, Any], speculate: bool) -> tuple[list[Any], Shop]:
    shop = Shop(latency=0.005)
    model = scripted(sc["script"], delay=0.01, ids=sc["ids"], seed=5)
    middleware = (
        [SpeculativeToolCalls(_speculator(sc), read_only=READS, policy=SpeculationPolicy(k=sc["k"]))]
        if speculate
        else []
    )
    agent = create_agent(model, shop.tools(), middleware=middleware)
    out = agent.invoke(ask()) if sc["mode"] == "invoke" else asyncio.run(agent.ainvoke(ask()))
    return transcript(out["messages"], canonical_ids=sc["ids"] == "random"), shop


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_lossless_whatever_the_speculator_does(sc: dict[str, Any]) -> None:
    plain, plain_shop = _run(sc, speculate=False)
    spec, shop = _run(sc, speculate=True)
    assert spec == plain
    assert sorted(str(w["args"]) for w in shop.writes()) == sorted(
        str(w["args"]) for w in plain_shop.writes()
    )
    assert not any(w["early"] for w in shop.writes())
