"""Quickstart: a slow agent made faster by a fast guess, with the same result. Offline.

An agent plans with a slow model (0.4 s here), looks the plan up with a slow tool (0.3 s) and
writes the answer (0.4 s). A fast speculator (0.05 s) guesses the plan; while the real planner
thinks, a branch runs the lookup and the answer on the guess. When the guess is right, the main
run adopts both instead of waiting for them.

    python examples/quickstart.py
    python examples/quickstart.py --timeline run.png   # and draw the run (needs the plot extra)

LangGraph Server serves this file's `graph` and `plain_graph` as they are (`langgraph dev` at
the repository root; see langgraph.json).
"""

import argparse
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


async def plan(state: State) -> dict[str, Any]:  # a strong model, thinking
    await asyncio.sleep(0.4)
    question = str(state["messages"][-1].content).lower()
    return {"country": next((c for c in CAPITALS if c in question), "france")}


async def lookup(state: State) -> dict[str, Any]:  # an API round trip
    await asyncio.sleep(0.3)
    return {"fact": f"The capital of {state['country'].title()} is {CAPITALS[state['country']]}."}


async def answer(state: State) -> dict[str, Any]:  # the model again, writing
    await asyncio.sleep(0.4)
    return {"messages": [AIMessage(content=state["fact"])]}


async def guess_plan(state: State) -> list[dict[str, Any]]:  # fast and cheap: a small model, a rule
    await asyncio.sleep(0.05)
    words = str(state["messages"][-1].content).lower().replace("?", " ").split()
    return [{"country": w} for w in words if w in CAPITALS] or [{"country": "france"}]


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


SPECULATORS = {"plan": guess_plan}

# For LangGraph Server (langgraph.json: "./examples/quickstart.py:graph"), written as its docs write
# graphs: compiled at module level, without a checkpointer; the server lends its own to every run.
# Its speculation events go to the custom stream too (stream_mode="custom"), for Studio to show.
graph = speculate(builder(), SPECULATORS, policy=SpeculationPolicy(stream_events=True)).compile()
plain_graph = builder().compile()


async def main(timeline: str | None = None) -> None:
    question = {"messages": [HumanMessage("What is the capital of Japan?")]}
    plain = builder().compile(checkpointer=InMemorySaver())
    fast = speculate(builder(), SPECULATORS).compile(checkpointer=InMemorySaver())

    t0 = time.perf_counter()
    expected = await plain.ainvoke(question, {"configurable": {"thread_id": "1"}})
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = await fast.ainvoke(question, {"configurable": {"thread_id": "1"}})
    t_fast = time.perf_counter() - t0

    report = fast.last_report
    assert report is not None
    same = [m.content for m in got["messages"]] == [m.content for m in expected["messages"]]
    saved = 100 * (1 - t_fast / t_plain)
    print(f"answer:       {got['messages'][-1].content}")
    print(f"sequential:   {t_plain:.3f} s")
    print(f"speculative:  {t_fast:.3f} s  ({saved:.1f}% saved, same result: {same})")
    print(
        f"guesses right {report.hits} of {report.calls}, calls adopted {report.adopted}, "
        f"early calls wasted {report.wasted}, actor time hidden {report.time_saved_s:.3f} s"
    )

    if timeline:  # a lane per node, its speculator, the branch; the plain run as a reference line
        report.timeline(timeline, plain_s=t_plain, title="Quickstart")
        print(f"timeline:     {timeline}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="The quickstart agent, plain and speculative.")
    cli.add_argument("--timeline", metavar="FILE.png", help="draw the speculative run's timeline")
    asyncio.run(main(cli.parse_args().timeline))
