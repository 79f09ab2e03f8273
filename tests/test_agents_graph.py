"""Graph-level speculation of existing agents: `speculate(create_agent(...), ...)`.

The agent's compiled graph is speculated whole: guessed model replies run their read-only tool
calls on branches, which go on to the next model call; adopted tool messages carry the main
run's (random) tool-call ids, a write tool never runs on a branch, and what `create_agent`
configured (recursion limit, metadata, checkpointer, store) is kept.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langgraph_speculative import SpeculationPolicy, speculate
from langgraph_speculative.agents import model_call_speculator

from .agents_fakes import READS, WRITES, Shop, scripted, shop_script, transcript

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _script_guesser(script: list[Any], right: bool) -> Any:
    """Guesses the scripted model's next calls (right: as the script will make them)."""

    def guess(state: Any) -> list[dict[str, Any]]:
        messages = state["messages"]
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn >= len(script):
            return []
        step = script[turn]
        calls = step(messages) if callable(step) else step
        if isinstance(calls, str):
            return []
        if not right:
            return [
                {"name": "get_order", "args": {"order_id": "ZZ"}},
                {"name": "cancel_order", "args": {"order_id": "A1"}},
            ]
        return [{"name": n, "args": a} for n, a in calls]

    return guess


def _agent(shop: Shop, script: list[Any], checkpointer: Any = None, store: Any = None, **kw: Any) -> Any:
    model = scripted(script, delay=0.05)
    return create_agent(model, tools=shop.tools(), checkpointer=checkpointer, store=store, **kw)


def _run(agent: Any, cfg: Any, asynchronous: bool, inputs: Any = None) -> Any:
    inputs = inputs or {"messages": [HumanMessage("Cancel my pending order, ann@example.com")]}
    return asyncio.run(agent.ainvoke(inputs, cfg)) if asynchronous else agent.invoke(inputs, cfg)


def _linked(messages: list[Any]) -> bool:
    """Every ToolMessage answers a call the transcript made (no guessed ids left behind)."""
    called = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return all(m.tool_call_id in called for m in messages if isinstance(m, ToolMessage))


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
def test_a_speculated_agent_writes_the_same_transcript_and_never_writes_early(
    asynchronous: bool, right: bool
) -> None:
    script = shop_script()
    plain_shop, shop = Shop(latency=0.1), Shop(latency=0.1)
    plain = _run(_agent(plain_shop, script), None, asynchronous)
    agent = speculate(
        _agent(shop, script),
        {"model": model_call_speculator(_script_guesser(script, right))},
        read_only_tools=READS,
        policy=SpeculationPolicy(k=2),
    )
    got = _run(agent, None, asynchronous)
    assert transcript(got["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert _linked(got["messages"])
    assert shop.orders == plain_shop.orders
    assert not [e for e in shop.writes() if e["early"]]  # a write never ran on a branch
    assert len(shop.writes()) == len(plain_shop.writes())
    report = agent.last_report
    if right:
        assert report.adopted >= 3, report.summary()  # tool calls (and model calls) served from branches


def test_what_create_agent_configured_is_kept() -> None:
    saver, store = InMemorySaver(), InMemoryStore()
    shop = Shop(latency=0.01)
    base = _agent(shop, shop_script(), checkpointer=saver, store=store, name="support")
    agent = speculate(
        base, {"model": model_call_speculator(_script_guesser(shop_script(), True))}, read_only_tools=READS
    )
    assert agent.checkpointer is saver and agent.store is store
    assert agent.config["recursion_limit"] == base.config["recursion_limit"] == 9_999
    assert agent.config["metadata"] == base.config["metadata"]
    assert agent.name == base.name == "support"
    assert list(agent.stream_transformers) == list(base.stream_transformers)
    cfg = {"configurable": {"thread_id": "t"}}
    out = agent.invoke({"messages": [HumanMessage("Cancel my pending order, ann@example.com")]}, cfg)
    assert agent.get_state(cfg).values["messages"] == out["messages"]
    # a second turn on the thread remembers the first
    out2 = agent.invoke({"messages": [HumanMessage("thanks")]}, cfg)
    assert len(out2["messages"]) > len(out["messages"])


def test_tool_nodes_run_nothing_on_a_branch_unless_tools_are_declared_read_only() -> None:
    shop = Shop(latency=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = speculate(
            _agent(shop, shop_script()),
            {"model": model_call_speculator(_script_guesser(shop_script(), True))},
        )
    assert any("read_only_tools" in str(w.message) for w in caught)
    agent.invoke({"messages": [HumanMessage("Cancel my pending order, ann@example.com")]})
    assert not [e for e in shop.executions if e["early"]]
    with pytest.raises(ValueError, match=r"read_only_tools=\.\.\.\) names \['nope'\].*its tools are"):
        speculate(_agent(Shop(), shop_script()), {}, read_only_tools={"nope"})


def test_human_in_the_loop_gates_hold_at_graph_level() -> None:
    """The approval node asks a person: no branch passes it, the gated write waits for the answer."""
    script = shop_script()
    plain_shop, shop = Shop(latency=0.05), Shop(latency=0.05)
    hitl = [HumanInTheLoopMiddleware(interrupt_on={"cancel_order": True})]
    cfg = {"configurable": {"thread_id": "t"}}
    plain = _agent(plain_shop, script, checkpointer=InMemorySaver(), middleware=hitl)
    agent = speculate(
        _agent(shop, script, checkpointer=InMemorySaver(), middleware=hitl),
        {"model": model_call_speculator(_script_guesser(script, True))},
        read_only_tools=READS,
    )
    inputs = {"messages": [HumanMessage("Cancel my pending order, ann@example.com")]}
    p1, s1 = plain.invoke(inputs, cfg), agent.invoke(inputs, cfg)
    assert "__interrupt__" in p1 and "__interrupt__" in s1
    assert shop.writes() == [] and plain_shop.writes() == []  # paused for a person: nothing written
    resume = Command(resume={"decisions": [{"type": "approve"}]})
    p2, s2 = plain.invoke(resume, cfg), agent.invoke(resume, cfg)
    assert transcript(s2["messages"], canonical_ids=True) == transcript(p2["messages"], canonical_ids=True)
    assert len(shop.writes()) == len(plain_shop.writes()) == 1


def test_create_react_agent_works_too() -> None:
    from langgraph.prebuilt import create_react_agent

    script = shop_script()
    plain_shop, shop = Shop(latency=0.1), Shop(latency=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = create_react_agent(scripted(script, delay=0.05), plain_shop.tools())
        agent = speculate(
            create_react_agent(scripted(script, delay=0.05), shop.tools()),
            {"agent": model_call_speculator(_script_guesser(script, True))},
            read_only_tools=READS,
        )
    inputs = {"messages": [HumanMessage("Cancel my pending order, ann@example.com")]}
    p, s = plain.invoke(inputs), agent.invoke(inputs)
    assert transcript(s["messages"], canonical_ids=True) == transcript(p["messages"], canonical_ids=True)
    assert _linked(s["messages"]) and not [e for e in shop.writes() if e["early"]]
    assert agent.last_report.adopted >= 1  # remaining_steps is the same on a branch as on the main run


def test_concurrent_agent_runs_keep_their_own_ids() -> None:
    script = shop_script()
    agent = speculate(
        _agent(Shop(latency=0.05), script),
        {"model": model_call_speculator(_script_guesser(script, True))},
        read_only_tools=READS,
    )
    outs: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        out = agent.invoke({"messages": [HumanMessage("Cancel my pending order, ann@example.com")]})
        with lock:
            outs.append(out)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 4 and all(_linked(o["messages"]) for o in outs)
    ids = [c["id"] for o in outs for m in o["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert len(ids) == len(set(ids))  # nobody's ids leaked into another run


_ = WRITES
