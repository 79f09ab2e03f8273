"""ToolPatternSpeculator: learns next calls and argument sources from finished runs, keeps them in a store."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langgraph_speculative.agents import SpeculativeToolCalls, ToolPatternSpeculator

from .agents_fakes import READS, Shop, ask, scripted, shop_script


def _call(name: str, args: dict[str, Any], result: Any) -> list[BaseMessage]:
    cid = f"call_{uuid.uuid4().hex[:12]}"
    content = result if isinstance(result, str) else json.dumps(result)
    return [
        AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": cid}]),
        ToolMessage(content=content, tool_call_id=cid, name=name),
    ]


def support_conversation(rng: random.Random, mention_order: bool) -> tuple[list[BaseMessage], list[Any]]:
    """A customer-support run: find the user by email, read them, read an order, read its product."""
    first = rng.choice(["ann", "bob", "cleo", "dev", "eve", "fay", "gus"])
    email = f"{first}.{rng.choice(['lee', 'moss', 'ng'])}{rng.randint(10, 99)}@example.com"
    user_id = f"{first}_{rng.randint(1000, 9999)}"
    orders = [f"#W{rng.randint(10**6, 10**7 - 1)}" for _ in range(rng.randint(2, 4))]
    wanted = rng.choice(orders) if mention_order else orders[0]
    product = str(rng.randint(10**9, 10**10 - 1))
    ask_text = f"Hi, I'm {email}." + (
        f" Where is my order {wanted}?" if mention_order else " Where is my order?"
    )
    calls = [
        ("find_user_by_email", {"email": email}, user_id),
        ("get_user", {"user_id": user_id}, {"user_id": user_id, "orders": orders, "name": first.title()}),
        (
            "get_order",
            {"order_id": wanted},
            {"order_id": wanted, "items": [{"product_id": product, "qty": 1}]},
        ),
        ("get_product", {"product_id": product}, {"product_id": product, "name": "lamp"}),
    ]
    messages: list[BaseMessage] = [HumanMessage(ask_text)]
    for name, args, result in calls:
        messages += _call(name, args, result)
    messages.append(AIMessage(content="It ships tomorrow."))
    return messages, calls


def test_it_learns_the_next_call_and_where_each_argument_comes_from() -> None:
    rng = random.Random(1)
    train = [support_conversation(rng, mention_order=i % 2 == 0)[0] for i in range(8)]
    spec = ToolPatternSpeculator.fit(train)
    assert spec.runs == 8
    for mention in (True, False):
        messages, calls = support_conversation(random.Random(99 + mention), mention_order=mention)
        points = [i for i, m in enumerate(messages) if isinstance(m, AIMessage)]
        for (name, args, _), at in zip(calls, points):
            top = spec.guess(messages[:at])[0]
            assert (top["name"], top["args"]) == (name, args)
            assert 0 < top["confidence"] <= 1
        assert spec.guess(messages[: points[-1]]) == []  # after the product: it answers


def test_sources_are_data_not_memorized_values() -> None:
    spec = ToolPatternSpeculator.fit([support_conversation(random.Random(s), True)[0] for s in range(4)])
    sources = spec._counts.explained
    assert ("out", "find_user_by_email") in sources[("get_user", "user_id")]
    assert ("out", "get_order", "items", "*", "product_id") in sources[("get_product", "product_id")]
    assert any(s[0] == "user" for s in sources[("find_user_by_email", "email")])
    assert any(s[0] == "user" for s in sources[("get_order", "order_id")])


def test_a_fresh_speculator_guesses_nothing() -> None:
    assert ToolPatternSpeculator().guess({"messages": [HumanMessage("hi")]}) == []


def test_a_thread_seen_again_is_counted_once() -> None:
    spec = ToolPatternSpeculator()
    messages, _ = support_conversation(random.Random(3), True)
    spec.observe({"messages": messages[:4]}, key="thread-1")
    spec.observe({"messages": messages}, key="thread-1")
    assert spec.runs == 1 and spec._counts.calls["get_product"] == 1


def test_learning_a_key_again_is_learning_only_the_last_conversation() -> None:
    """`learn(..., key=k)` replaces what `k` taught: the speculator guesses exactly as one that
    learned only the last conversation under `k` (beside the same others)."""
    rng = random.Random(5)
    others = [support_conversation(rng, i % 2 == 0)[0] for i in range(3)]
    first, _ = support_conversation(rng, True)
    last, _ = support_conversation(rng, False)
    replaced, fresh = ToolPatternSpeculator.fit(others), ToolPatternSpeculator.fit(others)
    for conversation in (first, first[:5], last):
        replaced.learn(conversation, key="thread-1")
    fresh.learn(last, key="thread-1")
    assert replaced.runs == fresh.runs == 4
    for messages in (first, last, *others):
        for at in range(1, len(messages)):
            assert replaced.guess(messages[:at], k=5) == fresh.guess(messages[:at], k=5)


def test_learning_survives_a_restart_in_a_sqlite_store(tmp_path: Path) -> None:
    from langgraph.store.sqlite import SqliteStore

    path = str(tmp_path / "patterns.db")
    with SqliteStore.from_conn_string(path) as store:
        store.setup()
        spec = ToolPatternSpeculator(store=store)
        for s in range(6):
            spec.observe({"messages": support_conversation(random.Random(s), True)[0]}, key=f"t{s}")
    messages, calls = support_conversation(random.Random(42), True)
    with SqliteStore.from_conn_string(path) as store:  # a new process would do just this
        again = ToolPatternSpeculator(store=store)
        top = again.guess(messages[:3])[0]  # after find_user_by_email answered
        assert again.runs == 6
        assert (top["name"], top["args"]) == calls[1][:2]


def test_damaged_store_items_are_skipped() -> None:
    store = InMemoryStore()
    ns = ("langgraph_speculative", "tool_patterns")
    store.put(ns, "junk", {"steps": "not a list of steps"}, index=False)
    store.put(
        ns, "good", {"steps": [{"name": "get_user", "args": {"user_id": "u1"}, "output": "{}"}]}, index=False
    )
    spec = ToolPatternSpeculator(store=store)
    assert spec.load() == 1 and spec.runs == 1


def test_async_twins_use_the_store_asynchronously() -> None:
    async def main() -> list[dict[str, Any]]:
        store = InMemoryStore()
        spec = ToolPatternSpeculator(store=store)
        for s in range(4):
            await spec.aobserve({"messages": support_conversation(random.Random(s), False)[0]}, key=f"t{s}")
        fresh = ToolPatternSpeculator(store=store)
        messages, _ = support_conversation(random.Random(7), False)
        return await fresh.ainvoke({"messages": messages[:5]})  # after get_user answered

    guesses = asyncio.run(main())
    assert guesses and guesses[0]["name"] == "get_order"


def test_constructor_mistakes() -> None:
    with pytest.raises(TypeError, match="BaseStore"):
        ToolPatternSpeculator(store=object())
    with pytest.raises(TypeError, match="namespace"):
        ToolPatternSpeculator(namespace="patterns")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k=0"):
        ToolPatternSpeculator(k=0)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_middleware_teaches_it_from_the_agents_own_runs(mode: str) -> None:
    store = InMemoryStore()
    shop = Shop(latency=0.05)
    model = scripted(shop_script(), delay=0.05)
    spec = ToolPatternSpeculator(store=store)
    mw = SpeculativeToolCalls(spec, read_only=READS)
    agent = create_agent(model, shop.tools(), middleware=[mw], checkpointer=InMemorySaver())

    def run(thread: str) -> Any:
        config = {"configurable": {"thread_id": thread}}
        if mode == "invoke":
            return agent.invoke(ask(), config)
        return asyncio.run(agent.ainvoke(ask(), config))

    run("first")
    assert mw.last_report is not None and mw.last_report.adopted == 0  # nothing learned yet
    assert spec.runs == 1 and len(store.search(spec.namespace)) == 1
    run("second")
    assert mw.last_report is not None and mw.last_report.adopted >= 3
    restarted = ToolPatternSpeculator(store=store)
    assert restarted.load() == 2
