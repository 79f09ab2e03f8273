"""Quickstart: a slow model agent, made faster by a fast speculator. Offline.

An agent plans with a slow chat model (fake here: deterministic, 0.4 s per
call), looks the plan up with a slow tool (0.3 s), and answers (0.4 s). A
small, fast model (0.05 s) guesses the planner's output; when it is right, the
tool call has already been running on a branch when the planner returns.

    python examples/quickstart.py

LangGraph Server serves this file's `graph` and `plain_graph` as they are
(`langgraph dev` at the repository root; see langgraph.json).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_speculative import SpeculationPolicy, speculate

CAPITALS = {"france": "Paris", "japan": "Tokyo", "kenya": "Nairobi", "peru": "Lima"}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    country: str
    fact: str


async def plan(state: State) -> dict[str, Any]:
    """The slow planner: which country is the question about?"""
    question = state["messages"][-1].content.lower()
    await asyncio.sleep(0.4)  # a strong model thinking
    country = next((c for c in CAPITALS if c in question), "france")
    return {"country": country}


async def lookup(state: State) -> dict[str, Any]:
    """The slow tool: an API round trip."""
    await asyncio.sleep(0.3)
    return {"fact": f"The capital of {state['country'].title()} is {CAPITALS[state['country']]}."}


async def answer(state: State) -> dict[str, Any]:
    """The slow writer."""
    await asyncio.sleep(0.4)
    return {"messages": [AIMessage(content=state["fact"])]}


async def guess_plan(state: State) -> list[dict[str, Any]]:
    """A fast, cheap speculator: the first country name it sees, then a default."""
    await asyncio.sleep(0.05)
    words = str(state["messages"][-1].content).lower().replace("?", " ").split()
    seen = [w for w in words if w in CAPITALS]
    return [{"country": c} for c in [*seen, "france"]]


async def guess_fact(state: State) -> list[dict[str, Any]]:
    await asyncio.sleep(0.02)
    return [{"fact": f"The capital of {state['country'].title()} is {CAPITALS[state['country']]}."}]


def builder() -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(State)
    b.add_node("plan", plan)
    b.add_node("lookup", lookup)
    b.add_node("answer", answer)
    b.add_edge(START, "plan")
    b.add_edge("plan", "lookup")
    b.add_edge("lookup", "answer")
    b.add_edge("answer", END)
    return b


SPECULATORS = {"plan": guess_plan, "lookup": guess_fact}

# For LangGraph Server (langgraph.json: "./examples/quickstart.py:graph"), written as its docs
# write graphs: compiled at module level, without a checkpointer; the server lends its own to
# every run. depth=2: on the branch of the planner's guess, the lookup's guess starts the answer
# early too (at depth 1 only the lookup is, and `guess_fact` never runs).
graph = speculate(builder(), SPECULATORS, policy=SpeculationPolicy(k=2, depth=2)).compile()
plain_graph = builder().compile()


async def main() -> dict[str, Any]:
    question = {"messages": [HumanMessage("What is the capital of Japan?")]}
    plain = builder().compile(checkpointer=InMemorySaver())
    fast = speculate(builder(), SPECULATORS, policy=SpeculationPolicy(k=2)).compile(
        checkpointer=InMemorySaver()
    )

    t0 = time.perf_counter()
    expected = await plain.ainvoke(question, {"configurable": {"thread_id": "plain"}})
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = await fast.ainvoke(question, {"configurable": {"thread_id": "fast"}})
    t_spec = time.perf_counter() - t0

    report = fast.last_report
    assert report is not None
    same = expected["messages"][-1].content == got["messages"][-1].content and expected["fact"] == got["fact"]
    print(f"answer:       {got['messages'][-1].content}")
    print(f"sequential:   {t_seq:.3f} s")
    print(f"speculative:  {t_spec:.3f} s  ({100 * (1 - t_spec / t_seq):.1f}% saved, same result: {same})")
    print(
        f"hits {report.hits}/{report.calls}, adopted {report.adopted}, cancelled {report.cancelled}, "
        f"wasted calls {report.wasted}, hidden actor time {report.time_saved_s:.3f} s"
    )
    return {"sequential_s": t_seq, "speculative_s": t_spec, "identical": same, **report.summary()}


if __name__ == "__main__":
    asyncio.run(main())
