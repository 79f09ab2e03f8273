"""Speculation on the agent stacks of issue 30: MCP tools and deepagents, with the real packages.

Each workload runs the same conversations with the plain agent and with the agent plus
`SpeculativeToolCalls` (one after the other, in one process), and checks that both give the same
transcript (content-block ids and file timestamps aside), the same files and the same number of
writes, and that no write ever ran early; it stops if anything differs. It prints the wall-clock
time of each conversation and the ratio speculative / plain of their medians.

- **mcp**: a real MCP server (`tests/mcp_shop.py`: FastMCP, streamable HTTP on 127.0.0.1, every
  tool `--tool-latency`) through `langchain-mcp-adapters`; a refund conversation per customer
  (find_user, get_order, issue_refund). `SpeculativeToolCalls(speculator)` with no `read_only`:
  the server's `readOnlyHint` decides what may run early (the refund never does). Async (MCP
  tools are async only). **mcp-graph**: the same at graph level,
  `speculate(agent, {"model": model_call_speculator(speculator)})`, no `read_only_tools` given.
- **deepagents-sync / deepagents-async**: `create_deep_agent` over its state backend with a disk's
  latency (`tests/stacks_fakes.py`), files in the agent's state; a conversation per note (read_file,
  grep, write_file, ls) with `read_only={"read_file", "ls", "glob", "grep"}`.
- **supervisor**: `create_supervisor` over three `create_agent` workers (three handoffs: seven
  model calls), speculated at graph level with the one-line setup,
  `speculate(builder, {"supervisor": handoff_speculator(next_worker)})`, where `next_worker` names
  the next handoff from the messages (`tests/test_multiagent.py`); sync, no checkpointer.
  Checks the same messages and no message twice.
- **swarm**: `create_swarm` of three `create_agent` agents (alice hands off to bob, bob to carol,
  carol answers), each but the last speculated with `handoff_speculator(next_agent)`; the same
  checks.

The model is scripted with `--model-latency` per call. The speculator is `ToolPatternSpeculator`,
taught by `--train` earlier conversations of other customers/notes (`--speculator oracle`: one
that knows the script, the upper bound).

    python benchmarks/stacks.py --quick --json
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from _common import parser  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402

from langgraph_speculative import SpeculationPolicy  # noqa: E402
from langgraph_speculative.agents import SpeculativeToolCalls, ToolPatternSpeculator  # noqa: E402
from tests.agents_fakes import scripted, transcript  # noqa: E402

Call = tuple[str, dict[str, Any]]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _clean(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = transcript(messages, canonical_ids=True)
    for m in out:
        if isinstance(m.get("content"), list):
            m["content"] = [
                {k: v for k, v in b.items() if k != "id"} if isinstance(b, dict) else b for b in m["content"]
            ]
    return out


def _files(files: dict[str, Any]) -> dict[str, Any]:
    return {p: {k: v for k, v in f.items() if not k.endswith("_at")} for p, f in (files or {}).items()}


def _ask(messages: list[BaseMessage]) -> str:
    return _text(next(m for m in messages if isinstance(m, HumanMessage)))


def _oracle(plan: Callable[[list[BaseMessage]], list[Call]]) -> Callable[[Any], list[dict[str, Any]]]:
    def guess(state: Any) -> list[dict[str, Any]]:
        calls = plan(state["messages"])
        n = sum(isinstance(m, AIMessage) for m in state["messages"])
        return [{"name": name, "args": args} for name, args in calls[n : n + 2]]

    return guess


class Check(Exception):
    """The speculative run differs from the plain one."""


def _summary(plain: list[float], spec: list[float], mws: list[Any]) -> dict[str, Any]:
    """Timings and counts; `mws` are middlewares or the speculative graphs' run reports."""
    events = [e for mw in mws for e in getattr(mw, "report", mw).events]
    return {
        "conversations": len(plain),
        "plain_s": [round(x, 4) for x in plain],
        "speculative_s": [round(x, 4) for x in spec],
        "plain_median_s": round(statistics.median(plain), 4),
        "speculative_median_s": round(statistics.median(spec), 4),
        "ratio": round(statistics.median(spec) / statistics.median(plain), 4),
        "launched": sum(e["event"] == "launch" for e in events),
        "adopted": sum(e["event"] == "adopted" for e in events),
    }


# ---------------------------------------------------------------------- MCP


def _mcp_plan(messages: list[BaseMessage]) -> list[Call]:
    ask = _ask(messages)
    email = ask.split("I am ")[1].strip()
    order = ask.split("order ")[1].split(",")[0]
    calls: list[Call] = [("find_user", {"email": email}), ("get_order", {"order_id": order})]
    got = [m for m in messages if isinstance(m, ToolMessage) and m.name == "get_order"]
    if got:
        total = json.loads(_text(got[-1]))["total"]
        calls.append(("issue_refund", {"order_id": order, "amount": total}))
    return calls


def _mcp_turn(messages: list[BaseMessage]) -> Any:
    n = sum(isinstance(m, AIMessage) for m in messages)
    calls = _mcp_plan(messages)
    if n >= 3:
        return "Your refund is on its way."
    return [calls[n]] if n < len(calls) else "Done."


async def _mcp(args: Any, train: list[int], measure: list[int], level: str = "middleware") -> dict[str, Any]:
    """`level="middleware"`: `SpeculativeToolCalls(speculator)`; `"graph"`: `speculate(agent,
    {"model": model_call_speculator(speculator)})`. Neither is told which tools only read."""
    from langchain_mcp_adapters.client import MultiServerMCPClient

    from langgraph_speculative import speculate
    from langgraph_speculative.agents import model_call_speculator
    from tests.mcp_shop import McpShop

    with McpShop(latency=args.tool_latency) as shop:
        connection: Any = shop.connection()
        tools = await MultiServerMCPClient({"shop": connection}).get_tools()
        speculator: Any = ToolPatternSpeculator() if args.speculator == "pattern" else _oracle(_mcp_plan)
        policy = SpeculationPolicy(k=args.k)
        mw = SpeculativeToolCalls(speculator, policy=policy)
        graphs: list[Any] = []

        def agent(spec: bool) -> Any:
            model = scripted([_mcp_turn] * 4, delay=args.model_latency, ids="seeded")
            if level == "graph" and spec:
                graph = speculate(
                    create_agent(model, tools), {"model": model_call_speculator(speculator)}, policy=policy
                )
                graphs.append(graph)
                return graph
            return create_agent(model, tools, middleware=[mw] if spec else [])

        def ask(i: int) -> dict[str, Any]:
            return {"messages": [HumanMessage(f"Refund my order O{i}, I am user{i}@example.com")]}

        for i in train:
            await agent(True).ainvoke(ask(i))
        mw.report.events.clear()
        graphs.clear()
        plain_t, spec_t = [], []
        for i in measure:
            before = shop.calls().get("issue_refund", 0)
            t0 = time.perf_counter()
            ref = await agent(False).ainvoke(ask(i))
            plain_t.append(time.perf_counter() - t0)
            middle = shop.calls().get("issue_refund", 0)
            t0 = time.perf_counter()
            out = await agent(True).ainvoke(ask(i))
            spec_t.append(time.perf_counter() - t0)
            after = shop.calls().get("issue_refund", 0)
            if _clean(out["messages"]) != _clean(ref["messages"]):
                raise Check(f"mcp conversation {i}: the transcript differs from the plain agent's")
            if after - middle != middle - before:
                raise Check(f"mcp conversation {i}: {after - middle} refunds, plain {middle - before}")
        if level == "graph":  # a branch runs the tools node only where every call only reads
            return _summary(plain_t, spec_t, [g.last_report for g in graphs])
        if any(e["event"] == "launch" and e["call"]["name"] == "issue_refund" for e in mw.report.events):
            raise Check("mcp: the refund ran early")
        return {**_summary(plain_t, spec_t, [mw]), "read_only": sorted(mw.read_only)}


# ---------------------------------------------------------------------- deepagents

NAMES = [f"p{i:02d}" for i in range(40)]


def _deep_plan(messages: list[BaseMessage]) -> list[Call]:
    name = _ask(messages).split("notes on ")[1].strip()
    return [
        ("read_file", {"file_path": f"/notes/{name}.txt"}),
        ("grep", {"pattern": f"{name}-todo"}),
        ("write_file", {"file_path": f"/summary/{name}.txt", "content": f"summary of {name}"}),
        ("ls", {"path": "/summary"}),
    ]


def _deep_turn(messages: list[BaseMessage]) -> Any:
    n = sum(isinstance(m, AIMessage) for m in messages)
    calls = _deep_plan(messages)
    return [calls[n]] if n < len(calls) else "Summarized."


def _deep_files() -> dict[str, Any]:
    return {
        f"/notes/{n}.txt": {
            "content": f"notes on {n}\n{n}-todo: call back\nnothing else",
            "encoding": "utf-8",
            "created_at": "t",
            "modified_at": "t",
        }
        for n in NAMES
    }


def _deep(args: Any, train: list[int], measure: list[int], mode: str) -> dict[str, Any]:
    from deepagents import create_deep_agent

    from tests.stacks_fakes import SlowState

    speculator: Any = ToolPatternSpeculator() if args.speculator == "pattern" else _oracle(_deep_plan)
    mw = SpeculativeToolCalls(
        speculator, read_only={"read_file", "ls", "glob", "grep"}, policy=SpeculationPolicy(k=args.k)
    )

    def run(spec: bool, i: int) -> tuple[Any, SlowState]:
        backend = SlowState(args.tool_latency)
        model = scripted([_deep_turn] * 5, delay=args.model_latency, ids="seeded")
        agent: Any = create_deep_agent(model=model, middleware=[mw] if spec else [], backend=backend)
        inputs: dict[str, Any] = {
            "messages": [HumanMessage(f"Summarize my notes on {NAMES[i]}")],
            "files": _deep_files(),
        }
        out = agent.invoke(inputs) if mode == "sync" else asyncio.run(agent.ainvoke(inputs))
        return out, backend

    for i in train:
        run(True, i)
    mw.report.events.clear()
    plain_t, spec_t = [], []
    for i in measure:
        t0 = time.perf_counter()
        ref, ref_backend = run(False, i)
        plain_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out, backend = run(True, i)
        spec_t.append(time.perf_counter() - t0)
        if transcript(out["messages"], canonical_ids=True) != transcript(ref["messages"], canonical_ids=True):
            raise Check(f"deepagents-{mode} conversation {i}: the transcript differs from the plain agent's")
        if _files(out["files"]) != _files(ref["files"]):
            raise Check(f"deepagents-{mode} conversation {i}: the files differ")
        writes = [early for op, early in backend.log if op in ("write", "edit")]
        if any(writes) or len(writes) != sum(op in ("write", "edit") for op, _ in ref_backend.log):
            raise Check(f"deepagents-{mode} conversation {i}: a write ran early or not as often as plain")
    return _summary(plain_t, spec_t, [mw])


# ---------------------------------------------------------------------- supervisor


def _multiagent(kind: str, args: Any, measure: list[int]) -> dict[str, Any]:
    """The supervisor (or swarm) of `tests/test_multiagent.py`, plain and speculated with the
    documented one-line setup: `handoff_speculator` naming the next agent."""
    from langchain_core.messages import HumanMessage as Ask

    from langgraph_speculative import speculate
    from tests.test_multiagent import one_line_setup

    build, speculators = one_line_setup(kind)
    plain_t, spec_t, reports = [], [], []
    for i in measure:
        inputs = {"messages": [Ask(f"the report of quarter {i}", id=f"ask-{i}")]}
        t0 = time.perf_counter()
        ref = build(args.model_latency).compile().invoke(inputs)
        plain_t.append(time.perf_counter() - t0)
        graph = speculate(build(args.model_latency), speculators).compile()
        t0 = time.perf_counter()
        out = graph.invoke(inputs)
        spec_t.append(time.perf_counter() - t0)
        if transcript(out["messages"], canonical_ids=True) != transcript(ref["messages"], canonical_ids=True):
            raise Check(f"{kind} run {i}: the messages differ from the plain graph's")
        if len({m.id for m in out["messages"]}) != len(out["messages"]):
            raise Check(f"{kind} run {i}: a message appears twice")
        reports.append(graph.last_report)
    return _summary(plain_t, spec_t, reports)


WORKLOADS = ["mcp", "mcp-graph", "deepagents-sync", "deepagents-async", "supervisor", "swarm"]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--model-latency", type=float, default=0.3)
    p.add_argument("--tool-latency", type=float, default=0.3)
    p.add_argument("--train", type=int, default=2, help="conversations the speculator learns from first")
    p.add_argument("--conversations", type=int, default=8)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--speculator", choices=["pattern", "oracle"], default="pattern")
    p.add_argument("--only", choices=WORKLOADS, action="append")
    args = p.parse_args()
    n = 3 if args.quick else args.conversations
    train = list(range(3, 3 + args.train))
    measure = list(range(3 + args.train, 3 + args.train + n))
    wanted = args.only or WORKLOADS
    results: dict[str, Any] = {
        "command": "python benchmarks/stacks.py " + " ".join(sys.argv[1:]),
        "model_latency_s": args.model_latency,
        "tool_latency_s": args.tool_latency,
        "speculator": args.speculator,
        "train": args.train,
    }
    if "mcp" in wanted:
        results["mcp"] = asyncio.run(_mcp(args, train, measure))
    if "mcp-graph" in wanted:
        results["mcp-graph"] = asyncio.run(_mcp(args, train, measure, level="graph"))
    for mode in ("sync", "async"):
        if f"deepagents-{mode}" in wanted:
            results[f"deepagents-{mode}"] = _deep(args, train, measure, mode)
    for kind in ("supervisor", "swarm"):
        if kind in wanted:
            results[kind] = _multiagent(kind, args, measure)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'workload':<18} {'plain (median s)':>17} {'speculative':>12} {'ratio':>6} {'adopted':>8}")
    for name in WORKLOADS:
        if name in results:
            r = results[name]
            print(
                f"{name:<18} {r['plain_median_s']:>17.3f} {r['speculative_median_s']:>12.3f} "
                f"{r['ratio']:>6.2f} {r['adopted']:>8}"
            )


if __name__ == "__main__":
    main()
