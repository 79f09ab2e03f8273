"""The agent stacks people build on, with the real packages (issue 30): MCP tools through
`langchain-mcp-adapters` from a real MCP server on 127.0.0.1, and `deepagents`.

- MCP: `SpeculativeToolCalls(speculator)` with no `read_only` runs early exactly the tools the
  server declares `readOnlyHint=True`; the refund (a write) only ever runs in the tool step, as
  often as without speculation; the transcript is the plain agent's.
- deepagents: `create_deep_agent(..., middleware=[SpeculativeToolCalls(..., read_only={"read_file",
  "ls", "glob", "grep"})])` prefetches its file reads with the runtime and state the real call
  gets (the agent's `files` in its state) and serves them; `write_file` never runs early.

Scripted models of real latency (`tests/agents_fakes.py`); tools take real time too.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import InjectedToolCallId, StructuredTool, tool
from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime

from langgraph_speculative import SpeculationPolicy
from langgraph_speculative.agents import SpeculativeToolCalls
from langgraph_speculative.agents._inspect import Injected, injected_args

from .agents_fakes import scripted, transcript

pytest.importorskip("mcp")
pytest.importorskip("langchain_mcp_adapters")

from langchain_mcp_adapters.client import MultiServerMCPClient  # noqa: E402

from .mcp_shop import McpShop  # noqa: E402

LATENCY = 0.3


def plain_transcript(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """The transcript with content blocks' ids left out (`langchain-mcp-adapters` draws them at
    random for every result, with or without speculation)."""
    out = transcript(messages, canonical_ids=True)
    for m in out:
        if isinstance(m.get("content"), list):
            m["content"] = [
                {k: v for k, v in b.items() if k != "id"} if isinstance(b, dict) else b for b in m["content"]
            ]
    return out


def scripted_by_turn(calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """A speculator that guesses the call the script makes next (and the one after it)."""

    def guess(state: Any) -> list[dict[str, Any]]:
        n = sum(isinstance(m, AIMessage) for m in state["messages"])
        return [{"name": name, "args": args} for name, args in calls[n : n + 2]]

    return guess


def launched(mw: SpeculativeToolCalls) -> list[str]:
    return [e["call"]["name"] for e in mw.report.events if e["event"] == "launch"]


# ---------------------------------------------------------------------- MCP


@pytest.fixture(scope="module")
def shop() -> Iterator[McpShop]:
    with McpShop(latency=LATENCY) as server:
        yield server


REFUND = [
    ("find_user", {"email": "ann@example.com"}),
    ("get_order", {"order_id": "A1"}),
    ("issue_refund", {"order_id": "A1", "amount": 30}),
]


async def mcp_tools(shop: McpShop) -> list[Any]:
    return await MultiServerMCPClient({"shop": shop.connection()}).get_tools()


def test_mcp_tools_declare_read_only_and_take_nothing_injected(shop: McpShop) -> None:
    tools = {t.name: t for t in asyncio.run(mcp_tools(shop))}
    assert tools["find_user"].metadata["readOnlyHint"] is True  # copied by langchain-mcp-adapters
    assert tools["issue_refund"].metadata["readOnlyHint"] is False
    # a JSON-schema input: nothing is injected but the runtime its coroutine takes (was: 'root')
    assert injected_args(tools["find_user"]) == Injected(runtime="runtime")


def test_mcp_agent_without_read_only_runs_the_declared_reads_early_and_never_the_refund(
    shop: McpShop,
) -> None:
    async def main() -> None:
        tools = await mcp_tools(shop)
        ask = {"messages": [HumanMessage("Refund my order A1, I am ann@example.com")]}
        script: list[Any] = [[c] for c in REFUND] + ["Refunded."]

        before = shop.calls()
        plain = await create_agent(scripted(script, delay=LATENCY, ids="seeded"), tools).ainvoke(ask)
        plain_calls = shop.calls()

        mw = SpeculativeToolCalls(scripted_by_turn(REFUND), policy=SpeculationPolicy(k=2))
        agent = create_agent(scripted(script, delay=LATENCY, ids="seeded"), tools, middleware=[mw])
        assert mw.read_only == {"find_user", "get_order"}  # from the server's annotations
        out = await agent.ainvoke(ask)
        after = shop.calls()

        assert plain_transcript(out["messages"]) == plain_transcript(plain["messages"])
        refunds = [c.get("issue_refund", 0) for c in (before, plain_calls, after)]
        assert refunds[2] - refunds[1] == refunds[1] - refunds[0] == 1  # the refund count is plain's
        assert "issue_refund" not in launched(mw)  # never early
        assert any(
            e["event"] == "skipped" and e["reason"] == "not_read_only" and e["call"]["name"] == "issue_refund"
            for e in mw.report.events
        )
        adopted = [e["call"]["name"] for e in mw.report.events if e["event"] == "adopted"]
        assert adopted == ["find_user", "get_order"]
        # each adopted read ran once on the server, as in the plain run (a wrong guess may add one)
        assert after["find_user"] - plain_calls["find_user"] == 1

    asyncio.run(main())


def test_an_explicit_read_only_replaces_the_declarations(shop: McpShop) -> None:
    async def main() -> None:
        tools = await mcp_tools(shop)
        mw = SpeculativeToolCalls(scripted_by_turn(REFUND), read_only={"find_user"})
        script: list[Any] = [[c] for c in REFUND[:2]] + ["ok"]
        agent = create_agent(scripted(script, delay=LATENCY), tools, middleware=[mw])
        await agent.ainvoke({"messages": [HumanMessage("order?")]})
        assert mw.read_only == {"find_user"}
        assert launched(mw) == ["find_user"]  # get_order declares readOnlyHint, but was not named
        assert any(
            e.get("reason") == "not_read_only" and e["call"]["name"] == "get_order" for e in mw.report.events
        )

    asyncio.run(main())


def _injection_forms() -> list[Any]:
    @tool
    def whole(x: str, state: Annotated[dict, InjectedState]) -> str:
        """whole state"""
        return x

    @tool
    def one_field(x: str, topic: Annotated[str, InjectedState("topic")]) -> str:
        """a field"""
        return x

    @tool
    def store(x: str, s: Annotated[Any, InjectedStore()]) -> str:
        """the store"""
        return x

    @tool
    def rt(x: str, runtime: ToolRuntime) -> str:
        """the runtime"""
        return x

    @tool
    def rt_other_name(x: str, env: ToolRuntime[None, dict]) -> str:
        """the runtime, another name"""
        return x

    @tool
    def rt_optional(x: str, rt: Optional[ToolRuntime] = None) -> str:  # noqa: UP045
        """an optional runtime"""
        return x

    @tool
    def call_id(x: str, cid: Annotated[str, InjectedToolCallId]) -> str:
        """its call id"""
        return x

    @tool
    def plain(x: str) -> str:
        """nothing injected"""
        return x

    return [whole, one_field, store, rt, rt_other_name, rt_optional, call_id, plain]


@pytest.mark.parametrize("tool", _injection_forms(), ids=lambda t: t.name)
def test_injected_args_are_found_as_the_tool_node_finds_them(tool: Any) -> None:
    from langgraph.prebuilt import tool_node

    oracle = getattr(tool_node, "_get_all_injected_args", None)
    if oracle is None:  # pragma: no cover - LangGraph moved it: the test below still checks ours
        pytest.skip("langgraph.prebuilt.tool_node._get_all_injected_args is gone")
    theirs = oracle(tool)
    mine = injected_args(tool)
    assert (mine.state, mine.store, mine.runtime) == (theirs.state, theirs.store, theirs.runtime)
    assert mine.call_id == (tool.name == "call_id")


# ---------------------------------------------------------------------- readOnlyHint on any tool


def _tool(name: str, metadata: Any, log: list[str]) -> StructuredTool:
    def run(key: str) -> str:
        log.append(name)
        time.sleep(0.05)
        return f"{name}:{key}"

    return StructuredTool.from_function(func=run, name=name, description=name, metadata=metadata)


def test_any_langchain_tool_declares_read_only_in_its_metadata() -> None:
    log: list[str] = []
    tools = [
        _tool("lookup", {"readOnlyHint": True}, log),
        _tool("truthy", {"readOnlyHint": "yes"}, log),  # not a declaration: only `True` is
        _tool("save", None, log),
    ]
    calls = [("lookup", {"key": "a"}), ("truthy", {"key": "b"})]
    mw = SpeculativeToolCalls(scripted_by_turn(calls), policy=SpeculationPolicy(k=2))
    script: list[Any] = [[c] for c in calls] + ["ok"]
    create_agent(scripted(script, delay=0.15), tools, middleware=[mw]).invoke(
        {"messages": [HumanMessage("go")]}
    )
    assert mw.read_only == {"lookup"}
    assert launched(mw) == ["lookup"]
    assert mw.report.adopted == 1
    assert log == ["lookup", "truthy"]  # lookup ran once (early, served), truthy only in its tool step


def test_without_read_only_and_without_declarations_it_warns_and_runs_nothing_early() -> None:
    log: list[str] = []
    mw = SpeculativeToolCalls(scripted_by_turn([("save", {"key": "a"})]))
    with pytest.warns(UserWarning, match=r"declares readOnlyHint=True.*read_only=\{"):
        agent = create_agent(
            scripted([[("save", {"key": "a"})], "ok"], delay=0.1), [_tool("save", {}, log)], middleware=[mw]
        )
    agent.invoke({"messages": [HumanMessage("go")]})
    assert launched(mw) == [] and log == ["save"]


# ---------------------------------------------------------------------- deepagents

deepagents = pytest.importorskip("deepagents")

from .stacks_fakes import SlowState  # noqa: E402

FILES = {
    "/notes.txt": {
        "content": "buy milk\ncall ann",
        "encoding": "utf-8",
        "created_at": "t",
        "modified_at": "t",
    },
    "/todo.md": {"content": "- ship it", "encoding": "utf-8", "created_at": "t", "modified_at": "t"},
}
DEEP = [
    ("read_file", {"file_path": "/notes.txt"}),
    ("grep", {"pattern": "ann"}),
    ("write_file", {"file_path": "/summary.txt", "content": "ann: call"}),
    ("ls", {"path": "/"}),
]
READS = {"read_file", "ls", "glob", "grep"}


def contents(files: dict[str, Any]) -> dict[str, Any]:
    """The files without their timestamps (the write's wall-clock time)."""
    return {path: {k: v for k, v in f.items() if not k.endswith("_at")} for path, f in files.items()}


def deep_agent(middleware: list[Any], backend: SlowState) -> Any:
    from deepagents import create_deep_agent

    script: list[Any] = [[c] for c in DEEP] + ["Summarized."]
    return create_deep_agent(
        model=scripted(script, delay=LATENCY, ids="seeded"), middleware=middleware, backend=backend
    )


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_deep_agent_prefetches_its_file_reads_with_the_real_state(mode: str) -> None:
    inputs = {"messages": [HumanMessage("Summarize my notes about ann")], "files": FILES}

    def run(agent: Any) -> Any:
        return agent.invoke(inputs) if mode == "invoke" else asyncio.run(agent.ainvoke(inputs))

    plain_backend = SlowState()
    plain = run(deep_agent([], plain_backend))

    backend = SlowState()
    mw = SpeculativeToolCalls(scripted_by_turn(DEEP), read_only=READS, policy=SpeculationPolicy(k=2))
    out = run(deep_agent([mw], backend))

    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert contents(out["files"]) == contents(plain["files"]) and "/summary.txt" in out["files"]
    adopted = [e["call"]["name"] for e in mw.report.events if e["event"] == "adopted"]
    assert adopted == ["read_file", "grep", "ls"]
    assert "write_file" not in launched(mw)
    assert ("write", True) not in backend.log and backend.log.count(("write", False)) == 1
    assert ("read", True) in backend.log and ("read", False) not in backend.log  # served, not run again
    text = next(m.content for m in out["messages"] if getattr(m, "name", None) == "read_file")
    assert "call ann" in text  # read from the files in the agent's state


def test_deep_agent_file_reads_see_the_files_a_write_left() -> None:
    """A read after a write: the prefetch reads the files of the model call's state, which the
    write already changed; the result is the plain run's."""
    calls = [
        ("write_file", {"file_path": "/new.txt", "content": "fresh"}),
        ("read_file", {"file_path": "/new.txt"}),
    ]
    script: list[Any] = [[c] for c in calls] + ["ok"]
    from deepagents import create_deep_agent

    def build(mw: list[Any]) -> Any:
        return create_deep_agent(
            model=scripted(script, delay=0.15, ids="seeded"), middleware=mw, backend=SlowState(0.05)
        )

    inputs = {"messages": [HumanMessage("write then read")], "files": FILES}
    mw = SpeculativeToolCalls(scripted_by_turn(calls), read_only=READS)
    out = build([mw]).invoke(inputs)
    ref = build([]).invoke(inputs)
    assert transcript(out["messages"], canonical_ids=True) == transcript(ref["messages"], canonical_ids=True)
    assert mw.report.adopted == 1
    assert "fresh" in next(m.content for m in out["messages"] if getattr(m, "name", None) == "read_file")


def test_deep_agent_tools_declare_nothing_so_read_only_must_be_named() -> None:
    """deepagents' file tools carry no readOnlyHint: without `read_only` nothing runs early
    (and a warning says to pass read_only={"read_file", "ls", "glob", "grep"})."""
    mw = SpeculativeToolCalls(scripted_by_turn(DEEP))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = deep_agent([mw], SlowState(0.0))
    assert any('read_only={"read_file", "ls", "glob", "grep"}' in str(w.message) for w in caught)
    agent.invoke({"messages": [HumanMessage("go")], "files": FILES})
    assert launched(mw) == []


def test_deep_agent_write_named_read_only_by_mistake_is_never_served() -> None:
    """A tool that writes the agent's state, named in read_only by mistake: its early call's
    write never reaches the state (it fails there), so it is not served and the tool step runs
    it; the files are the plain run's."""
    calls = [("write_file", {"file_path": "/w.txt", "content": "once"})]
    script: list[Any] = [[c] for c in calls] + ["ok"]
    from deepagents import create_deep_agent

    def build(mw: list[Any], backend: SlowState) -> Any:
        return create_deep_agent(
            model=scripted(script, delay=0.15, ids="seeded"), middleware=mw, backend=backend
        )

    inputs = {"messages": [HumanMessage("write")], "files": FILES}
    backend = SlowState(0.05)
    mw = SpeculativeToolCalls(scripted_by_turn(calls), read_only={"write_file"})
    out = build([mw], backend).invoke(inputs)
    ref = build([], SlowState(0.05)).invoke(inputs)
    assert transcript(out["messages"], canonical_ids=True) == transcript(ref["messages"], canonical_ids=True)
    assert contents(out["files"]) == contents(ref["files"]) and out["files"]["/w.txt"]["content"] == "once"
    assert launched(mw) == ["write_file"] and mw.report.adopted == 0
    assert any(str(e.get("reason")).startswith(("failed", "wrote_state")) for e in mw.report.events)
    assert backend.log.count(("write", False)) == 1  # the tool step's


def test_graph_level_mcp_agent_without_read_only_tools_uses_the_declarations(shop: McpShop) -> None:
    """`speculate(create_agent(...), {"model": ...})` with no `read_only_tools`: branches run the
    tools the server declares read-only, never the refund."""
    from langgraph_speculative import speculate
    from langgraph_speculative.agents import model_call_speculator

    async def main() -> None:
        tools = await mcp_tools(shop)
        ask = {"messages": [HumanMessage("Refund my order A1, I am ann@example.com")]}
        script: list[Any] = [[c] for c in REFUND] + ["Refunded."]
        before = shop.calls()
        plain = await create_agent(scripted(script, delay=LATENCY, ids="seeded"), tools).ainvoke(ask)
        middle = shop.calls()
        graph = speculate(
            create_agent(scripted(script, delay=LATENCY, ids="seeded"), tools),
            {"model": model_call_speculator(scripted_by_turn(REFUND))},
        )
        out = await graph.ainvoke(ask)
        after = shop.calls()
        assert plain_transcript(out["messages"]) == plain_transcript(plain["messages"])
        assert after["issue_refund"] - middle["issue_refund"] == middle["issue_refund"] - before.get(
            "issue_refund", 0
        )
        assert graph.last_report is not None and graph.last_report.node("tools").adopted == 2

    asyncio.run(main())


def test_graph_level_speculate_of_a_deep_agent_refuses_and_points_to_the_middleware() -> None:
    """A deep agent's `messages` and `files` are `DeltaChannel`s (a value rebuilt from the
    thread's history, which a branch's fork does not have): `speculate()` refuses it at compile
    time, naming the channels and the middleware that speculates its tool calls instead."""
    from langgraph_speculative import speculate

    agent = deep_agent([], SlowState(0.0))
    with pytest.raises(ValueError, match="DeltaChannel") as info:
        speculate(agent.builder, {"model": lambda s: []}).compile()
    assert "messages" in str(info.value) and "SpeculativeToolCalls" in str(info.value)
