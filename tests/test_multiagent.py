"""Multi-agent graphs with the real packages (issue 30): `langgraph-supervisor` and
`langgraph-swarm`, speculated at graph level.

A handoff leaves the agent's subgraph as `Command(graph=Command.PARENT)`, which LangGraph raises
out of the node (`ParentCommand`): speculation reads it as the node's result (a guess of it hits),
early calls of agents (subgraphs) are adopted, and adopted results carry the main run's message
ids, so `add_messages` never appends a message twice. Everything observable is compared with the
plain graph by the differential oracle (`tests/oracle.py`). Scripted models of real latency.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langgraph_speculative import speculate

from . import oracle
from .agents_fakes import scripted, transcript

pytest.importorskip("langgraph_supervisor")
pytest.importorskip("langgraph_swarm")

from langgraph_supervisor import create_supervisor  # noqa: E402
from langgraph_swarm import create_handoff_tool, create_swarm  # noqa: E402

LATENCY = 0.3
WORKERS = ["researcher", "mathematician", "writer"]


def _handoffs(messages: list[BaseMessage]) -> int:
    return sum(isinstance(m, ToolMessage) and (m.name or "").startswith("transfer_to_") for m in messages)


def _supervisor_turn(messages: list[BaseMessage]) -> Any:
    n = _handoffs(messages)
    return [(f"transfer_to_{WORKERS[n]}", {})] if n < len(WORKERS) else "All done."


def _worker_turn(name: str) -> Any:
    return lambda messages: f"{name}: my part of {messages[0].content}"


def supervisor(latency: float = LATENCY) -> Any:
    """A three-handoff supervisor (`create_supervisor`): workers are `create_agent` graphs."""
    workers = [
        create_agent(scripted([_worker_turn(w)] * 9, delay=latency, ids="seeded"), [], name=w)
        for w in WORKERS
    ]
    return create_supervisor(workers, model=scripted([_supervisor_turn] * 9, delay=latency, ids="seeded"))


def handoff(messages: list[BaseMessage], to: str, *, by: str | None, call_id: str, **update: Any) -> Command:
    """The `Command` an agent's handoff tool sends its graph: its call, the tool's answer."""
    call = {"name": f"transfer_to_{to}", "args": {}, "id": call_id, "type": "tool_call"}
    said = AIMessage(content="", name=by, tool_calls=[call])
    done = ToolMessage(content=f"Successfully transferred to {to}", name=call["name"], tool_call_id=call_id)
    return Command(goto=to, update={"messages": [*messages, said, done], **update})


def supervisor_guess(state: dict[str, Any]) -> list[Command]:
    """Guesses the supervisor's next handoff (a speculator that knows the plan)."""
    n = _handoffs(state["messages"])
    if n >= len(WORKERS):
        return []
    return [handoff(state["messages"], WORKERS[n], by="supervisor", call_id=f"guess_{n}")]


def run(graph: Any, mode: str, config: Any = None) -> tuple[dict[str, Any], float]:
    inputs = {"messages": [HumanMessage("the quarterly report", id="ask-1")]}
    t0 = time.perf_counter()
    out = graph.invoke(inputs, config) if mode == "sync" else asyncio.run(graph.ainvoke(inputs, config))
    return out, time.perf_counter() - t0


def events(graph: Any) -> Counter[tuple[str, str]]:
    return Counter((e["event"], e["node"]) for e in graph.last_report.events)


# ---------------------------------------------------------------------- supervisor


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_supervisor_handoffs_hit_and_workers_are_adopted(mode: str) -> None:
    plain, _ = run(supervisor().compile(), mode)
    graph = speculate(supervisor(), {"supervisor": supervisor_guess}).compile()
    out, _ = run(graph, mode)
    # the same messages, none twice (adopted results carry the main run's message ids)
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    ids = [m.id for m in out["messages"]]
    assert len(ids) == len(set(ids)) == 17
    seen = events(graph)
    assert seen[("hit", "supervisor")] >= 2, seen
    assert not any(
        e["event"] == "cancelled" and e.get("reason") == "actor_failed" for e in graph.last_report.events
    )
    adopted_workers = {n for (ev, n) in seen if ev == "adopted" and n in WORKERS}
    assert len(adopted_workers) >= 2, seen  # workers (subgraphs) launched early and adopted


@pytest.mark.parametrize("tokens", [False, True])
def test_supervisor_streams_as_plain(tokens: bool) -> None:
    """Every stream mode (but the checkpointer's) as plain. Streaming `messages`, a branch stops
    before an agent (an adopted call's tokens would lack the subgraph's metadata)."""

    def observe(graph: Any) -> oracle.Observation:
        obs = oracle.Observation()
        modes = [
            m
            for m in oracle.STREAM_MODES
            if m not in ("checkpoints", "debug") and (tokens or m != "messages")
        ]
        chunks = list(graph.stream({"messages": [HumanMessage("q", id="ask-1")]}, stream_mode=modes))
        obs.streams.append(oracle.stream_view(chunks))
        obs.turns.append(oracle.result([c for m, c in chunks if m == "values"][-1]))
        return obs

    plain = observe(supervisor(0.05).compile())
    graph = speculate(supervisor(0.05), {"supervisor": supervisor_guess}).compile()
    oracle.assert_same(plain, observe(graph), "supervisor, every stream mode")
    adopted = {n for ev, n in events(graph) if ev == "adopted"}
    assert (adopted & set(WORKERS)) if not tokens else not (adopted & set(WORKERS)), events(graph)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_supervisor_with_a_checkpointer_is_lossless_and_says_why_agents_are_not_launched(mode: str) -> None:
    """Under the user's checkpointer an agent's checkpoints belong under the main run's task,
    which an early call cannot write: a branch stops before agents, and `speculate()` says so."""

    def observe(graph: Any) -> oracle.Observation:
        cfg = {"configurable": {"thread_id": "t1"}}
        out, _ = run(graph, mode, cfg)
        obs = oracle.Observation(turns=[oracle.result(out)])
        obs.history = oracle.history(graph.get_state_history(cfg))
        return obs

    plain = observe(supervisor(0.05).compile(checkpointer=InMemorySaver()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = speculate(supervisor(0.05), {"supervisor": supervisor_guess}).compile(
            checkpointer=InMemorySaver()
        )
        spec = observe(graph)
    oracle.assert_same(plain, spec, "supervisor with a checkpointer")
    said = [str(w.message) for w in caught if "subgraph" in str(w.message)]
    assert said and "researcher" in said[0] and "without a checkpointer" in said[0], said
    assert not any(ev == "launch" for ev, _ in events(graph)), events(graph)  # no agent ran on a branch


# ---------------------------------------------------------------------- swarm

AGENTS = ["alice", "bob", "carol"]


def _swarm_turn(me: str) -> Any:
    def turn(messages: list[BaseMessage]) -> Any:
        n = _handoffs(messages)
        if n < len(AGENTS) - 1 and AGENTS[n] == me:
            return [(f"transfer_to_{AGENTS[n + 1]}", {})]
        return f"{me}: the answer to {messages[0].content}"

    return turn


def swarm(latency: float = LATENCY) -> Any:
    """alice hands off to bob, bob to carol, carol answers (`create_swarm`)."""
    agents = []
    for i, name in enumerate(AGENTS):
        tools = [create_handoff_tool(agent_name=AGENTS[i + 1])] if i + 1 < len(AGENTS) else []
        model = scripted([_swarm_turn(name)] * 9, delay=latency, ids="seeded")
        agents.append(create_agent(model, tools, name=name))
    return create_swarm(agents, default_active_agent="alice")


def swarm_guess(state: dict[str, Any]) -> list[Command]:
    """Guesses the active agent's handoff to the next one."""
    n = _handoffs(state["messages"])
    if n >= len(AGENTS) - 1:
        return []
    to = AGENTS[n + 1]
    return [handoff(state["messages"], to, by=AGENTS[n], call_id=f"guess_{n}", active_agent=to)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_swarm_handoffs_hit_and_the_next_agent_is_adopted(mode: str) -> None:
    plain, _ = run(swarm().compile(), mode)
    graph = speculate(swarm(), {name: swarm_guess for name in AGENTS[:-1]}).compile()
    out, _ = run(graph, mode)
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert out["active_agent"] == plain["active_agent"] == "carol"
    ids = [m.id for m in out["messages"]]
    assert len(ids) == len(set(ids))
    seen = events(graph)
    assert seen[("hit", "alice")] == 1 and seen[("adopted", "bob")] == 1, seen


# ---------------------------------------------------------------------- handoff_speculator


def next_worker(state: dict[str, Any]) -> str | None:
    """The supervisor's next handoff, from the messages."""
    n = _handoffs(state["messages"])
    return WORKERS[n] if n < len(WORKERS) else None


def next_agent(state: dict[str, Any]) -> str | None:
    """The swarm's next agent, from the messages."""
    n = _handoffs(state["messages"])
    return AGENTS[n + 1] if n + 1 < len(AGENTS) else None


def one_line_setup(kind: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The builder of the `supervisor` or `swarm` graph and its speculators, each a
    `handoff_speculator` naming the next agent (also `benchmarks/stacks.py`'s)."""
    from langgraph_speculative.agents import handoff_speculator

    if kind == "supervisor":
        return supervisor, {"supervisor": handoff_speculator(next_worker)}
    return swarm, {name: handoff_speculator(next_agent) for name in AGENTS[:-1]}


@pytest.mark.parametrize("kind", ["supervisor", "swarm"])
def test_handoff_speculator_is_the_one_line_setup(kind: str) -> None:
    """`handoff_speculator(choose)`: the user names the next agent, the library writes the
    handoff `Command` the packages' tools send; the guesses hit and the transcript is plain's."""
    build, speculators = one_line_setup(kind)
    plain, _ = run(build().compile(), "sync")
    graph = speculate(build(), speculators).compile()
    out, _ = run(graph, "sync")
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert sum(e["event"] == "hit" for e in graph.last_report.events) >= 1, events(graph)
    assert not [e for e in graph.last_report.events if e["event"] == "invalid_guess"]
