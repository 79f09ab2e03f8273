"""Conformance: each LangGraph feature a real app uses, plain vs speculative.

Every case runs plain and speculative with a right and a wrong speculator, sync and async, on
InMemorySaver and PostgreSQL, and compares returned values, exceptions, stream payloads, the main
thread's full history, side effects and what the run left in the store and cache (see
`tests/conformance.py`). Right guesses must be adopted where the feature lets speculation help.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store, get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.managed import RemainingSteps
from langgraph.store.memory import InMemoryStore
from langgraph.types import CachePolicy, Command, RetryPolicy, Send, interrupt

from .conformance import Case, Probe, Turn, compare, run_async, run_sync, slow, thread_id
from .conftest import PG_URI, _pg_database

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class S(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


class M(TypedDict):
    x: int
    messages: Annotated[list[AnyMessage], add_messages]


class R(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]
    remaining_steps: RemainingSteps


@dataclass
class Ctx:
    n: int


START_STATE = {"x": 1, "log": []}


def _step(tag: str, inc: int = 1) -> Any:
    return lambda s: {"x": s["x"] + inc, "log": [tag]}


def _guess(tag: str, inc: int = 1) -> Any:
    def right(s: Any) -> Any:
        return [{"x": s["x"] + inc, "log": [tag]}]

    def wrong(s: Any) -> Any:
        return [{"x": s["x"] + 40, "log": [tag]}, {"x": -1, "log": ["?"]}]

    return lambda is_right: right if is_right else wrong


def chain(*nodes: tuple[str, Any], schema: Any = S, **kw: Any) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(schema, **kw)
    prev = START
    for name, fn in nodes:
        b.add_node(name, fn)
        b.add_edge(prev, name)
        prev = name
    b.add_edge(prev, END)
    return b


def _a_then(second: Any, *, unsafe_b: bool = False, **kw: Any) -> Any:
    """a (slow, speculated; waits until b has started) -> b."""

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits=None if unsafe_b else "b")),
            ("b", slow(p, "b", second, asynchronous=asy, effect=unsafe_b)),
            **kw,
        )

    return build


# ------------------------------------------------------------------ the cases


def _context_case() -> Case:
    return Case(
        "context",
        _a_then(
            lambda s, runtime: {"x": s["x"] * runtime.context.n, "log": [f"b{runtime.context.n}"]},
            context_schema=Ctx,
        ),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, kwargs={"context": Ctx(60)})],
    )


def _configurable_case() -> Case:
    return Case(
        "configurable",
        _a_then(lambda s, config: {"x": s["x"], "log": [f"user={config['configurable'].get('user')}"]}),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, configurable={"user": "ada"})],
    )


def _thread_case() -> Case:
    def b(s: Any, config: Any, runtime: Any) -> Any:
        info = runtime.execution_info
        return {"x": s["x"], "log": [f"thread={config['configurable'].get('thread_id')}/{info.thread_id}"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            ("b", slow(p, "b", lambda s, config: b(s, config, _runtime()), asynchronous=asy)),
        )

    return Case("thread_id", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE)])


def _runtime() -> Any:
    from langgraph.runtime import get_runtime

    return get_runtime()


def _tags_case() -> Case:
    def b(s: Any, config: Any) -> Any:
        meta = sorted((config.get("metadata") or {}).items())  # every key the node sees
        return {"x": s["x"], "log": [f"tags={sorted(config.get('tags') or [])} meta={meta}"]}

    return Case(
        "tags_metadata",
        _a_then(b),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, config={"tags": ["prod"], "metadata": {"team": "red"}})],
    )


def _remaining_case(limit: int | None = 9) -> Case:
    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            (
                "b",
                slow(
                    p, "b", lambda s: {"x": s["x"], "log": [f"left={s['remaining_steps']}"]}, asynchronous=asy
                ),
            ),
            schema=R,
        )

    return Case(
        "remaining_steps",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, config={"recursion_limit": 9})],
    )


def _store_read_case() -> Case:
    """b reads what the store holds; a is pure: b may be adopted (nothing wrote since it read)."""

    def b(s: Any) -> Any:
        item = get_store().get(("users",), "ada")
        return {"x": s["x"], "log": [f"read={item.value if item else None}"]}

    def c(s: Any) -> Any:
        get_store().put(("users",), "ada", {"x": s["x"]})  # a branch must not write this
        return {"x": s["x"], "log": ["c"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            ("b", slow(p, "b", b, asynchronous=asy)),
            ("c", slow(p, "c", c, asynchronous=asy)),
        )

    return Case(
        "store_read",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn(START_STATE)],
        store=InMemoryStore,
    )


def _store_write_case() -> Case:
    """a writes the store, b reads it: b's early read is stale, so it is never adopted."""

    def a(s: Any) -> Any:
        get_store().put(("users",), "ada", {"x": s["x"]})
        return {"x": s["x"] + 1, "log": ["a"]}

    def b(s: Any) -> Any:
        item = get_store().get(("users",), "ada")
        return {"x": s["x"], "log": [f"read={item.value if item else None}"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", a, asynchronous=asy, waits="b")), ("b", slow(p, "b", b, asynchronous=asy))
        )

    return Case(
        "store_write",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE)],
        adopts=False,
        store=InMemoryStore,
    )


def _store_adopted_write_case() -> Case:
    """b writes the store: launched early, its write waits for the main run to adopt it."""

    def b(s: Any) -> Any:
        store = get_store()
        seen = store.get(("memory",), "last")
        store.put(("memory",), "last", {"x": s["x"]})
        after = store.get(("memory",), "last")
        return {
            "x": s["x"],
            "log": [f"b saw {seen.value if seen else None} then {after.value if after else None}"],
        }

    def c(s: Any) -> Any:
        item = get_store().get(("memory",), "last")
        return {"x": s["x"], "log": [f"c read {item.value if item else None}"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            ("b", slow(p, "b", b, asynchronous=asy)),
            ("c", slow(p, "c", c, asynchronous=asy)),
        )

    return Case(
        "store_adopted_write",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn({"x": 9, "log": []})],
        store=InMemoryStore,
    )


def _cache_case() -> Case:
    def build(p: Probe, asy: bool) -> Any:
        b = StateGraph(S)
        b.add_node("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b"))
        b.add_node(
            "b",
            slow(p, "b", lambda s: {"x": s["x"] * 3, "log": ["b"]}, asynchronous=asy),
            cache_policy=CachePolicy(),
        )
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", END)
        return b

    return Case(
        "cache",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn(START_STATE)],
        cache=InMemoryCache,
    )


def _retry_case() -> Case:
    def build(p: Probe, asy: bool) -> Any:
        b = StateGraph(S)
        b.add_node("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b"), retry_policy=RetryPolicy())
        b.add_node("b", slow(p, "b", _step("b"), asynchronous=asy), retry_policy=RetryPolicy())
        b.add_node(
            "send", slow(p, "send", _step("send"), asynchronous=asy, effect=True), retry_policy=RetryPolicy()
        )
        b.add_edge(START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "send")
        b.add_edge("send", END)
        return b

    return Case("retry", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE)], unsafe=("send",))


def _durability_case(mode: str) -> Case:
    return Case(
        f"durability_{mode}",
        _a_then(_step("b")),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, kwargs={"durability": mode})],
        adopts=mode != "exit",
    )


def _interrupt_before_case(where: str) -> Case:
    kw = {"interrupt_before": ["b"]}
    return Case(
        f"interrupt_before_{where}",
        _a_then(_step("b"), unsafe_b=True),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, kwargs=kw if where == "run" else {}), Turn(None)],
        adopts=False,
        compile_kwargs=kw if where == "compile" else {},
    )


def _interrupt_after_case(where: str) -> Case:
    kw = {"interrupt_after": ["a"]}
    return Case(
        f"interrupt_after_{where}",
        _a_then(_step("b"), unsafe_b=True),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE, kwargs=kw if where == "run" else {}), Turn(None)],
        adopts=False,
        compile_kwargs=kw if where == "compile" else {},
    )


def _approval_in_node_case() -> Case:
    """a does its slow work, then asks a person; send must not run before the answer."""

    def a(s: Any) -> Any:
        answer = interrupt({"approve": s["x"]})
        return {"x": s["x"] + 1, "log": [f"a:{answer}"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", a, asynchronous=asy)),
            ("send", slow(p, "send", _step("send"), asynchronous=asy, effect=True)),
        )

    def guesses(right: bool) -> Any:
        return {"a": lambda s: [{"x": s["x"] + 1, "log": ["a:yes" if right else "a:no"]}]}

    return Case(
        "interrupt_in_speculative_node",
        build,
        guesses,
        [Turn(START_STATE), Turn(Command(resume="yes"))],
        adopts=False,
    )


def _hidden_interrupt_case() -> Case:
    """b asks a person in a way its code does not show: the branch stops at the interrupt."""
    import langgraph.types as lgt

    ask = getattr(lgt, "inter" + "rupt")

    def b(s: Any) -> Any:
        return {"x": s["x"], "log": [f"b:{ask('ok?')}"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy)),
            ("b", slow(p, "b", b, asynchronous=asy)),
            ("send", slow(p, "send", _step("send"), asynchronous=asy, effect=True)),
        )

    return Case(
        "interrupt_hidden_in_plain_node",
        build,
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn(Command(resume="yes"))],
        adopts=False,
    )


def _command_case() -> Case:
    def a(s: Any) -> Any:
        return Command(update={"x": s["x"] + 1, "log": ["a"]}, goto="b")

    def build(p: Probe, asy: bool) -> Any:
        b = StateGraph(S)
        b.add_node("a", slow(p, "a", a, asynchronous=asy, waits="b"), destinations=("b", "c"))
        b.add_node("b", slow(p, "b", _step("b"), asynchronous=asy))
        b.add_node("c", slow(p, "c", _step("c"), asynchronous=asy))
        b.add_edge(START, "a")
        b.add_edge("b", END)
        b.add_edge("c", END)
        return b

    def guesses(right: bool) -> Any:
        goto = "b" if right else "c"
        return {"a": lambda s: [Command(update={"x": s["x"] + 1, "log": ["a"]}, goto=goto)]}

    return Case("command", build, guesses, [Turn(START_STATE)])


def _send_case(speculative_worker: bool) -> Case:
    def route(s: Any) -> Any:
        return [Send("w", {"i": i, "x": s["x"]}) for i in range(3)]

    def build(p: Probe, asy: bool) -> Any:
        b = StateGraph(S)
        b.add_node("a", slow(p, "a", _step("a"), asynchronous=asy, waits="w"))
        b.add_node("w", slow(p, "w", lambda arg: {"log": [f"w{arg['i']}:{arg['x']}"]}, asynchronous=asy))
        b.add_node("join", slow(p, "join", lambda s: {"x": len(s["log"]), "log": ["join"]}, asynchronous=asy))
        b.add_edge(START, "a")
        b.add_conditional_edges("a", route, ["w"])
        b.add_edge("w", "join")
        b.add_edge("join", END)
        return b

    def guesses(right: bool) -> Any:
        out = {"a": _guess("a")(right)}
        if speculative_worker:
            out["w"] = lambda arg: [{"log": [f"w{arg['i']}:{arg['x']}" if right else "w?"]}]
        return out

    return Case(
        "send_speculative_worker" if speculative_worker else "send", build, guesses, [Turn(START_STATE)]
    )


def _parallel_case() -> Case:
    def build(p: Probe, asy: bool) -> Any:
        b = StateGraph(S)
        b.add_node("a", slow(p, "a", _step("a"), asynchronous=asy, waits="c"))
        b.add_node("sib", slow(p, "sib", lambda s: {"log": ["sib"]}, asynchronous=asy))
        b.add_node(
            "c", slow(p, "c", lambda s: {"x": s["x"] * 2, "log": [f"c{len(s['log'])}"]}, asynchronous=asy)
        )
        b.add_edge(START, "a")
        b.add_edge(START, "sib")
        b.add_edge(["a", "sib"], "c")
        b.add_edge("c", END)
        return b

    return Case("parallel_superstep", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE)])


def _subgraph_case() -> Case:
    def build(p: Probe, asy: bool) -> Any:
        inner = chain(
            ("i1", slow(p, "i1", _step("i1"), asynchronous=asy)),
            ("i2", slow(p, "i2", _step("i2"), asynchronous=asy)),
        ).compile()
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="i1")), ("sub", inner), ("z", _step("z"))
        )

    return Case("subgraph", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE)], adopts=False)


def _time_travel_case() -> Case:
    return Case(
        "time_travel",
        _a_then(_step("b")),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn(None, fork=True)],
    )


def _multi_turn_case() -> Case:
    return Case(
        "multi_turn",
        _a_then(_step("b")),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE), Turn({"x": 5, "log": ["again"]}), Turn({"x": 7, "log": []})],
    )


def _raising_case(where: str) -> Case:
    def boom(s: Any) -> Any:
        raise ValueError(f"{where} failed at {s['x']}")

    def build(p: Probe, asy: bool) -> Any:
        if where == "a":
            return chain(
                ("a", slow(p, "a", boom, asynchronous=asy)), ("b", slow(p, "b", _step("b"), asynchronous=asy))
            )
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            ("b", slow(p, "b", boom, asynchronous=asy)),
        )

    return Case(f"raising_{where}", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE)], adopts=False)


def _streams_case() -> Case:
    def b(s: Any) -> Any:
        get_stream_writer()({"progress": s["x"]})
        return {"x": s["x"] * 2, "log": ["b"]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", _step("a"), asynchronous=asy, waits="b")),
            ("b", slow(p, "b", b, asynchronous=asy)),
            ("c", slow(p, "c", _step("c"), asynchronous=asy)),
        )

    return Case("stream_modes", build, lambda r: {"a": _guess("a")(r)}, [Turn(START_STATE, stream=True)])


def _messages_case() -> Case:
    def a(s: Any) -> Any:
        return {"x": s["x"] + 1, "messages": [AIMessage(content=f"a{s['x']}")]}

    def b(s: Any) -> Any:
        return {"x": s["x"], "messages": [AIMessage(content=f"b saw {len(s['messages'])}")]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", a, asynchronous=asy, waits="b")),
            ("b", slow(p, "b", b, asynchronous=asy)),
            schema=M,
        )

    def guesses(right: bool) -> Any:
        return {
            "a": lambda s: [
                {"x": s["x"] + 1, "messages": [AIMessage(content=f"a{s['x']}" if right else "?")]}
            ]
        }

    return Case(
        "messages", build, guesses, [Turn({"x": 1, "messages": [HumanMessage(content="hi")]}, stream=True)]
    )


def _chat_model_case() -> Case:
    """b calls a chat model: on a streaming run its tokens reach the `messages` stream either way."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    def b(s: Any) -> Any:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=f"the answer is {s['x']}")]))
        return {"x": s["x"], "messages": [model.invoke(s["messages"])]}

    def build(p: Probe, asy: bool) -> Any:
        return chain(
            ("a", slow(p, "a", lambda s: {"x": s["x"] + 1}, asynchronous=asy, waits="b")),
            ("b", slow(p, "b", b, asynchronous=asy)),
            schema=M,
        )

    def guesses(right: bool) -> Any:
        return {"a": lambda s: [{"x": s["x"] + 1 if right else -3}]}

    return Case(
        "chat_model_tokens",
        build,
        guesses,
        [Turn({"x": 1, "messages": [HumanMessage(content="q")]}, stream=True)],
    )


def _no_checkpointer_case() -> Case:
    return Case(
        "no_checkpointer",
        _a_then(
            lambda s, config: {"x": s["x"], "log": [f"thread={config['configurable'].get('thread_id')}"]}
        ),
        lambda r: {"a": _guess("a")(r)},
        [Turn(START_STATE)],
        no_checkpointer=True,
    )


CASES = [
    _context_case(),
    _configurable_case(),
    _thread_case(),
    _tags_case(),
    _remaining_case(),
    _remaining_case(None),
    _store_read_case(),
    _store_write_case(),
    _store_adopted_write_case(),
    _cache_case(),
    _retry_case(),
    _durability_case("sync"),
    _durability_case("async"),
    _durability_case("exit"),
    _interrupt_before_case("run"),
    _interrupt_before_case("compile"),
    _interrupt_after_case("run"),
    _interrupt_after_case("compile"),
    _approval_in_node_case(),
    _hidden_interrupt_case(),
    _command_case(),
    _send_case(False),
    _send_case(True),
    _parallel_case(),
    _subgraph_case(),
    _time_travel_case(),
    _multi_turn_case(),
    _raising_case("a"),
    _raising_case("b"),
    _streams_case(),
    _messages_case(),
    _chat_model_case(),
    _no_checkpointer_case(),
]


# ------------------------------------------------------------------ running them


@pytest.fixture(scope="module")
def pg_uris() -> Iterator[tuple[str, str]]:
    """Two databases for the module: the plain runs' and the speculative runs'."""
    with _pg_database() as plain, _pg_database() as spec:
        yield plain, spec


@contextmanager
def _sync_saver(kind: str, uri: str | None) -> Iterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg_pool import ConnectionPool

    assert uri is not None
    with ConnectionPool(uri, max_size=8, kwargs={"autocommit": True, "prepare_threshold": 0}) as pool:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        saver.setup()
        yield saver


async def _async_run(case: Case, kind: str, uris: tuple[str, str] | None, right: bool) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    thread = thread_id()
    outs = []
    for i, speculative in enumerate((False, True)):
        if kind == "memory":
            outs.append(await run_async(case, InMemorySaver(), thread, speculative, right))
            continue
        assert uris is not None
        async with AsyncConnectionPool(
            uris[i], max_size=8, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
        ) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            outs.append(await run_async(case, saver, thread, speculative, right))
    compare(case, outs[0], outs[1], right)


@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["memory", "postgres"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance(case: Case, kind: str, mode: str, right: bool, request: pytest.FixtureRequest) -> None:
    uris = request.getfixturevalue("pg_uris") if kind == "postgres" else None
    if mode == "async":
        asyncio.run(_async_run(case, kind, uris, right))
        return
    thread = thread_id()
    outs = []
    for i, speculative in enumerate((False, True)):
        with _sync_saver(kind, uris[i] if uris else None) as saver:
            outs.append(run_sync(case, saver, thread, speculative, right))
    compare(case, outs[0], outs[1], right)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_concurrent_runs_on_one_compiled_graph(asynchronous: bool) -> None:
    """Many runs of one speculative graph at once, each on its thread: each commits what plain does."""
    probe = Probe(latch=False)
    case = _context_case()
    plain = case.build(probe, asynchronous).compile(checkpointer=InMemorySaver())
    spec_builder = case.build(probe, asynchronous)
    from langgraph_speculative import speculate

    graph = speculate(spec_builder, case.speculators(True)).compile(checkpointer=InMemorySaver())
    inputs = [({"x": i, "log": []}, Ctx(i + 2)) for i in range(12)]

    async def many(g: Any) -> list[Any]:
        return await asyncio.gather(
            *(
                g.ainvoke(inp, {"configurable": {"thread_id": f"t{i}"}}, context=c)
                for i, (inp, c) in enumerate(inputs)
            )
        )

    if asynchronous:
        assert asyncio.run(many(graph)) == asyncio.run(many(plain))
    else:
        from concurrent.futures import ThreadPoolExecutor

        def one(g: Any, i: int) -> Any:
            inp, c = inputs[i]
            return g.invoke(inp, {"configurable": {"thread_id": f"s{i}"}}, context=c)

        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: one(graph, i), range(len(inputs))))
            want = list(pool.map(lambda i: one(plain, i), range(len(inputs))))
        assert got == want
    for i in range(len(inputs)):
        t = f"t{i}" if asynchronous else f"s{i}"
        cfg = {"configurable": {"thread_id": t}}
        assert [s.values for s in graph.get_state_history(cfg)] == [
            s.values for s in plain.get_state_history(cfg)
        ]


_ = (uuid, PG_URI)
