"""Quickstart: a slow agent made faster by a fast guess, with the same result. Offline.

An agent plans with a slow model (0.4 s here), looks the plan up with a slow tool (0.3 s) and
writes the answer (0.4 s). A fast speculator (0.05 s) guesses the plan; while the real planner
thinks, a branch runs the lookup and the answer on the guess. When the guess is right, the main
run adopts both instead of waiting for them.

    python examples/quickstart.py
"""

import asyncio
import time
from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import speculate

CAPITALS = {"france": "Paris", "japan": "Tokyo", "peru": "Lima"}


class State(TypedDict, total=False):
    question: str
    country: str
    fact: str
    answer: str


async def plan(state: State) -> State:  # a strong model, thinking
    await asyncio.sleep(0.4)
    return {"country": next((c for c in CAPITALS if c in state["question"].lower()), "france")}


async def lookup(state: State) -> State:  # an API round trip
    await asyncio.sleep(0.3)
    return {"fact": f"The capital of {state['country'].title()} is {CAPITALS[state['country']]}."}


async def answer(state: State) -> State:  # the model again, writing
    await asyncio.sleep(0.4)
    return {"answer": state["fact"]}


async def guess_plan(state: State) -> list[State]:  # fast and cheap: a small model, a cache, a rule
    await asyncio.sleep(0.05)
    words = state["question"].lower().replace("?", " ").split()
    return [{"country": w} for w in words if w in CAPITALS] or [{"country": "france"}]


builder = StateGraph(State)
builder.add_node("plan", plan)
builder.add_node("lookup", lookup)
builder.add_node("answer", answer)
builder.add_edge(START, "plan")
builder.add_edge("plan", "lookup")
builder.add_edge("lookup", "answer")
builder.add_edge("answer", END)


async def main() -> None:
    question: State = {"question": "What is the capital of Japan?"}
    plain = builder.compile(checkpointer=InMemorySaver())
    fast = speculate(builder, {"plan": guess_plan}).compile(checkpointer=InMemorySaver())

    t0 = time.perf_counter()
    expected = await plain.ainvoke(question, {"configurable": {"thread_id": "1"}})
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = await fast.ainvoke(question, {"configurable": {"thread_id": "1"}})
    t_fast = time.perf_counter() - t0

    report = fast.last_report
    assert report is not None
    print(f"answer:       {got['answer']}")
    print(f"sequential:   {t_plain:.3f} s")
    saved = 100 * (1 - t_fast / t_plain)
    print(f"speculative:  {t_fast:.3f} s  ({saved:.1f}% saved, same result: {got == expected})")
    print(
        f"guesses right {report.hits} of {report.calls}, calls adopted {report.adopted}, "
        f"early calls wasted {report.wasted}, actor time hidden {report.time_saved_s:.3f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
