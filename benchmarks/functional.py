"""`speculate_tasks` on a functional-API workflow: plain entrypoint vs speculative, wall clock.

A three-task chain (`plan` -> `search` -> `plan`), every task a 0.3 s call, InMemorySaver; the
speculator of `plan` guesses its return value right. Sync (`invoke`, `time.sleep`) and async
(`ainvoke`, `asyncio.sleep`), plain and speculative interleaved, medians of the repeats, and the
ratio speculative / plain. Each speculative run is also checked against its plain twin: same
return value, same number of checkpoints.

    python benchmarks/functional.py --quick [--json]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import emit, median, parser  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.func import entrypoint, task  # noqa: E402

from langgraph_speculative import speculate_tasks  # noqa: E402

LATENCY = 0.3


def plan_of(text: str) -> dict[str, str]:
    return {"query": f"about {text}"}


def build(saver: Any, use_async: bool) -> Any:
    return build_async(saver) if use_async else build_sync(saver)


def build_async(saver: Any) -> Any:
    @task
    async def plan(text: str) -> dict[str, str]:
        await asyncio.sleep(LATENCY)
        return plan_of(text)

    @task
    async def search(step: dict[str, str]) -> str:
        await asyncio.sleep(LATENCY)
        return f"found {step['query']}"

    @entrypoint(checkpointer=saver)
    async def agent(question: str) -> dict[str, Any]:
        first = await plan(question)
        found = await search(first)
        return {"found": found, "answer": await plan(found)}

    return agent


def build_sync(saver: Any) -> Any:
    @task
    def plan(text: str) -> dict[str, str]:
        time.sleep(LATENCY)
        return plan_of(text)

    @task
    def search(step: dict[str, str]) -> str:
        time.sleep(LATENCY)
        return f"found {step['query']}"

    @entrypoint(checkpointer=saver)
    def agent(question: str) -> dict[str, Any]:
        first = plan(question).result()
        found = search(first).result()
        return {"found": found, "answer": plan(found).result()}

    return agent


def right(inp: dict[str, Any]) -> list[dict[str, str]]:
    return [plan_of(inp["args"][0])]


def run(repeats: int, use_async: bool) -> dict[str, Any]:
    saver = InMemorySaver()
    plain = build(saver, use_async)
    spec = speculate_tasks(build(saver, use_async), {"plan": right})
    plain_s: list[float] = []
    spec_s: list[float] = []
    same = True
    adopted = 0

    def once(graph: Any, config: RunnableConfig) -> Any:
        if use_async:
            return asyncio.run(graph.ainvoke("cats", config))
        return graph.invoke("cats", config)

    for _ in range(repeats):
        c1: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
        c2: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
        t = time.perf_counter()
        want = once(plain, c1)
        plain_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = once(spec, c2)
        spec_s.append(time.perf_counter() - t)
        same = same and got == want
        same = same and len(list(saver.list(c1))) == len(list(saver.list(c2)))
        adopted += spec.last_report.adopted if spec.last_report else 0
    p, s = median(plain_s), median(spec_s)
    return {
        "mode": "async" if use_async else "sync",
        "plain_s": round(p, 3),
        "speculative_s": round(s, 3),
        "ratio": round(s / p, 3),
        "adopted_per_run": adopted / repeats,
        "same_result": same,
    }


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    repeats = 3 if args.quick else 9
    rows = [run(repeats, use_async=False), run(repeats, use_async=True)]
    emit(
        rows,
        ["mode", "plain_s", "speculative_s", "ratio", "adopted_per_run", "same_result"],
        args.json,
        {"benchmark": "functional", "tasks": 3, "latency_s": LATENCY, "repeats": repeats},
    )


if __name__ == "__main__":
    main()
