"""The one runtime speculative work runs on (graph path and middleware alike): sync runs use
the process loop, never closed, and call user code through its sync path on the process pool;
async runs stay on the caller's loop; sync tools prefetched by async agents never touch the
loop's default executor. A client that pools connections per event loop (as LangChain's OpenAI
client does) therefore never sees a loop the library closed, nor two loops at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_speculative import speculate
from langgraph_speculative._threads import PREFIX, has_sync_path
from langgraph_speculative.agents import SpeculativeToolCalls

from .agents_fakes import READS, Shop, ask, scripted, shop_script, transcript
from .leftovers import leftover_work


class S(TypedDict, total=False):
    n: int
    out: str


class LoopBoundClient:
    """Like an async HTTP client with pooled connections: the first loop that uses it owns it;
    another loop gets "bound to a different event loop", a closed one "Event loop is closed"."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0
        self.errors: list[str] = []

    async def acall(self, value: int) -> int:
        loop = asyncio.get_running_loop()
        if self.loop is not None and self.loop is not loop:
            why = "Event loop is closed" if self.loop.is_closed() else "bound to a different event loop"
            self.errors.append(why)
            raise RuntimeError(why)
        self.loop = loop
        await asyncio.sleep(0.005)
        self.calls += 1
        return value


class Both(Runnable[Any, Any]):
    """A Runnable with a sync and an async path (a chat model, a `ToolNode`): counts which ran."""

    def __init__(self, fn: Any, client: LoopBoundClient | None = None) -> None:
        self.fn = fn
        self.client = client
        self.sync_calls = 0
        self.async_calls = 0

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        self.sync_calls += 1
        return self.fn(input)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        self.async_calls += 1
        if self.client is not None:
            await self.client.acall(0)
        return self.fn(input)


def _inc(state: S) -> dict[str, Any]:
    time.sleep(0.05)
    return {"n": state["n"] + 1}


def _chain(a: Any, b: Any) -> StateGraph:
    builder = StateGraph(S)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


def test_an_async_speculator_in_sync_runs_keeps_its_client_usable() -> None:
    """The process loop is never closed: an async speculator whose client is bound to the loop it
    first ran on works on every sync run, and that loop is still open after them."""
    client = LoopBoundClient()

    async def guess(state: S) -> list[dict[str, Any]]:
        return [{"n": await client.acall(state["n"] + 1)}]

    graph = speculate(_chain(_inc, _inc), {"a": guess}).compile(checkpointer=InMemorySaver())
    for i in range(4):
        out = graph.invoke({"n": 0}, {"configurable": {"thread_id": f"t{i}"}})
        assert out == {"n": 2}
        report = graph.last_report
        assert report is not None and report.hits == 1 and report.node("a").speculator_errors == 0
    assert client.errors == [] and client.calls == 4
    assert client.loop is not None and not client.loop.is_closed()
    assert leftover_work() == []


def test_sync_runs_call_user_code_through_its_sync_path() -> None:
    """A speculator and an early call with both paths run their sync one in a sync run: a client
    the user shares between their own loop and sync runs never sees the library's loop."""
    client = LoopBoundClient()
    spec = Both(lambda s: [{"n": s["n"] + 1}], client)
    b_node = Both(lambda s: {"out": f"n={s['n']}"}, client)
    graph = speculate(_chain(_inc, b_node), {"a": spec}).compile(checkpointer=InMemorySaver())
    plain = _chain(_inc, Both(lambda s: {"out": f"n={s['n']}"})).compile(checkpointer=InMemorySaver())

    async def users_own_call() -> int:  # the user's app, on its own loop
        return await client.acall(7)

    for i in range(3):
        cfg: Any = {"configurable": {"thread_id": f"s{i}"}}
        assert graph.invoke({"n": 0}, cfg) == plain.invoke({"n": 0}, cfg)
        report = graph.last_report
        assert report is not None and report.hits == 1 and report.node("b").adopted == 1
    assert spec.async_calls == 0 and b_node.async_calls == 0
    assert spec.sync_calls == 3 and b_node.sync_calls == 3
    assert client.errors == []
    assert asyncio.run(users_own_call()) == 7  # the library never used the user's client on its loop


def test_async_runs_and_sync_runs_in_threads_share_a_client_without_loop_errors() -> None:
    """An async app that also calls `invoke` from worker threads: main runs never raise an error
    the plain graph would not, and async runs keep their work on their own loop."""

    client = LoopBoundClient()  # the app's async client, on the app's loop

    async def spec_async(state: S) -> list[dict[str, Any]]:
        return [{"n": await client.acall(state["n"] + 1)}]

    used_loops: set[int] = set()

    async def a_node(state: S) -> dict[str, Any]:
        used_loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.03)
        return {"n": state["n"] + 1}

    def b_sync(state: S) -> dict[str, Any]:
        time.sleep(0.01)
        return {"out": f"n={state['n']}"}

    async def b_async(state: S) -> dict[str, Any]:
        await client.acall(0)
        return {"out": f"n={state['n']}"}

    from langchain_core.runnables import RunnableLambda

    b = RunnableLambda(b_sync, afunc=b_async)
    a = RunnableLambda(lambda s: _inc(s), afunc=a_node)
    graph = speculate(_chain(a, b), {"a": RunnableLambda(lambda s: [{"n": s["n"] + 1}], afunc=spec_async)})
    compiled = graph.compile(checkpointer=InMemorySaver())

    async def app() -> list[Any]:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sync_runs = [
                loop.run_in_executor(
                    pool, compiled.invoke, {"n": 0}, {"configurable": {"thread_id": f"w{i}"}}
                )
                for i in range(6)
            ]
            async_runs = [
                compiled.ainvoke({"n": 0}, {"configurable": {"thread_id": f"a{i}"}}) for i in range(6)
            ]
            return await asyncio.gather(*sync_runs, *async_runs)

    outs = asyncio.run(app())
    assert outs == [{"n": 1, "out": "n=1"}] * 12
    assert client.errors == []
    assert len(used_loops) == 1  # async runs' actors ran on the app's loop only
    assert leftover_work() == []


def test_has_sync_path() -> None:
    from langchain_core.runnables import RunnableLambda

    async def af(x: Any) -> Any:
        return x

    assert has_sync_path(RunnableLambda(lambda x: x))
    assert not has_sync_path(RunnableLambda(af))
    assert has_sync_path(RunnableLambda(lambda x: x, afunc=af))
    assert not has_sync_path(RunnableLambda(lambda x: x) | RunnableLambda(af))
    assert has_sync_path(Both(lambda x: x))
    builder = StateGraph(S)
    builder.add_node("sync_node", _inc)

    async def anode(state: S) -> dict[str, Any]:
        return {}

    builder.add_node("async_node", anode)
    assert has_sync_path(builder.nodes["sync_node"].runnable)
    assert not has_sync_path(builder.nodes["async_node"].runnable)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_middleware_runs_on_the_process_pool_and_never_waits_for_a_slow_speculator(mode: str) -> None:
    """Prefetches of sync tools run on the library's pool (an async agent's default executor
    stays free for its own tool calls), and a sync agent never waits for its speculator."""
    shop = Shop(latency=0.05)
    seen_threads: list[str] = []
    release = threading.Event()

    def slow_guess(state: Any) -> list[dict[str, Any]]:
        seen_threads.append(threading.current_thread().name)
        release.wait(10)  # far slower than the whole run
        return []

    mw = SpeculativeToolCalls(slow_guess, read_only=READS)
    agent = create_agent(scripted(shop_script(), delay=0.02), shop.tools(), middleware=[mw])
    want = create_agent(scripted(shop_script(), delay=0.02), Shop(latency=0.05).tools()).invoke(ask())
    try:
        got = agent.invoke(ask()) if mode == "invoke" else asyncio.run(agent.ainvoke(ask()))
        assert transcript(got["messages"], canonical_ids=True) == transcript(
            want["messages"], canonical_ids=True
        )
        assert not release.is_set()  # the run ended while its speculator was still thinking
    finally:
        release.set()
    assert seen_threads and all(n.startswith(f"{PREFIX}-work") for n in seen_threads)
    assert leftover_work() == []


def test_async_agents_prefetch_sync_tools_on_the_process_pool() -> None:
    shop = Shop(latency=0.05)
    tool_threads: list[str] = []
    tools = shop.tools()
    for t in tools:
        fn = t.func  # type: ignore[attr-defined]

        def wrapped(*a: Any, __fn: Any = fn, **k: Any) -> Any:
            tool_threads.append(threading.current_thread().name)
            return __fn(*a, **k)

        t.func = wrapped  # type: ignore[attr-defined]
        t.coroutine = None  # type: ignore[attr-defined]  # an ordinary sync tool

    def oracle_guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "find_user", "args": {"email": "ann@example.com"}}]

    mw = SpeculativeToolCalls(oracle_guess, read_only=READS)
    agent = create_agent(scripted(shop_script(), delay=0.05), tools, middleware=[mw])
    asyncio.run(agent.ainvoke(ask()))
    assert mw.report.adopted >= 1
    early = [e for e in mw.report.events if e["event"] == "launch"]
    assert early
    assert any(n.startswith(f"{PREFIX}-work") for n in tool_threads)
    assert leftover_work() == []


def test_async_runs_run_early_sync_tool_calls_on_the_process_pool() -> None:
    """At graph level too: a `ToolNode` of sync tools launched early on a branch of an async run
    runs on the library's pool, never on the loop's default executor the main run's tools use."""

    where: list[tuple[str, bool]] = []

    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        from langgraph_speculative import speculation_info

        where.append((threading.current_thread().name, speculation_info() is not None))
        time.sleep(0.02)
        return f"{city}: sunny"

    call = {"name": "lookup", "args": {"city": "Oslo"}, "id": "c1", "type": "tool_call"}

    async def plan(state: MessagesState) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        if any(m.type == "tool" for m in state["messages"]):
            return {"messages": [AIMessage("done")]}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    def guess(state: MessagesState) -> list[dict[str, Any]]:
        return [{"messages": [AIMessage("", tool_calls=[call])]}]

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    builder = StateGraph(MessagesState)
    builder.add_node("plan", plan)
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route, ["tools", END])
    builder.add_edge("tools", "plan")
    graph = speculate(builder, {"plan": guess}, read_only_tools={"lookup"}).compile(
        checkpointer=InMemorySaver()
    )
    out = asyncio.run(
        graph.ainvoke({"messages": [HumanMessage("weather?")]}, {"configurable": {"thread_id": "x"}})
    )
    assert out["messages"][-1].content == "done"
    report = graph.last_report
    assert report is not None and report.node("tools").adopted == 1
    early = [name for name, on_branch in where if on_branch]
    assert early and not any(name.startswith("asyncio_") for name in early)  # the default executor's
    assert leftover_work() == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_early_call_that_fails_says_so(mode: str) -> None:
    """An early call that fails (a client error on the branch, say) is an event, and the main run
    makes the call itself."""
    from langgraph_speculative import speculation_info

    def b_node(state: S) -> dict[str, Any]:
        if speculation_info() is not None:
            raise ConnectionError("the pooled connection is gone")
        return {"out": f"n={state['n']}"}

    graph = speculate(_chain(_inc, b_node), {"a": lambda s: [{"n": s["n"] + 1}]}).compile(
        checkpointer=InMemorySaver()
    )
    cfg: Any = {"configurable": {"thread_id": mode}}
    out = graph.invoke({"n": 0}, cfg) if mode == "sync" else asyncio.run(graph.ainvoke({"n": 0}, cfg))
    assert out == {"n": 1, "out": "n=1"}
    report = graph.last_report
    assert report is not None
    errors = [e for e in report.events if e["event"] == "early_call_error"]
    assert errors and errors[0]["node"] == "b" and "pooled connection" in errors[0]["error"]
    assert report.node("b").adopted == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_speculator_reads_the_store_and_never_writes_it(mode: str) -> None:
    """A speculator is speculative work: it may read the graph's store, and a write it tries is
    refused (a speculator error), never made in the user's store."""
    from langgraph.config import get_store
    from langgraph.store.memory import InMemoryStore

    seen: list[Any] = []

    def guess(state: S) -> list[dict[str, Any]]:
        seen.append(get_store().get(("facts",), "n"))
        get_store().put(("facts",), "written_by_speculator", {"v": 1})
        return [{"n": state["n"] + 1}]

    store = InMemoryStore()
    store.put(("facts",), "n", {"v": 7})
    graph = speculate(_chain(_inc, _inc), {"a": guess}).compile(checkpointer=InMemorySaver(), store=store)
    cfg: Any = {"configurable": {"thread_id": mode}}
    out = graph.invoke({"n": 0}, cfg) if mode == "sync" else asyncio.run(graph.ainvoke({"n": 0}, cfg))
    assert out == {"n": 2}
    assert seen and seen[0] is not None and seen[0].value == {"v": 7}
    assert store.get(("facts",), "written_by_speculator") is None
    report = graph.last_report
    assert report is not None and report.node("a").speculator_errors == 1
