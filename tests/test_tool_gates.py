"""Gates per tool in a `ToolNode` (issue 25, items 8 and 9): LangGraph's approval pattern, a tool
that calls `interrupt()`, never runs on a branch, and the node's read-only tools keep running
early, whether the interrupt is found in the tool's code or seen on a main run."""

from __future__ import annotations

import time
import warnings
from typing import Any

import langgraph.types as lg_types
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from langgraph_speculative import speculate, speculation_info


def _build(hidden: bool, log: list[tuple[str, bool]]) -> tuple[StateGraph, Any]:
    @tool
    def get_order(order_id: str) -> str:
        """Read an order."""
        log.append(("get_order", speculation_info() is not None))
        time.sleep(0.05)
        return f"order {order_id}: 30 USD, delivered"

    if hidden:  # the scan cannot see this call: the gate is learned on the main run

        @tool
        def issue_refund(order_id: str) -> str:
            """Refund an order (asks a person first)."""
            log.append(("ask_refund", speculation_info() is not None))
            ask = getattr(lg_types, "inter" + "rupt")
            answer = ask({"refund": order_id})
            log.append(("issue_refund", speculation_info() is not None))
            return f"refund {order_id}: {answer}"

    else:

        @tool
        def issue_refund(order_id: str) -> str:
            """Refund an order (asks a person first)."""
            log.append(("ask_refund", speculation_info() is not None))
            answer = lg_types.interrupt({"refund": order_id})
            log.append(("issue_refund", speculation_info() is not None))
            return f"refund {order_id}: {answer}"

    def reply(messages: list[Any]) -> AIMessage:
        tools_seen = [m.name for m in messages if m.type == "tool"]
        if not tools_seen:
            call = {"name": "get_order", "args": {"order_id": "A1"}, "id": "c1", "type": "tool_call"}
            return AIMessage("", tool_calls=[call])
        if tools_seen == ["get_order"]:
            call = {"name": "issue_refund", "args": {"order_id": "A1"}, "id": "c2", "type": "tool_call"}
            return AIMessage("", tool_calls=[call])
        return AIMessage("Refunded.")

    def model(state: MessagesState) -> dict[str, Any]:
        time.sleep(0.15)  # the slow model
        return {"messages": [reply(state["messages"])]}

    def guess(state: MessagesState) -> list[dict[str, Any]]:  # a speculator that is always right
        return [{"messages": [reply(state["messages"])]}]

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([get_order, issue_refund]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder, guess


def _conversation(graph: Any, thread: str) -> list[Any]:
    cfg: Any = {"configurable": {"thread_id": thread}}
    first = graph.invoke({"messages": [HumanMessage("refund A1 please")]}, cfg)
    assert [i.value for i in first["__interrupt__"]] == [{"refund": "A1"}]
    out = graph.invoke(Command(resume="approved"), cfg)
    return [(m.type, m.content) for m in out["messages"]]


@pytest.mark.parametrize("hidden", [False, True], ids=["found_in_code", "learned"])
def test_an_asking_tool_never_runs_early_and_the_reads_keep_running(hidden: bool) -> None:
    plain_log: list[tuple[str, bool]] = []
    plain_builder, _ = _build(hidden, plain_log)
    plain = plain_builder.compile(checkpointer=InMemorySaver())
    want = _conversation(plain, "p")

    log: list[tuple[str, bool]] = []
    builder, guess = _build(hidden, log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = speculate(builder, {"model": guess}, read_only_tools={"get_order", "issue_refund"}).compile(
            checkpointer=InMemorySaver()
        )
        for thread in ("t1", "t2", "t3"):  # a long-lived app: many approvals
            if thread == "t2" and hidden:
                # until it first asks on the main run, a hidden interrupt() cannot be known: a
                # branch may reach the tool once (its interrupt() then ends the branch)
                log[:] = [e for e in log if e != ("ask_refund", True)]
            assert _conversation(graph, thread) == want
    messages = [str(w.message) for w in caught]
    assert any("issue_refund" in m and "interrupt()" in m for m in messages), messages
    assert ("issue_refund", True) not in log and ("ask_refund", True) not in log  # never on a branch
    assert [e for e in log if e[0] == "issue_refund"] == [("issue_refund", False)] * 3
    early_reads = [e for e in log if e == ("get_order", True)]
    assert len(early_reads) >= 2  # the read still runs early after the first approval
    assert graph.report.node("tools").adopted >= 2
    assert "tools" not in graph.speculation.gates  # the node is not gated whole


def test_the_warning_for_a_tool_node_never_names_a_tool_as_read_only() -> None:
    builder, guess = _build(False, [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        speculate(builder, {"model": guess}).compile(checkpointer=InMemorySaver())
    text = " ".join(str(w.message) for w in caught)
    assert "read_only_tools={...}" in text
    assert "read_only_tools={'" not in text  # no tool suggested: the library cannot see which only read
