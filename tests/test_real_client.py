"""The real-client tier (issue 25): the real provider client, `ChatOpenAI`, over HTTP.

Every model here is `langchain_openai.ChatOpenAI` (or `init_chat_model("openai:...")`) talking to
our own OpenAI-compatible server on 127.0.0.1 (`tests/openai_server.py`): keep-alive connection
pools, OpenAI's reply shapes (`refusal: null`, usage, random ids), streamed deltas. No fake model.
Model "big" is the actor (slow), "small" the speculator (fast); the server's script decides what
each answers, so their guesses agree or disagree as a test needs.

Each scenario runs the plain graph and the speculative one on the same inputs and asserts they
commit the same (final values, every checkpoint, the messages a reader sees), and, where the
guesses are right, that the work was adopted (hits, adopted calls, requests per model: the
speed-up as the speculation report counts it). Wall-clock is never asserted (machines are shared).

Run: `python -m pytest -q tests/test_real_client.py` (about 40 s on a quiet machine).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain.chat_models import init_chat_model
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_speculative import SpeculationPolicy, speculate
from langgraph_speculative.agents import (
    SpeculativeToolCalls,
    ToolPatternSpeculator,
    model_call_speculator,
    model_speculator,
)

from .openai_server import OpenAIServer, Reply, Request

BIG, SMALL, TOOL = 0.25, 0.02, 0.08  # seconds: the actor model, the speculator model, a tool

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# ---------------------------------------------------------------------- the script

CLASSIFY = "Classify the user's question: answer with one topic word."
ANSWER = "Answer the user's question using the topic you gave."
CUSTOMERS = {
    "ann@example.com": ("C1", ["O1", "O2"]),
    "bob@example.com": ("C2", ["O7"]),
    "cy@example.com": ("C3", ["O4", "O5"]),
    "di@example.com": ("C4", ["O9"]),
}
ORDERS = {
    "O1": "shipped",
    "O2": "pending",
    "O4": "pending",
    "O5": "shipped",
    "O7": "delivered",
    "O9": "pending",
}


class Script:
    """What the models answer. `small_right`: the speculator model agrees with the actor."""

    def __init__(self, small_right: bool = True) -> None:
        self.small_right = small_right

    def __call__(self, req: Request) -> Reply | str:
        wrong = req.model == "small" and not self.small_right
        if CLASSIFY in req.system:
            topic = _topic(req.last_user)
            return "history" if wrong else topic
        if ANSWER in req.system:
            topic = next(
                (m.get("content") for m in reversed(req.messages) if m.get("role") == "assistant"), ""
            )
            return f"[{topic}] An answer to: {req.last_user}"
        return _agent_turn(req, wrong)


def _topic(question: str) -> str:
    q = question.lower()
    return "geography" if "capital" in q else "math" if "prime" in q else "other"


def _agent_turn(req: Request, wrong: bool) -> Reply:
    """The shop agent: find the customer, read the first order, maybe cancel it, then answer."""
    results = req.tool_results
    found = re.search(r"[\w.]+@[\w.]+", req.last_user)
    email = found.group() if found else "nobody@example.com"
    if not results:
        return Reply("", [("find_customer", {"email": "zed@example.com" if wrong else email})])
    if len(results) == 1:
        orders = re.findall(r"O\d+", results[0])
        return Reply("", [("get_order", {"order_id": "O99" if wrong else (orders or ["O0"])[0]})])
    if "cancel" in req.last_user.lower() and len(results) == 2 and "pending" in results[1]:
        order = re.findall(r"O\d+", results[1])[0]
        return Reply("", [("cancel_order", {"order_id": order})])
    return Reply(f"Done: {results[-1]}")


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def app_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The async app's one event loop, for every async run of a test.

    (`langchain-openai` shares one async HTTP client per process, whose pooled connections stay
    bound to the loop that opened them: a plain graph too fails with 'Event loop is closed'
    when each run gets its own `asyncio.run`. Async apps keep one loop; so do these tests.)
    """
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    """Our OpenAI-compatible server on a free port of 127.0.0.1, stopped after the test."""
    with OpenAIServer(Script(), latency={"big": BIG, "small": SMALL}) as s:
        yield s


def _chat(server: OpenAIServer, model: str, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=server.base_url, api_key="test", max_retries=0, **kw)


class Shop:
    """Ordinary sync tools with a real latency; every execution is logged."""

    def __init__(self, latency: float = TOOL) -> None:
        self.latency = latency
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def _ran(self, name: str, arg: str) -> None:
        time.sleep(self.latency)
        with self.lock:
            self.log.append((name, arg))

    def tools(self) -> list[BaseTool]:
        @tool
        def find_customer(email: str) -> str:
            """Find a customer and their orders by email."""
            self._ran("find_customer", email)
            cid, orders = CUSTOMERS.get(email, ("none", []))
            return f"customer {cid} orders {', '.join(orders) or 'none'}"

        @tool
        def get_order(order_id: str) -> str:
            """Read one order."""
            self._ran("get_order", order_id)
            return f"order {order_id} is {ORDERS.get(order_id, 'unknown')}"

        @tool
        def cancel_order(order_id: str) -> str:
            """Cancel an order (a write)."""
            self._ran("cancel_order", order_id)
            return f"order {order_id} cancelled"

        return [find_customer, get_order, cancel_order]

    def writes(self) -> list[tuple[str, str]]:
        return [e for e in self.log if e[0] == "cancel_order"]


READS = {"find_customer", "get_order"}


def view(messages: list[BaseMessage]) -> list[tuple[Any, ...]]:
    """What a reader of the transcript sees: every field but the random ids (tool-call ids by
    position), including the provider's usage and finish reason (the actor's own reply)."""
    ids: dict[str, int] = {}
    out = []
    for m in messages:
        calls = [
            (c["name"], c["args"], ids.setdefault(c["id"], len(ids))) for c in getattr(m, "tool_calls", [])
        ]
        meta = m.response_metadata or {}
        out.append(
            (
                m.type,
                m.content,
                calls,
                ids.setdefault(m.tool_call_id, len(ids)) if m.type == "tool" else None,
                getattr(m, "status", None),
                m.additional_kwargs,
                meta.get("model_name"),
                meta.get("finish_reason"),
                getattr(m, "usage_metadata", None),
            )
        )
    return out


def history(graph: Any, cfg: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every checkpoint of the thread: its messages as read, other values, next, step."""
    out = []
    for snap in graph.get_state_history(cfg):
        values = dict(snap.values)
        msgs = view(values.pop("messages", []))
        out.append((msgs, values, snap.next, snap.metadata.get("step"), snap.metadata.get("source")))
    return out


# ---------------------------------------------------------------------- the server and the keys


def test_the_server_speaks_openai_to_the_real_client(server: OpenAIServer) -> None:
    """Streamed and non-streamed replies parse the same through `ChatOpenAI`: text, tool calls
    (split across deltas), usage (a final usage chunk when asked for); both routes; counts."""
    tools = Shop().tools()
    plain = _chat(server, "big").bind_tools(tools)
    ask = [HumanMessage("Check my order, ann@example.com")]
    reply = plain.invoke(ask)
    assert reply.additional_kwargs == {"refusal": None}  # as OpenAI sends it
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("find_customer", {"email": "ann@example.com"})
    ]
    streamed = _chat(server, "big", stream_usage=True).bind_tools(tools)
    chunks = list(streamed.stream(ask))
    assert sum(bool(c.tool_call_chunks) for c in chunks) >= 3  # name, then argument fragments
    whole = chunks[0]
    for c in chunks[1:]:
        whole += c
    assert (
        whole.tool_calls[0]["name"] == "find_customer"
        and whole.tool_calls[0]["args"] == reply.tool_calls[0]["args"]
    )
    assert whole.usage_metadata == reply.usage_metadata
    no_v1 = ChatOpenAI(
        model="small", base_url=server.base_url.removesuffix("/v1"), api_key="t", max_retries=0
    )
    assert no_v1.invoke([SystemMessage(CLASSIFY), HumanMessage("capital of Chile?")]).content == "geography"
    assert server.counts() == {"big": 2, "small": 1} and server.streamed("big") == 1


def test_guesses_match_real_replies_streamed_or_not(server: OpenAIServer) -> None:
    """Item 2: the guess `model_call_speculator` builds matches `ChatOpenAI`'s real reply, non-streamed
    (`refusal: None`, ids, usage) and streamed (merged deltas); a wrong argument does not."""
    from langgraph_speculative._keys import default_key, default_match

    async def guesses(calls: list[dict[str, Any]]) -> Any:
        return await model_call_speculator(lambda state: calls)({"messages": []})

    ask = [HumanMessage("Check my order, ann@example.com")]
    tools = Shop().tools()
    real = [
        _chat(server, "big").bind_tools(tools).invoke(ask),
        _chat(server, "big", streaming=True, stream_usage=True).bind_tools(tools).invoke(ask),
    ]
    right, wrong = asyncio.run(
        guesses(
            [
                {"name": "find_customer", "args": {"email": "ann@example.com"}},
                {"name": "find_customer", "args": {"email": "x@y"}},
            ]
        )
    )
    for reply in real:
        assert default_match(right.update, {"messages": [reply]})
        assert default_key({"messages": [*ask, *right.update["messages"]]}) == default_key(
            {"messages": [*ask, reply]}
        )
        assert not default_match(wrong.update, {"messages": [reply]})


# ---------------------------------------------------------------------- a hand-built graph


class QState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]


def _qa_graph(big: Any, asynchronous: bool) -> StateGraph:  # type: ignore[type-arg]
    """classify (the actor model) -> answer (the actor model again, reading the topic)."""

    def classify(state: QState) -> dict[str, Any]:
        return {"messages": [big.invoke([SystemMessage(CLASSIFY), *state["messages"]])]}

    def answer(state: QState) -> dict[str, Any]:
        return {"messages": [big.invoke([SystemMessage(ANSWER), *state["messages"]])]}

    async def aclassify(state: QState) -> dict[str, Any]:
        return {"messages": [await big.ainvoke([SystemMessage(CLASSIFY), *state["messages"]])]}

    async def aanswer(state: QState) -> dict[str, Any]:
        return {"messages": [await big.ainvoke([SystemMessage(ANSWER), *state["messages"]])]}

    builder = StateGraph(QState)
    builder.add_node("classify", aclassify if asynchronous else classify)
    builder.add_node("answer", aanswer if asynchronous else answer)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "answer")
    builder.add_edge("answer", END)
    return builder


def _classify_speculator(small: Any, asynchronous: bool) -> Any:
    """The speculator: the small model asked the actor's question."""

    def guess(state: QState) -> list[dict[str, Any]]:
        return [{"messages": [small.invoke([SystemMessage(CLASSIFY), *state["messages"]])]}]

    async def aguess(state: QState) -> list[dict[str, Any]]:
        return [{"messages": [await small.ainvoke([SystemMessage(CLASSIFY), *state["messages"]])]}]

    return aguess if asynchronous else guess


QUESTIONS = ["What is the capital of Japan?", "Is 97 a prime number?", "What is the capital of Peru?"]


def _run_graph(graph: Any, question: str, cfg: dict[str, Any], loop: Any, stream: bool) -> Any:
    """One run: sync when `loop` is None, else async on `loop` (the app's one event loop)."""
    inputs = {"messages": [HumanMessage(question)]}
    if stream:
        if loop is not None:

            async def consume() -> list[Any]:
                return [c async for c in graph.astream(inputs, cfg, stream_mode=["messages", "values"])]

            chunks = loop.run_until_complete(consume())
        else:
            chunks = list(graph.stream(inputs, cfg, stream_mode=["messages", "values"]))
        return [c for mode, c in chunks if mode == "values"][-1], [
            c for mode, c in chunks if mode == "messages"
        ]
    out = (
        loop.run_until_complete(graph.ainvoke(inputs, cfg)) if loop is not None else graph.invoke(inputs, cfg)
    )
    return out, []


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("spec_async", [False, True], ids=["sync-spec", "async-spec"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
def test_a_hand_built_graph_calling_chat_openai_commits_what_plain_commits(
    server: OpenAIServer,
    app_loop: Any,
    right: bool,
    asynchronous: bool,
    spec_async: bool,
    stream: bool,
    request: Any,
) -> None:
    if stream and (not right or spec_async != asynchronous):
        pytest.skip("streamed replies are about matching: right guesses, one speculator per mode")
    server.script = Script(small_right=right)
    big, small = _chat(server, "big", stream_usage=True), _chat(server, "small")
    plain = _qa_graph(big, asynchronous).compile(checkpointer=InMemorySaver())
    spec = speculate(
        _qa_graph(big, asynchronous),
        {"classify": _classify_speculator(small, spec_async)},
        policy=SpeculationPolicy(k=1),
    ).compile(checkpointer=InMemorySaver())
    runs = 2 if (right and not stream) or (spec_async and not asynchronous) else 1
    for i, question in enumerate(QUESTIONS[:runs]):
        cfg = {"configurable": {"thread_id": f"t{i}"}}
        loop = app_loop if asynchronous else None
        want, want_tokens = _run_graph(plain, question, cfg, loop, stream)
        server.reset()
        got, got_tokens = _run_graph(spec, question, cfg, loop, stream)
        assert view(got["messages"]) == view(want["messages"])
        assert history(spec, cfg) == history(plain, cfg)
        report = spec.last_report
        assert report is not None
        assert server.count("small") == 1  # the speculator asked the small model once
        if right:
            # the guess matched the actor's real reply (streamed or not) and the early
            # `answer` call was adopted: the big model was asked twice, as in the plain run
            assert report.hits == 1 and report.adopted == 1, report.summary()
            assert server.count("big") == 2
        else:
            assert report.misses == 1 and report.adopted == 0, report.summary()
        if stream:
            assert [(m.type, m.content) for m, _ in got_tokens if m.content] == [
                (m.type, m.content) for m, _ in want_tokens if m.content
            ]
            assert all(meta.get("ls_model_name") != "small" for _, meta in got_tokens)


# ---------------------------------------------------------------------- create_agent: middleware


def _ask(n: int = 0, cancel: bool = False) -> dict[str, Any]:
    email = list(CUSTOMERS)[n % len(CUSTOMERS)]
    verb = "Cancel" if cancel else "Check"
    return {"messages": [HumanMessage(f"{verb} my first order please, {email}")]}


def _tool_guesser(small: Any, asynchronous: bool) -> Any:
    """A user's own speculator: the small model (with the agent's tools) asked for the next call."""

    def guess(state: dict[str, Any], request: Any = None) -> list[dict[str, Any]]:
        bound = small.bind_tools(request.tools if request is not None else [])
        reply = bound.invoke([SystemMessage("Predict the next tool call."), *state["messages"]])
        return [{"name": c["name"], "args": c["args"]} for c in reply.tool_calls]

    async def aguess(state: dict[str, Any], request: Any = None) -> list[dict[str, Any]]:
        bound = small.bind_tools(request.tools if request is not None else [])
        reply = await bound.ainvoke([SystemMessage("Predict the next tool call."), *state["messages"]])
        return [{"name": c["name"], "args": c["args"]} for c in reply.tool_calls]

    return aguess if asynchronous else guess


def _invoke(agent: Any, inputs: Any, cfg: Any, loop: Any) -> Any:
    """One run: sync when `loop` is None, else async on `loop` (the app's one event loop)."""
    return (
        loop.run_until_complete(agent.ainvoke(inputs, cfg)) if loop is not None else agent.invoke(inputs, cfg)
    )


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_middleware_with_model_speculator_over_http(
    server: OpenAIServer, app_loop: Any, asynchronous: bool
) -> None:
    """`SpeculativeToolCalls(model_speculator("openai:small", base_url=...))`: the same transcript,
    the read-only calls served from prefetches, the write never early."""
    plain_shop, shop = Shop(), Shop()
    big = _chat(server, "big")
    plain = create_agent(big, plain_shop.tools(), checkpointer=InMemorySaver())
    mw = SpeculativeToolCalls(
        model_speculator("openai:small", k=1, base_url=server.base_url, api_key="test"), read_only=READS
    )
    agent = create_agent(big, shop.tools(), middleware=[mw], checkpointer=InMemorySaver())
    for n in range(2):
        cfg = {"configurable": {"thread_id": f"t{n}"}}
        loop = app_loop if asynchronous else None
        want = _invoke(plain, _ask(n, cancel=n == 0), cfg, loop)
        got = _invoke(agent, _ask(n, cancel=n == 0), cfg, loop)
        assert view(got["messages"]) == view(want["messages"])
        assert view(agent.get_state(cfg).values["messages"]) == view(plain.get_state(cfg).values["messages"])
    assert sorted(shop.log) == sorted(plain_shop.log)  # every read ran once: served, not repeated
    assert shop.writes() == plain_shop.writes()
    report = mw.report
    assert report.hits >= 3 and report.adopted >= 3, report.summary()  # of 4 reads
    assert server.count("small") >= 4


def test_middleware_checkpoints_are_the_plain_agents(server: OpenAIServer) -> None:
    """The promise "as without the middleware", checkpoint by checkpoint."""
    big = _chat(server, "big")
    plain = create_agent(big, Shop().tools(), checkpointer=InMemorySaver())
    mw = SpeculativeToolCalls(
        model_speculator("openai:small", k=1, base_url=server.base_url, api_key="test"), read_only=READS
    )
    agent = create_agent(big, Shop().tools(), middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    plain.invoke(_ask(0), cfg)
    agent.invoke(_ask(0), cfg)
    assert history(agent, cfg) == history(plain, cfg)


def test_middleware_messages_stream_carries_no_speculator_token(server: OpenAIServer) -> None:
    """Item 5: with `stream_mode="messages"`, every token is the agent's model's; none of the
    speculator's (right or wrong guesses)."""
    server.script = Script(small_right=False)  # wrong guesses: a leak would change the stream
    big = _chat(server, "big")
    plain = create_agent(big, Shop().tools())
    mw = SpeculativeToolCalls(
        model_speculator("openai:small", k=1, base_url=server.base_url, api_key="test"), read_only=READS
    )
    agent = create_agent(big, Shop().tools(), middleware=[mw])

    def tokens(graph: Any) -> list[tuple[Any, ...]]:
        out = []
        for chunk, meta in graph.stream(_ask(1), stream_mode="messages"):
            out.append(
                (type(chunk).__name__, chunk.content, meta.get("langgraph_node"), meta.get("ls_model_name"))
            )
        return out

    want = tokens(plain)
    server.reset()
    got = tokens(agent)
    assert server.count("small") >= 1  # the speculator was asked
    assert not [t for t in got if t[3] == "small"]
    assert [t[:3] for t in got if t[1]] == [t[:3] for t in want if t[1]]


# ---------------------------------------------------------------------- create_agent: graph level


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_graph_level_model_speculator_asks_the_small_model_and_hits(
    server: OpenAIServer, stream: bool
) -> None:
    """Items 2 and 3: `model_call_speculator(model_speculator(...))` at graph level gets the
    graph's tools, asks the small model, and its guesses match real replies, streamed or not."""
    plain_shop, shop = Shop(), Shop()
    big = _chat(server, "big")
    plain = create_agent(big, plain_shop.tools(), checkpointer=InMemorySaver())
    agent = speculate(
        create_agent(big, shop.tools(), checkpointer=InMemorySaver()),
        {
            "model": model_call_speculator(
                model_speculator("openai:small", k=1, base_url=server.base_url, api_key="t")
            )
        },
        read_only_tools=READS,
        policy=SpeculationPolicy(k=1),
    )
    cfg = {"configurable": {"thread_id": "t"}}
    if stream:
        want = [
            c for m, c in plain.stream(_ask(0), cfg, stream_mode=["messages", "values"]) if m == "values"
        ][-1]
        server.reset()
        got = [c for m, c in agent.stream(_ask(0), cfg, stream_mode=["messages", "values"]) if m == "values"][
            -1
        ]
        assert server.streamed("big") >= 1
    else:
        want = plain.invoke(_ask(0), cfg)
        server.reset()
        got = agent.invoke(_ask(0), cfg)
    assert view(got["messages"]) == view(want["messages"])
    assert history(agent, cfg) == history(plain, cfg)
    assert sorted(shop.log) == sorted(plain_shop.log)
    report = agent.last_report
    assert server.count("small") >= 2, server.counts()  # item 3: it makes requests
    # item 2: it hits (a second hit races the adopted call: its speculator starts when adopted)
    assert report.hits >= 1 and report.adopted >= 2, report.summary()
    # every model call once, the adopted ones not repeated; at most one more: the main run's last
    # model call may start just before the branch that adopted its tool call launches it too
    # (engine race, reported on issue 25)
    assert server.count("big") in (3, 4), server.counts()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_graph_level_tool_patterns_learn_from_finished_runs(
    server: OpenAIServer, app_loop: Any, asynchronous: bool
) -> None:
    """Item 4: `model_call_speculator(ToolPatternSpeculator())` at graph level sees every
    finished run: after the first conversation it guesses, and its guesses hit."""
    patterns = ToolPatternSpeculator()
    shop, plain_shop = Shop(), Shop()
    big = init_chat_model("openai:big", base_url=server.base_url, api_key="test", max_retries=0)
    plain = create_agent(big, plain_shop.tools())
    agent = speculate(
        create_agent(big, shop.tools()),
        {"model": model_call_speculator(patterns)},
        read_only_tools=READS,
        policy=SpeculationPolicy(k=2),
    )
    hits = []
    for n in range(3):
        want = _invoke(plain, _ask(n), None, app_loop if asynchronous else None)
        got = _invoke(agent, _ask(n), None, app_loop if asynchronous else None)
        assert view(got["messages"]) == view(want["messages"])
        hits.append(agent.last_report.hits)
    assert patterns.runs == 3
    assert hits[0] == 0 and sum(hits[1:]) >= 3, hits  # 2 tool calls each, once it has learned


def test_a_speculator_that_never_guesses_is_reported_once(server: OpenAIServer) -> None:
    """A `model_speculator` with no tools to offer (a graph with no ToolNode) says so, once."""

    def node(state: QState) -> dict[str, Any]:
        return {"messages": [_chat(server, "big").invoke(state["messages"])]}

    builder = StateGraph(QState)
    builder.add_node("model", node)
    builder.add_node("after", lambda s: {})
    builder.add_edge(START, "model")
    builder.add_edge("model", "after")
    builder.add_edge("after", END)
    spec = model_speculator("openai:small", base_url=server.base_url, api_key="t")
    graph = speculate(builder, {"model": model_call_speculator(spec)}).compile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            graph.invoke({"messages": [HumanMessage("hello")]})
    said = [str(w.message) for w in caught if "makes no guess" in str(w.message)]
    assert len(said) == 1 and "'model'" in said[0] and "tool schemas" in said[0], said
    assert server.count("small") == 0


# ---------------------------------------------------------------------- item 1: event loops


def test_sync_runs_then_the_users_own_asyncio_run(server: OpenAIServer) -> None:
    """Item 1: after sync speculative runs with a speculator (sync and async paths) sharing the
    user's client, the user's own `asyncio.run(model.ainvoke(...))` works: sync runs use the sync
    path, so the client's async pool never meets the library's loop."""
    from langchain_core.runnables import RunnableLambda

    big = _chat(server, "big")
    small = init_chat_model("openai:small", base_url=server.base_url, api_key="test", max_retries=0)
    both = RunnableLambda(_classify_speculator(small, False), afunc=_classify_speculator(small, True))
    graph = speculate(_qa_graph(big, False), {"classify": both}, policy=SpeculationPolicy(k=1)).compile()
    plain = _qa_graph(big, False).compile()
    errors = []
    for question in QUESTIONS:
        assert view(graph.invoke({"messages": [HumanMessage(question)]})["messages"]) == view(
            plain.invoke({"messages": [HumanMessage(question)]})["messages"]
        )
        report = graph.last_report
        errors += [e for e in report.events if "error" in e.get("event", "")]
        assert report.adopted == 1, report.summary()
    assert not errors

    async def users_own() -> list[Any]:  # the user's own event loop, on the same clients
        return [
            (await small.ainvoke([SystemMessage(CLASSIFY), HumanMessage("capital?")])).content,
            (await big.ainvoke([SystemMessage(CLASSIFY), HumanMessage("prime?")])).content,
        ]

    assert asyncio.run(users_own()) == ["geography", "math"]


def test_an_async_only_speculator_in_sync_runs_is_named_in_a_warning(server: OpenAIServer) -> None:
    """An async-only speculator in a sync run must run on the library's loop, where a client it
    shares with the user's own loop can break there: said once, with the fix; the runs still
    commit what plain commits."""
    big = _chat(server, "big")
    small = _chat(server, "small")
    graph = speculate(
        _qa_graph(big, False), {"classify": _classify_speculator(small, True)}, policy=SpeculationPolicy(k=1)
    ).compile()
    plain = _qa_graph(big, False).compile()
    with pytest.warns(UserWarning, match=r"speculator of node 'classify' is async only.*RunnableLambda"):
        for question in QUESTIONS[:2]:
            inputs = {"messages": [HumanMessage(question)]}
            assert view(graph.invoke(inputs)["messages"]) == view(plain.invoke(inputs)["messages"])


def test_an_async_speculator_in_a_sync_agent_keeps_working(server: OpenAIServer) -> None:
    """Item 1: the middleware with an async speculator on a sync agent: no 'Event loop is
    closed' on the second run (the shared client's pool outlives private loops)."""
    small = _chat(server, "small")
    big = _chat(server, "big")
    mw = SpeculativeToolCalls(_tool_guesser(small, True), read_only=READS)
    agent = create_agent(big, Shop().tools(), middleware=[mw])
    plain = create_agent(big, Shop().tools())
    for n in range(3):
        assert view(agent.invoke(_ask(n))["messages"]) == view(plain.invoke(_ask(n))["messages"])
    errors = [e for e in mw.report.events if e.get("event") == "speculator_error"]
    assert not errors, errors
    assert mw.report.hits >= 6, mw.report.summary()


def test_an_async_app_that_also_calls_invoke_from_threads(server: OpenAIServer) -> None:
    """Item 1: 20 runs of one speculative agent, half `ainvoke` on the app's loop, half `invoke`
    from worker threads: no run fails ('bound to a different event loop'), all equal plain."""
    big = _chat(server, "big")
    spec = model_speculator("openai:small", k=1, base_url=server.base_url, api_key="t")
    agent = speculate(
        create_agent(big, Shop(latency=0.05).tools()),
        {"model": model_call_speculator(spec)},
        read_only_tools=READS,
        policy=SpeculationPolicy(k=1),
    )
    plain = create_agent(big, Shop(latency=0.05).tools())
    want = {n: view(plain.invoke(_ask(n))["messages"]) for n in range(len(CUSTOMERS))}

    async def app() -> list[Any]:
        jobs = []
        for i in range(20):
            if i % 2:
                jobs.append(asyncio.to_thread(agent.invoke, _ask(i)))
            else:
                jobs.append(agent.ainvoke(_ask(i)))
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(app())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed[:3]
    for i, r in enumerate(results):
        assert view(r["messages"]) == want[i % len(CUSTOMERS)]
    errors = [
        e for e in agent.report.events if "error" in e.get("event", "") or "loop" in str(e.get("error", ""))
    ]
    assert not errors, errors[:3]


# ---------------------------------------------------------------------- item 7: concurrency


def test_ten_concurrent_async_runs_with_sync_tools(server: OpenAIServer, app_loop: Any) -> None:
    """Item 7: 10 concurrent async runs with ordinary sync tools and right guesses: the same
    transcripts, and no tool runs more often than in the plain runs (each prefetch adopted)."""
    plain_shop, shop = Shop(), Shop()
    big = _chat(server, "big")
    plain = create_agent(big, plain_shop.tools())
    mw = SpeculativeToolCalls(
        model_speculator("openai:small", k=1, base_url=server.base_url, api_key="t"), read_only=READS
    )
    agent = create_agent(big, shop.tools(), middleware=[mw])

    async def many(graph: Any) -> list[Any]:
        return await asyncio.gather(*(graph.ainvoke(_ask(i)) for i in range(10)))

    want = app_loop.run_until_complete(many(plain))
    got = app_loop.run_until_complete(many(agent))
    assert [view(r["messages"]) for r in got] == [view(r["messages"]) for r in want]
    assert sorted(shop.log) == sorted(plain_shop.log), (len(shop.log), len(plain_shop.log))
    # how many guesses arrive before their model replies depends on the machine's load; each
    # one that does is adopted, and none makes a tool run twice (above). A model call that
    # starts while the process is busy with the other runs does not speculate at all (shed):
    # then nothing may be adopted, and nothing extra runs.
    stats = mw.report.node("model")
    assert mw.report.adopted >= 1 or stats.shed > 0, mw.report.summary()
