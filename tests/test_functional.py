"""`speculate_tasks`: the functional API (`@entrypoint` / `@task`) speculated, lossless.

Every test runs the plain entrypoint and the speculative one on their own threads of one kind of
checkpointer and compares what the thread holds: the return value, the history (values, metadata,
config chain; ids alpha-renamed), every saved task write, and the calls of every unsafe task.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store, get_stream_writer
from langgraph.func import entrypoint, task
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from langgraph_speculative import Guess, SpeculationPolicy, speculate_tasks

from . import oracle
from .conftest import amake_saver, examples, make_saver

LATENCY = 0.05


class Log:
    """Task calls, thread-safe: (task, args) in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))

    def of(self, name: str) -> list[Any]:
        return [a for n, a in self.calls if n == name]


def chain_workflow(
    saver: Any, log: Log, *, latency: float = LATENCY, tool_latency: float | None = None, store: Any = None
) -> Any:
    """model -> tool -> notify (unsafe) -> model -> tool, each a task; returns a summary."""

    @task
    def model(text: str, turn: int) -> dict[str, Any]:
        log.add("model", text, turn)
        time.sleep(latency)
        return {"query": f"{text}:{turn}", "n": len(text) + turn}

    @task
    def tool(call: dict[str, Any]) -> str:
        log.add("tool", call)
        time.sleep(latency if tool_latency is None else tool_latency)
        return f"result({call['query']})"

    @task
    def notify(message: str) -> bool:
        log.add("notify", message)
        return True

    @entrypoint(checkpointer=saver, store=store)
    def agent(topic: str) -> list[Any]:
        first = model(topic, 1).result()
        found = tool(first).result()
        notify(found).result()
        second = model(found, 2).result()
        return [first, found, second, tool(second).result()]

    return agent


def right_model(inp: dict[str, Any]) -> list[Any]:
    text, turn = inp["args"]
    return [Guess({"query": f"{text}:{turn}", "n": len(text) + turn}, confidence=0.9)]


def wrong_model(inp: dict[str, Any]) -> list[Any]:
    text, turn = inp["args"]
    return [{"query": "nope", "n": -1}, {"query": f"{text}?", "n": 0}]


def no_guess(inp: dict[str, Any]) -> list[Any]:
    return []


SPECULATORS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "right": right_model,
    "wrong": wrong_model,
    "none": no_guess,
}


def thread_record(saver: Any, config: dict[str, Any]) -> dict[str, Any]:
    """What the checkpointer holds for the thread: the history and every saved write."""
    if saver is None:
        return {}
    tuples = list(saver.list(config))
    rn = oracle.Renamer(blind=True)
    writes = sorted(
        oracle._json(oracle.canon([channel, value], rn))
        for t in tuples
        for (_task, channel, value) in (t.pending_writes or [])
    )
    return {"checkpoints": len(tuples), "writes": writes}


async def athread_record(saver: Any, config: dict[str, Any]) -> dict[str, Any]:
    if saver is None:
        return {}
    tuples = [t async for t in saver.alist(config)]
    rn = oracle.Renamer(blind=True)
    writes = sorted(
        oracle._json(oracle.canon([channel, value], rn))
        for t in tuples
        for (_task, channel, value) in (t.pending_writes or [])
    )
    return {"checkpoints": len(tuples), "writes": writes}


def fresh() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


# -- sync --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("guess", ["right", "wrong", "none"])
def test_same_as_plain_sync(kind: str, guess: str, tmp_path: Any) -> None:
    with make_saver(kind, tmp_path) as saver:
        plain_log, spec_log = Log(), Log()
        plain = chain_workflow(saver, plain_log)
        spec = speculate_tasks(
            chain_workflow(saver, spec_log), {"model": SPECULATORS[guess]}, unsafe=["notify"]
        )
        c1, c2 = fresh(), fresh()
        want = plain.invoke("cats", c1)
        got = spec.invoke("cats", c2)
        assert got == want
        assert oracle.history(spec.get_state_history(c2)) == oracle.history(plain.get_state_history(c1))
        assert thread_record(saver, c2) == thread_record(saver, c1)
        assert oracle.canon(spec.get_state(c2)) == oracle.canon(plain.get_state(c1))
        assert spec_log.of("notify") == plain_log.of("notify")  # unsafe: exactly the plain calls
        report = spec.last_report
        assert report is not None
        if guess == "right":
            # the second model call is guessed, or (a branch ran ahead) adopted from the branch
            assert report.hits >= 1 and report.misses == 0
            assert report.adopted >= 2, report.events  # tool, then the second model call's tool
            assert report.nodes["tool"].adopted >= 1
        elif guess == "wrong":
            assert report.hits == 0 and report.misses == 2 and report.adopted == 0
            assert report.cancelled >= 2
        else:
            assert report.launched == 0 and report.adopted == 0
        # a real model call never ran twice on the main run: adopted calls are not re-made
        assert len([c for c in spec_log.of("model")]) >= len(plain_log.of("model"))


def test_unsafe_task_never_runs_on_a_branch() -> None:
    log = Log()
    # a model of 0.3 s, a tool of 0.02 s: the branch's early tool call returns, and the branch reaches
    # `notify`, long before the model answers, even under load
    workflow = chain_workflow(InMemorySaver(), log, latency=0.3, tool_latency=0.02)
    spec = speculate_tasks(workflow, {"model": right_model}, unsafe=["notify"])
    spec.invoke("dogs", fresh())
    report = spec.last_report
    assert report is not None
    stops = [e for e in report.events if e["event"] == "branch_end" and e.get("reason") == "unsafe"]
    assert stops and all(e["node"] == "notify" for e in stops)
    assert [e for e in report.events if e["event"] == "launch" and e["node"] == "notify"] == []
    assert log.of("notify") == [("result(dogs:1)",)]


def test_stream_and_custom_chunks_as_plain() -> None:
    def build(saver: Any) -> Any:
        @task
        def fetch(x: int) -> int:
            get_stream_writer()({"fetch": x})
            time.sleep(LATENCY)
            return x * 2

        @entrypoint(checkpointer=saver)
        def wf(x: int) -> int:
            a = fetch(x).result()
            b = fetch(a).result()
            return fetch(b).result()

        return wf

    saver = InMemorySaver()
    plain = build(saver)
    spec = speculate_tasks(build(saver), {"fetch": lambda inp: [inp["args"][0] * 2]})
    modes = ["updates", "custom", "values"]
    want = list(plain.stream(3, fresh(), stream_mode=modes))
    got = list(spec.stream(3, fresh(), stream_mode=modes))
    assert sorted(map(repr, got)) == sorted(map(repr, want))
    assert spec.last_report is not None and spec.last_report.adopted >= 1


def test_store_writes_never_made_by_a_branch() -> None:
    puts: list[Any] = []

    class CountingStore(InMemoryStore):
        def batch(self, ops: Any) -> Any:
            ops = list(ops)
            puts.extend(op for op in ops if type(op).__name__ == "PutOp")
            return super().batch(ops)

    def build(saver: Any, store: Any) -> Any:
        @task
        def think(x: int) -> int:
            time.sleep(LATENCY)
            return x + 1

        @task
        def remember(x: int) -> int:
            get_store().put(("mem",), str(x), {"x": x})
            return x

        @entrypoint(checkpointer=saver, store=store)
        def wf(x: int) -> int:
            a = think(x).result()
            b = remember(a).result()
            return think(b).result()

        return wf

    plain_store, spec_store = CountingStore(), CountingStore()
    want = build(InMemorySaver(), plain_store).invoke(1, fresh())
    plain_puts = list(puts)
    puts.clear()
    spec = speculate_tasks(build(InMemorySaver(), spec_store), {"think": lambda inp: [inp["args"][0] + 1]})
    assert spec.invoke(1, fresh()) == want
    assert len(puts) == len(plain_puts) == 1
    assert spec_store.search(("mem",)) == plain_store.search(("mem",)) or [
        i.value for i in spec_store.search(("mem",))
    ] == [i.value for i in plain_store.search(("mem",))]


def test_interrupt_and_resume_as_plain() -> None:
    def build(saver: Any, log: Log) -> Any:
        @task
        def draft(topic: str) -> str:
            log.add("draft", topic)
            time.sleep(LATENCY)
            return f"essay on {topic}"

        @task
        def polish(text: str) -> str:
            log.add("polish", text)
            time.sleep(LATENCY)
            return text.upper()

        @entrypoint(checkpointer=saver)
        def wf(topic: str) -> dict[str, Any]:
            essay = draft(topic).result()
            review = interrupt({"essay": essay})
            better = draft(f"{essay} / {review}").result()
            return {"essay": polish(better).result(), "review": review}

        return wf

    def guess(inp: dict[str, Any]) -> list[str]:
        return [f"essay on {inp['args'][0]}"]

    saver = InMemorySaver()
    plain_log, spec_log = Log(), Log()
    plain = build(saver, plain_log)
    spec = speculate_tasks(build(saver, spec_log), {"draft": guess})
    c1, c2 = fresh(), fresh()
    first_plain, first_spec = plain.invoke("owls", c1), spec.invoke("owls", c2)
    assert oracle.canon(first_spec) == oracle.canon(first_plain)
    assert "__interrupt__" in first_spec
    done_plain = plain.invoke(Command(resume="fine"), c1)
    done_spec = spec.invoke(Command(resume="fine"), c2)
    assert done_spec == done_plain
    assert oracle.history(spec.get_state_history(c2)) == oracle.history(plain.get_state_history(c1))
    assert thread_record(saver, c2) == thread_record(saver, c1)
    # after the resume, a branch replays the answered interrupt and launches `polish` early
    report = spec.last_report
    assert report is not None and report.nodes["polish"].adopted == 1, report.events
    # the first draft ran once per invocation in both (replayed from its write on resume)
    assert spec_log.of("draft")[:1] == plain_log.of("draft")[:1]


# -- async -------------------------------------------------------------------------------------


def async_workflow(saver: Any, log: Log) -> Any:
    @task
    async def model(text: str, turn: int) -> dict[str, Any]:
        log.add("model", text, turn)
        await asyncio.sleep(LATENCY)
        return {"query": f"{text}:{turn}", "n": len(text) + turn}

    @task(name="search")
    async def run_search(call: dict[str, Any]) -> str:
        log.add("search", call)
        await asyncio.sleep(LATENCY)
        return f"result({call['query']})"

    @task
    def notify(message: str) -> bool:  # a sync task in an async workflow
        log.add("notify", message)
        return True

    @entrypoint(checkpointer=saver)
    async def agent(topic: str) -> list[Any]:
        first = await model(topic, 1)
        found = await run_search(first)
        await notify(found)
        second, again = await asyncio.gather(model(found, 2), run_search(first))
        return [first, found, second, again, await run_search(second)]

    return agent


async def aright_model(inp: dict[str, Any]) -> list[Any]:
    await asyncio.sleep(0.001)
    return right_model(inp)


@pytest.mark.parametrize("kind", ["memory", "sqlite_aio"])
@pytest.mark.parametrize("guess", ["right", "wrong", "none"])
async def test_same_as_plain_async(kind: str, guess: str, tmp_path: Any) -> None:
    speculator = {"right": aright_model, "wrong": wrong_model, "none": no_guess}[guess]
    async with amake_saver(kind, tmp_path) as saver:
        plain_log, spec_log = Log(), Log()
        plain = async_workflow(saver, plain_log)
        spec = speculate_tasks(async_workflow(saver, spec_log), {"model": speculator}, unsafe=["notify"])
        c1, c2 = fresh(), fresh()
        want = await plain.ainvoke("cats", c1)
        got = [chunk async for chunk in spec.astream("cats", c2)][-1]["agent"]
        assert got == want
        h1 = [s async for s in plain.aget_state_history(c1)]
        h2 = [s async for s in spec.aget_state_history(c2)]
        assert oracle.history(h2) == oracle.history(h1)
        assert await athread_record(saver, c2) == await athread_record(saver, c1)
        assert spec_log.of("notify") == plain_log.of("notify")
        report = spec.last_report
        assert report is not None
        if guess == "right":
            # each model call guessed, or (a branch ran ahead) the second adopted from a branch
            assert report.hits >= 1 and report.misses == 0, report.events
            assert report.nodes["search"].adopted >= 1, report.events
        elif guess == "wrong":
            assert report.adopted == 0 and report.misses == 2
        else:
            assert report.launched == 0


# -- speculators that fail ---------------------------------------------------------------------


def test_failing_slow_and_junk_speculators_cost_nothing_but_events() -> None:
    def boom(inp: dict[str, Any]) -> list[Any]:
        raise RuntimeError("speculator down")

    def slow(inp: dict[str, Any]) -> list[Any]:
        time.sleep(0.5)
        return right_model(inp)

    def junk(inp: dict[str, Any]) -> Any:
        return 42

    want = chain_workflow(InMemorySaver(), Log()).invoke("x", fresh())
    for speculator, event in (
        (boom, "speculator_error"),
        (slow, "speculator_timeout"),
        (junk, "invalid_guess"),
    ):
        spec = speculate_tasks(
            chain_workflow(InMemorySaver(), Log()),
            {"model": speculator},
            unsafe=["notify"],
            policy=SpeculationPolicy(speculator_timeout=0.02),
        )
        assert spec.invoke("x", fresh()) == want
        report = spec.last_report
        assert report is not None and report.launched == 0
        assert event in [e["event"] for e in report.events]


def test_policy_k_and_disabled() -> None:
    many = lambda inp: [{"query": str(i), "n": i} for i in range(5)]  # noqa: E731
    spec = speculate_tasks(
        chain_workflow(InMemorySaver(), Log()),
        {"model": many},
        unsafe=["notify"],
        policy=SpeculationPolicy(k=2),
    )
    spec.invoke("x", fresh())
    assert spec.last_report is not None and spec.last_report.nodes["model"].guesses == 4  # 2 calls x k=2
    off = speculate_tasks(
        chain_workflow(InMemorySaver(), Log()),
        {"model": right_model},
        policy=SpeculationPolicy(enabled=False),
    )
    assert off.invoke("x", fresh()) == chain_workflow(InMemorySaver(), Log()).invoke("x", fresh())


# -- bad input ---------------------------------------------------------------------------------


def test_clear_errors() -> None:
    wf = chain_workflow(InMemorySaver(), Log())

    class S(TypedDict):
        x: int

    graph = StateGraph(S).add_node("n", lambda s: s).add_edge(START, "n").compile()
    with pytest.raises(TypeError, match="@entrypoint"):
        speculate_tasks(graph, {})
    with pytest.raises(ValueError, match="'modle' is not a task.*\\['model', 'notify', 'tool'\\]"):
        speculate_tasks(wf, {"modle": right_model})
    with pytest.raises(ValueError, match="'email' is not a task"):
        speculate_tasks(wf, {}, unsafe=["email"])
    with pytest.raises(TypeError, match="must be a function"):
        speculate_tasks(wf, {"model": "gpt-5"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="SpeculationPolicy"):
        speculate_tasks(wf, {}, policy={"k": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of task names"):
        speculate_tasks(wf, {}, unsafe="notify")
    with pytest.raises(TypeError, match="already speculative"):
        speculate_tasks(speculate_tasks(wf, {}), {})


# -- property ----------------------------------------------------------------------------------

STEPS = st.lists(
    st.tuples(st.sampled_from(["inc", "dbl", "log"]), st.sampled_from(["right", "wrong", "none"])),
    min_size=1,
    max_size=5,
)


def random_workflow(saver: Any, steps: list[tuple[str, str]], log: Log) -> Any:
    @task
    def inc(x: int) -> int:
        log.add("inc", x)
        time.sleep(0.005)
        return x + 1

    @task
    def dbl(x: int) -> int:
        log.add("dbl", x)
        time.sleep(0.005)
        return x * 2

    @task
    def log_it(x: int) -> int:  # unsafe
        log.add("log_it", x)
        return x

    tasks = {"inc": inc, "dbl": dbl, "log": log_it}

    @entrypoint(checkpointer=saver)
    def wf(x: int) -> int:
        for name, _ in steps:
            x = tasks[name](x).result()
        return x

    return wf


@settings(max_examples=examples(12), deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=STEPS, start=st.integers(-3, 3))
def test_property_random_task_chains(steps: list[tuple[str, str]], start: int) -> None:
    truth = {"inc": lambda x: x + 1, "dbl": lambda x: x * 2}

    def speculator(name: str) -> Callable[[dict[str, Any]], Any]:
        def guess(inp: dict[str, Any]) -> list[int]:
            (x,) = inp["args"]
            quality = next((q for n, q in steps if n == name), "none")
            return {"right": [truth[name](x)], "wrong": [x - 100], "none": []}[quality]

        return guess

    saver = InMemorySaver()
    plain_log, spec_log = Log(), Log()
    plain = random_workflow(saver, steps, plain_log)
    spec = speculate_tasks(
        random_workflow(saver, steps, spec_log),
        {"inc": speculator("inc"), "dbl": speculator("dbl")},
        unsafe=["log_it"],
    )
    c1, c2 = fresh(), fresh()
    assert spec.invoke(start, c2) == plain.invoke(start, c1)
    assert oracle.history(spec.get_state_history(c2)) == oracle.history(plain.get_state_history(c1))
    assert thread_record(saver, c2) == thread_record(saver, c1)
    assert spec_log.of("log_it") == plain_log.of("log_it")
    # every call the plain run made, the speculative run made (on the main run or early)
    for call in plain_log.calls:
        assert call in spec_log.calls


async def test_sync_entrypoint_through_ainvoke_and_with_config() -> None:
    want = chain_workflow(InMemorySaver(), Log()).invoke("a", fresh())
    spec = speculate_tasks(chain_workflow(InMemorySaver(), Log()), {"model": right_model}, unsafe=["notify"])
    assert await spec.ainvoke("a", fresh()) == want
    # the second model call is guessed, or adopted from a branch that ran ahead
    assert spec.last_report is not None and spec.last_report.hits >= 1 and spec.last_report.adopted >= 1
    configured = spec.with_config(recursion_limit=50)
    assert type(configured).__name__ == "SpeculativeWorkflow"
    assert await configured.ainvoke("a", fresh()) == want
    assert configured.last_report is not None and configured.last_report.hits >= 1
