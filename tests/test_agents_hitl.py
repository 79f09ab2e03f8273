"""Human in the loop: gated tools never run early, and interrupt/resume flows are unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, interrupt

from langgraph_speculative.agents import SpeculativeToolCalls

from .agents_fakes import READS, Shop, ask, scripted, shop_script, transcript
from .leftovers import leftover_work
from .test_agents import oracle


def everything(state: Any) -> list[dict[str, Any]]:
    """Guesses every call of the script at once, the gated write included."""
    return [
        {"name": "cancel_order", "args": {"order_id": "A1"}},
        *oracle(state),
    ]


def test_a_gated_tool_in_read_only_is_refused_by_create_agent() -> None:
    shop = Shop()
    hitl = HumanInTheLoopMiddleware(interrupt_on={"get_order": True, "cancel_order": True})
    with pytest.raises(
        ValueError, match=r"lists 'get_order', which HumanInTheLoopMiddleware.* Remove 'get_order'"
    ):
        create_agent(
            scripted([]), shop.tools(), middleware=[hitl, SpeculativeToolCalls(oracle, read_only=READS)]
        )


def test_a_conditional_gate_counts_as_a_gate() -> None:
    hitl = HumanInTheLoopMiddleware(
        interrupt_on={"get_user": {"allowed_decisions": ["approve"], "when": lambda r: False}}
    )
    with pytest.raises(ValueError, match="'get_user'"):
        create_agent(
            scripted([]), Shop().tools(), middleware=[hitl, SpeculativeToolCalls(oracle, read_only=READS)]
        )


def test_hitl_must_wrap_the_speculation_not_the_other_way_round() -> None:
    hitl = HumanInTheLoopMiddleware(interrupt_on={"cancel_order": True})
    with pytest.raises(ValueError, match="listed after SpeculativeToolCalls.*Put SpeculativeToolCalls last"):
        create_agent(
            scripted([]), Shop().tools(), middleware=[SpeculativeToolCalls(oracle, read_only=READS), hitl]
        )


@pytest.mark.parametrize(
    ("where", "nodes"), [("interrupt_before", ["tools"]), ("interrupt_after", ["model"])]
)
def test_a_pause_between_model_and_tools_is_refused(where: str, nodes: list[str]) -> None:
    with pytest.raises(ValueError, match="pauses at .*between the model's reply and the tools"):
        create_agent(
            scripted([]),
            Shop().tools(),
            middleware=[SpeculativeToolCalls(oracle, read_only=READS)],
            checkpointer=InMemorySaver(),
            **{where: nodes},
        )


DECISIONS: dict[str, dict[str, Any]] = {
    "approve": {"type": "approve"},
    "reject": {"type": "reject", "message": "Not this one."},
    "edit": {"type": "edit", "edited_action": {"name": "cancel_order", "args": {"order_id": "B2"}}},
    "respond": {"type": "respond", "message": "Ask me first."},
}


def hitl_flow(
    speculate: bool, decision: dict[str, Any], mode: str, per_call: bool = False
) -> tuple[list[Any], list[Any], Shop, SpeculativeToolCalls | None]:
    shop = Shop(latency=0.02)
    model = scripted(shop_script(), delay=0.02, ids="seeded")  # interrupts carry the call ids
    shop.model = model
    hitl = HumanInTheLoopMiddleware(
        interrupt_on={"cancel_order": True}, interrupt_mode="per_call" if per_call else "batched"
    )
    mw = SpeculativeToolCalls(everything, read_only=READS) if speculate else None
    agent = create_agent(
        model, shop.tools(), middleware=[hitl, mw] if mw else [hitl], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t1"}}

    def resume(out: dict[str, Any]) -> Any:
        if per_call:
            return Command(resume={i.id: decision for i in out["__interrupt__"]})
        return Command(resume={"decisions": [decision]})

    async def arun() -> tuple[list[Any], list[Any]]:
        first = await agent.ainvoke(ask(), config)
        interrupts = [i.value for i in first["__interrupt__"]]
        final = await agent.ainvoke(resume(first), config)
        return interrupts, final["messages"]

    if mode == "ainvoke":
        interrupts, messages = asyncio.run(arun())
    else:
        first = agent.invoke(ask(), config)
        assert shop.writes() == []  # paused before the write
        assert leftover_work() == []  # and nothing the paused run started is still running
        interrupts = [i.value for i in first["__interrupt__"]]
        messages = agent.invoke(resume(first), config)["messages"]
    return interrupts, transcript(messages, canonical_ids=True), shop, mw


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
@pytest.mark.parametrize("decision", sorted(DECISIONS))
def test_interrupt_and_resume_are_unchanged(mode: str, decision: str) -> None:
    plain_interrupts, plain, plain_shop, _ = hitl_flow(False, DECISIONS[decision], mode)
    interrupts, spec, shop, mw = hitl_flow(True, DECISIONS[decision], mode)
    assert interrupts == plain_interrupts
    assert spec == plain
    assert shop.writes() == plain_shop.writes()
    assert not any(w["early"] for w in shop.writes())
    assert mw is not None and mw.report.adopted >= 3  # the reads before the gate
    assert not any(e["event"] == "launch" and e["call"]["name"] == "cancel_order" for e in mw.report.events)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_per_call_review_is_unchanged(decision: str) -> None:
    plain_interrupts, plain, plain_shop, _ = hitl_flow(False, DECISIONS[decision], "invoke", per_call=True)
    interrupts, spec, shop, _ = hitl_flow(True, DECISIONS[decision], "invoke", per_call=True)
    assert interrupts == plain_interrupts and spec == plain
    assert shop.writes() == plain_shop.writes() and not any(w["early"] for w in shop.writes())


class ConfirmEveryCall(AgentMiddleware):  # type: ignore[type-arg]
    """A custom gate: pauses after every model reply that calls tools."""

    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            interrupt({"confirm": [c["name"] for c in last.tool_calls]})
        return None


def test_a_prefetch_kept_before_a_pause_is_not_served_after_the_resume() -> None:
    """A resumed run is a new run: what the paused one fetched may be stale, so it runs again."""

    def run(speculate: bool) -> tuple[list[Any], Shop, SpeculativeToolCalls | None]:
        shop = Shop(latency=0.02)
        model = scripted(shop_script(), delay=0.05)
        mw = SpeculativeToolCalls(oracle, read_only=READS) if speculate else None
        agent = create_agent(
            model,
            shop.tools(),
            middleware=[ConfirmEveryCall(), mw] if mw else [ConfirmEveryCall()],
            checkpointer=InMemorySaver(),
        )
        config = {"configurable": {"thread_id": "t"}}
        out = agent.invoke(ask(), config)
        while out.get("__interrupt__"):
            out = agent.invoke(Command(resume=True), config)
        return transcript(out["messages"], canonical_ids=True), shop, mw

    plain, plain_shop, _ = run(False)
    spec, shop, mw = run(True)
    assert spec == plain
    assert mw is not None and mw.report.adopted == 0
    assert any(e["event"] == "cancelled" and e["reason"] == "stale" for e in mw.report.events)
    served = [m for m in spec if m["type"] == "tool"]
    assert len([e for e in shop.reads() if not e["early"]]) == len(served) - 1  # every read ran for real
