"""tau-bench retail: tools against the data, the lossless property, the eval command."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_speculative._cli import main as cli
from langgraph_speculative_graphs.tau_retail._db import RetailDB, load_tasks, task_reward
from langgraph_speculative_graphs.tau_retail._graph import make_graph

from .conftest import examples

DATA = "langgraph_speculative_graphs/tau_retail/data/"


def test_reads_return_records_and_errors() -> None:
    db = RetailDB()
    uid = db.find_user_id_by_name_zip("Mei", "Kovacs", "28236")
    assert uid == "mei_kovacs_8020"
    assert db.find_user_id_by_email(db.users[uid]["email"].upper()) == uid
    assert db.find_user_id_by_email("nobody@example.com") == "Error: user not found"
    user = json.loads(db.get_user_details(uid))
    assert "#W6390527" in user["orders"]
    order = json.loads(db.get_order_details("#W6390527"))
    assert order["user_id"] == uid
    assert db.get_order_details("#W0") == "Error: order not found"
    assert json.loads(db.get_product_details("6817146515"))["product_id"] == "6817146515"
    assert len(json.loads(db.list_all_product_types())) == 50
    assert db.calculate("(2 + 3) * 1.5") == "7.5"
    assert db.calculate("__import__('os')") == "Error: invalid characters in expression"
    assert db.transfer_to_human_agents("help") == "Transfer successful"


def test_writes_apply_whole_or_not_at_all() -> None:
    db = RetailDB()
    pending = next(o for o in db.orders.values() if o["status"] == "pending")
    delivered = next(o for o in db.orders.values() if o["status"] == "delivered")
    before = db.hash()
    assert db.cancel_pending_order(delivered["order_id"], "no longer needed").startswith("Error: non-pending")
    assert db.cancel_pending_order(pending["order_id"], "bored") == "Error: invalid reason"
    assert db.return_delivered_order_items(delivered["order_id"], ["nope"], "nope") == (
        "Error: payment method not found"
    )
    pay = delivered["payment_history"][0]["payment_method_id"]
    assert db.return_delivered_order_items(delivered["order_id"], ["nope"], pay) == "Error: nope not found"
    item = delivered["items"][0]
    assert db.exchange_delivered_order_items(delivered["order_id"], [item["item_id"]], [], pay).startswith(
        "Error: the number of items"
    )
    assert db.hash() == before and db.writes == 0  # nothing half-applied
    out = json.loads(db.cancel_pending_order(pending["order_id"], "ordered by mistake"))
    assert out["status"] == "cancelled" and out["payment_history"][-1]["transaction_type"] == "refund"
    assert db.writes == 1 and db.hash() != before
    assert RetailDB().hash() == before  # every RetailDB is a fresh copy


def test_ground_truth_replays_cleanly() -> None:
    for task in load_tasks(DATA + "tasks_dev.json"):
        db = RetailDB()
        for a in task["actions"]:
            assert not db.call(a["name"], a["kwargs"]).startswith("Error"), a


def _run(task: dict[str, Any], speculative: bool, tool_latency: float, agent_delay: float) -> tuple[Any, ...]:
    calls: list[str] = []
    db = RetailDB()
    for name in (
        "cancel_pending_order",
        "return_delivered_order_items",
        "exchange_delivered_order_items",
        "modify_pending_order_items",
        "modify_pending_order_address",
        "modify_pending_order_payment",
        "modify_user_address",
    ):
        original = getattr(db, name)

        def counted(*a: Any, _o: Any = original, _n: str = name, **kw: Any) -> str:
            calls.append(_n)
            return _o(*a, **kw)

        counted.__doc__ = original.__doc__
        counted.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(db, name, counted)
    builder = make_graph(
        task=task, db=db, speculative=speculative, tool_latency=tool_latency, replay_delay=agent_delay
    )
    graph = builder.compile(checkpointer=InMemorySaver())
    final = asyncio.run(
        graph.ainvoke(
            {"messages": [], "db_version": 0}, {"configurable": {"thread_id": "t"}, "recursion_limit": 200}
        )
    )
    messages = [(type(m).__name__, m.content, getattr(m, "tool_calls", None)) for m in final["messages"]]
    assert task_reward(task, db) == 1.0  # the replay agent reaches the ground truth's end state
    return db.hash(), messages, calls, final["db_version"]


TASKS = load_tasks(DATA + "tasks_test_sample.json") + load_tasks(DATA + "tasks_dev.json")[:5]


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(TASKS),
    tool_latency=st.sampled_from([0.0, 0.01, 0.03]),
    agent_delay=st.sampled_from([0.0, 0.02]),
)
def test_retail_graph_is_lossless(task: dict[str, Any], tool_latency: float, agent_delay: float) -> None:
    seq = _run(task, False, tool_latency, agent_delay)
    spec = _run(task, True, tool_latency, agent_delay)
    assert spec[0] == seq[0]  # same final database (tau-bench's reward compares this hash)
    assert spec[1] == seq[1]  # same messages, tool-call ids included
    assert spec[2] == seq[2]  # write tools ran exactly as often, in the same order: never on a branch
    assert spec[3] == seq[3]


def test_eval_command_on_dev_and_test_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["eval", "tau-retail", "--tasks", DATA + "tasks_dev.json", "--k", "3", "--json"]) == 0
    dev = json.loads(capsys.readouterr().out)
    assert dev["tasks"] == 20 and dev["calls"] == 25 and dev["read_calls"] == 0 and dev["reward"] == 1.0
    assert cli(["eval", "tau-retail", "--tasks", DATA + "tasks_test_sample.json", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "tasks",
        "calls",
        "read_calls",
        "top1_acc",
        "topk_acc",
        "read_top1_acc",
        "read_topk_acc",
        "hidden_latency_s",
    ):
        assert key in out
    assert out["read_calls"] == 55 and 0 < out["read_top1_acc"] <= out["read_topk_acc"] <= 1
    assert out["hidden_latency_s"] == pytest.approx(out["read_topk_acc"] * 55 * 0.5, abs=0.01)


def test_eval_command_bad_task_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["eval", "tau-retail", "--tasks", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    assert cli(["eval", "tau-retail", "--tasks", str(bad)]) == 2
    assert "expected a JSON list of objects with 'actions'" in capsys.readouterr().err


def test_chat_model_speculator_is_parsed_and_stays_lossless() -> None:
    from langchain_core.language_models import FakeListChatModel

    from langgraph_speculative_graphs.tau_retail._graph import parse_calls

    assert parse_calls(
        '{"name": "get_user_details", "arguments": {"user_id": "u"}}\nnot json\n{"name": "rm"}'
    ) == [{"name": "get_user_details", "kwargs": {"user_id": "u"}}]
    task = load_tasks(DATA + "tasks_test_sample.json")[0]
    uid = task["user_id"]
    model = FakeListChatModel(
        responses=[f'{{"name": "get_user_details", "arguments": {{"user_id": "{uid}"}}}}\n{{"name": "x"}}']
    )

    async def run(speculative: bool) -> tuple[str, list[Any], Any]:
        db = RetailDB()
        builder = make_graph(task=task, db=db, speculator=model, speculative=speculative, tool_latency=0.02,
                             replay_delay=0.02)  # fmt: skip
        graph = builder.compile(checkpointer=InMemorySaver())
        out = await graph.ainvoke({"messages": [], "db_version": 0}, {"configurable": {"thread_id": "t"}})
        msgs = [(type(m).__name__, m.content, getattr(m, "tool_calls", None)) for m in out["messages"]]
        return db.hash(), msgs, getattr(graph, "last_report", None)

    seq, spec = asyncio.run(run(False)), asyncio.run(run(True))
    assert spec[:2] == seq[:2]
    assert (
        spec[2].node("read_tools").adopted == 1
    )  # the model's get_user_details guess was pre-run and adopted


def test_reads_run_while_the_customer_types_and_are_adopted() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from langgraph_speculative_graphs._common import ScriptedChatModel

    db0 = RetailDB()
    uid = "mei_kovacs_8020"
    email = db0.users[uid]["email"]

    class Agent(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Agent:  # type: ignore[override]
            return self

        def _reply(self, messages: list[Any]) -> AIMessage:
            msgs = [m for m in messages if not isinstance(m, SystemMessage)]
            humans = sum(isinstance(m, HumanMessage) for m in msgs)
            tools = sum(isinstance(m, ToolMessage) for m in msgs)
            if (humans, tools) == (1, 0):
                return AIMessage(
                    "", tool_calls=[{"name": "find_user_id_by_email", "args": {"email": email}, "id": "x"}]
                )
            if (humans, tools) == (1, 1):
                return AIMessage("I found your account. Shall I pull up its details?")
            if (humans, tools) == (2, 1):
                return AIMessage(
                    "", tool_calls=[{"name": "get_user_details", "args": {"user_id": uid}, "id": "x"}]
                )
            return AIMessage("Here are your details.")

    class Customer(ScriptedChatModel):
        def _reply(self, messages: list[Any]) -> AIMessage:
            mine = sum(isinstance(m, AIMessage) for m in messages)  # roles are flipped for the customer
            return AIMessage([f"Hi, my email is {email}.", "yes please", "thanks ###STOP###"][min(mine, 2)])

    task = {"user_id": uid, "instruction": "", "actions": []}

    async def run(speculative: bool, user_turns: bool = True) -> tuple[str, list[Any], Any]:
        db = RetailDB()
        builder = make_graph(task=task, db=db, agent_model=Agent(delay=0.02), user_model=Customer(delay=0.4),
                             user_turns=user_turns, speculative=speculative, tool_latency=0.2)  # fmt: skip
        graph = builder.compile(checkpointer=InMemorySaver())
        out = await graph.ainvoke({"messages": [], "db_version": 0}, {"configurable": {"thread_id": "t"}})
        msgs = [(type(m).__name__, m.content, getattr(m, "tool_calls", None)) for m in out["messages"]]
        return db.hash(), msgs, getattr(graph, "last_report", None)

    def launched_while_typing(report: Any) -> bool:
        """Was a read adopted that a branch launched before the customer's message landed?"""
        events = report.events
        landed = min(e["t"] for e in events if e["event"] in ("hit", "miss") and e["node"] == "user")
        adopted = {e["key"] for e in events if e["event"] == "adopted" and e["node"] == "read_tools"}
        return any(
            e["event"] == "launch" and e["node"] == "read_tools" and e["key"] in adopted and e["t"] < landed
            for e in events
        )

    seq, spec, agent_only = asyncio.run(run(False)), asyncio.run(run(True)), asyncio.run(run(True, False))
    assert spec[:2] == seq[:2] == agent_only[:2]
    # get_user_details ran on the branch of the guessed reply while the customer was still typing
    # (launched before the customer's message landed) and the main run adopted it
    assert launched_while_typing(spec[2])
    assert agent_only[2].node("user").calls == 0  # without user turns the customer is not guessed
    assert spec[2].node("user").hits >= 1
