"""SpeculativeToolCalls on real `create_agent` agents: same transcript, reads early, writes never."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from langchain.agents import AgentState, create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, ToolException, tool
from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime
from langgraph.store.memory import InMemoryStore

from langgraph_speculative import Guess, SpeculationPolicy
from langgraph_speculative.agents import SpeculativeToolCalls

from .agents_fakes import READS, Latch, Shop, ask, scripted, shop_script, transcript
from .leftovers import leftover_work
from .oracle import agent_report_problems

MODES = ["invoke", "ainvoke", "stream", "astream"]


def oracle(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Knows the shop script: right guesses (plus a wrong one and a write) at every turn."""
    last = state["messages"][-1]
    if isinstance(last, HumanMessage):
        return [{"name": "find_user", "args": {"email": "ann@example.com"}}]
    if isinstance(last, ToolMessage) and last.name == "find_user":
        return [
            {"name": "get_user", "args": {"user_id": last.content}},
            {"name": "get_order", "args": {"order_id": "ZZ"}},
        ]
    if isinstance(last, ToolMessage) and last.name == "get_user":
        return [
            {"name": "get_order", "args": {"order_id": "A1"}},
            {"name": "cancel_order", "args": {"order_id": "A1"}},
        ]
    if isinstance(last, ToolMessage) and last.name == "get_order" and "A1" in str(last.content):
        return [{"name": "get_order", "args": {"order_id": "B2"}}]
    return []


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal transcripts, tool-call ids compared by the call they name."""
    return transcript(a["messages"], canonical_ids=True) == transcript(b["messages"], canonical_ids=True)


def run_agent(mode: str, agent: Any, inputs: Any = None, config: Any = None) -> dict[str, Any]:
    inputs = ask() if inputs is None else inputs
    if mode == "invoke":
        return agent.invoke(inputs, config)  # type: ignore[no-any-return]
    if mode == "ainvoke":
        return asyncio.run(agent.ainvoke(inputs, config))  # type: ignore[no-any-return]
    if mode == "stream":
        chunks = list(agent.stream(inputs, config, stream_mode="values"))
        return chunks[-1]  # type: ignore[no-any-return]

    async def collect() -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for chunk in agent.astream(inputs, config, stream_mode="values"):
            last = chunk
        return last

    return asyncio.run(collect())


def sequential(mode: str, script: list[Any] | None = None, **model_kw: Any) -> tuple[dict[str, Any], Shop]:
    shop = Shop(latency=0.02)
    model = scripted(script or shop_script(), delay=0.02, **model_kw)
    shop.model = model
    return run_agent(mode, create_agent(model, shop.tools())), shop


def speculative(
    mode: str,
    speculator: Any = oracle,
    *,
    latch: bool = True,
    script: list[Any] | None = None,
    policy: SpeculationPolicy | None = None,
    read_only: set[str] | None = None,
    latency: float = 0.02,
    **model_kw: Any,
) -> tuple[dict[str, Any], Shop, SpeculativeToolCalls]:
    shop = Shop(latency=latency)
    gate = Latch(shop, k=(policy or SpeculationPolicy()).k) if latch else None
    model = scripted(script or shop_script(), delay=0.02, wait_for=gate.ready if gate else None, **model_kw)
    shop.model = model
    mw = SpeculativeToolCalls(
        gate.wrap(speculator) if gate else speculator, read_only=read_only or READS, policy=policy
    )
    agent = create_agent(model, shop.tools(), middleware=[mw])
    out = run_agent(mode, agent)
    assert agent_report_problems(mw.report) == []
    return out, shop, mw


@pytest.mark.parametrize("mode", MODES)
def test_right_guesses_are_adopted_and_the_transcript_is_unchanged(mode: str) -> None:
    plain, plain_shop = sequential(mode)
    out, shop, mw = speculative(mode)
    assert same(out, plain)
    stats = mw.report.node("model")
    assert stats.adopted == 4  # find_user, get_user, get_order A1, get_order B2
    assert stats.hits == 4 and stats.misses == 0
    assert stats.speculator_errors == 0
    # every read the transcript shows ran once: adopted ones early, none twice
    served = [m for m in out["messages"] if isinstance(m, ToolMessage) and m.name in READS]
    early_right = [e for e in shop.reads() if e["early"] and e["args"].get("order_id") != "ZZ"]
    assert len(early_right) == len(served) == 4
    assert [e for e in shop.reads() if not e["early"]] == []
    assert shop.writes() == plain_shop.writes() and not any(w["early"] for w in shop.writes())
    assert mw.last_report is not None and mw.last_report.node("model").adopted == 4


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_seeded_provider_ids_give_identical_transcripts(mode: str) -> None:
    plain, _ = sequential(mode, ids="seeded", seed=7)
    out, _, mw = speculative(mode, ids="seeded", seed=7)
    assert transcript(out["messages"]) == transcript(plain["messages"])  # ids included
    assert mw.report.adopted == 4


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_wrong_guesses_change_nothing(mode: str) -> None:
    def wrong(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"name": "get_order", "args": {"order_id": "B2"}},
            {"name": "get_user", "args": {"user_id": "x"}},
        ]

    plain, _ = sequential(mode)
    out, shop, mw = speculative(mode, wrong)
    assert same(out, plain)
    stats = mw.report.node("model")
    assert stats.launched > 0 and stats.wasted >= stats.launched - stats.adopted
    assert [e["event"] for e in mw.report.events].count("cancelled") >= 5


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
@pytest.mark.parametrize("kind", ["raises", "junk", "hangs"])
def test_a_broken_speculator_costs_only_its_own_work(mode: str, kind: str) -> None:
    release = threading.Event()

    def raises(state: Any) -> Any:
        raise RuntimeError("speculator bug")

    def junk(state: Any) -> Any:
        return [
            42,
            {"args": {}},
            {"name": "get_order", "args": "not json"},
            "x",
            {"name": "get_user", "args": [1]},
        ]

    def hangs(state: Any) -> Any:
        release.wait(30)
        return oracle(state)

    async def ahangs(state: Any) -> Any:
        await asyncio.sleep(30)

    spec = {"raises": raises, "junk": junk, "hangs": hangs if mode == "invoke" else ahangs}[kind]
    plain, _ = sequential(mode)
    try:
        out, shop, mw = speculative(
            mode, spec, latch=False, policy=SpeculationPolicy(speculator_timeout=0.01)
        )
    finally:
        release.set()
    assert same(out, plain)
    reasons = {e.get("reason") for e in mw.report.events if e["event"] == "speculator_error"}
    expected = {"raises": "raised", "junk": "junk", "hangs": "timeout"}[kind]
    assert expected in reasons
    assert mw.report.node("model").speculator_errors >= 1
    assert mw.report.adopted == 0 and shop.reads() == [e for e in shop.reads() if not e["early"]]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_write_never_runs_early(mode: str) -> None:
    def writes(state: Any) -> list[Any]:
        return [
            Guess({"name": "cancel_order", "args": {"order_id": "A1"}}, confidence=0.99),
            {"name": "cancel_order", "args": {"order_id": "B2"}, "confidence": 0.9},
        ]

    plain, plain_shop = sequential(mode)
    out, shop, mw = speculative(mode, writes, latch=False)
    assert same(out, plain)
    assert shop.writes() == plain_shop.writes()  # one cancel_order, run by the tool step
    assert [w["early"] for w in shop.writes()] == [False]
    skipped = [e for e in mw.report.events if e["event"] == "skipped"]
    assert skipped and all(e["reason"] == "not_read_only" for e in skipped)
    assert mw.report.node("model").launched == 0


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_reply_that_also_writes_serves_nothing_early(mode: str) -> None:
    # The read and the write name different orders: run together by the tool step, a read of the
    # order being cancelled would race the write in the plain run too.
    script = [[("get_order", {"order_id": "B2"}), ("cancel_order", {"order_id": "A1"})]]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "get_order", "args": {"order_id": "B2"}}] if len(state["messages"]) == 1 else []

    plain, _ = sequential(mode, script)
    out, shop, mw = speculative(mode, guess, script=script)
    assert same(out, plain)
    assert mw.report.adopted == 0
    assert [e["reason"] for e in mw.report.events if e["event"] == "cancelled"] == ["reply_has_unsafe_call"]
    assert len(shop.reads()) == 2  # the early one (unused) and the real one


def test_losing_prefetches_are_cancelled_and_no_task_outlives_the_run() -> None:
    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "get_order", "args": {"order_id": "B2"}}] if len(state["messages"]) == 1 else []

    script = [[("get_order", {"order_id": "A1"})]]

    async def main() -> tuple[dict[str, Any], Shop, SpeculativeToolCalls, set[Any]]:
        shop = Shop(latency=0.5)  # the loser is still sleeping when the model replies
        gate = Latch(shop)
        model = scripted(script, delay=0.01, wait_for=gate.ready)
        shop.model = model
        mw = SpeculativeToolCalls(gate.wrap(guess), read_only=READS)
        out = await create_agent(model, shop.tools(), middleware=[mw]).ainvoke(ask())
        left = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        return out, shop, mw, left

    out, shop, mw, left = asyncio.run(main())
    assert left == set()
    assert shop.cancelled == ["get_order"]  # cancelled mid-call
    assert mw.report.node("model").cancelled == 1
    assert all(e["finished"] for e in shop.executions)


def test_sync_runs_join_what_they_started() -> None:
    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "get_order", "args": {"order_id": "B2"}}] if len(state["messages"]) == 1 else []

    _, shop, mw = speculative("invoke", guess, script=[[("get_order", {"order_id": "A1"})]], latency=0.3)
    assert leftover_work() == []
    assert len(shop.reads()) == 2 and all(e["finished"] for e in shop.executions)
    assert mw.report.node("model").wasted == 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_failing_model_call_cancels_the_turn(mode: str) -> None:
    shop = Shop(latency=0.3)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.01, wait_for=gate.ready, fail_at=1)
    mw = SpeculativeToolCalls(gate.wrap(oracle), read_only=READS)
    agent = create_agent(model, shop.tools(), middleware=[mw])

    async def arun() -> set[Any]:
        with pytest.raises(RuntimeError, match="the model failed"):
            await agent.ainvoke(ask())
        await asyncio.sleep(0)  # let the cancelled prefetches unwind
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    if mode == "ainvoke":
        assert asyncio.run(arun()) == set()
        assert sorted(shop.cancelled) == ["get_order", "get_user"]  # stopped mid-call
    else:
        with pytest.raises(RuntimeError, match="the model failed"):
            agent.invoke(ask())
        assert leftover_work() == [] and all(e["finished"] for e in shop.executions)
    reasons = [e["reason"] for e in mw.report.events if e["event"] == "cancelled"]
    assert reasons == ["model_error", "model_error"]
    assert agent_report_problems(mw.report) == []


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
@pytest.mark.parametrize("speculator_kind", ["sync", "async"])
def test_a_model_call_failing_while_its_speculator_runs(mode: str, speculator_kind: str) -> None:
    """The model fails before its speculator answers: the run raises the model's own error (as
    the plain agent does), the speculator is stopped where it can be (an async one is cancelled),
    and nothing it would have guessed runs afterwards."""
    release = threading.Event()
    seen: list[str] = []

    def slow(state: Any) -> Any:
        release.wait(1.0)
        seen.append("answered")
        return oracle(state)

    async def aslow(state: Any) -> Any:
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("answered")
        return oracle(state)

    shop = Shop(latency=0.02)
    model = scripted(shop_script(), delay=0.05, fail_at=0)
    shop.model = model
    mw = SpeculativeToolCalls(slow if speculator_kind == "sync" else aslow, read_only=READS)
    agent = create_agent(model, shop.tools(), middleware=[mw])
    try:
        with pytest.raises(RuntimeError, match="the model failed"):
            if mode == "invoke":
                agent.invoke(ask())
            else:
                asyncio.run(agent.ainvoke(ask()))
    finally:
        release.set()
    deadline = time.monotonic() + 3.0
    while not seen and time.monotonic() < deadline and speculator_kind == "sync":
        time.sleep(0.02)  # a sync speculator cannot be stopped: it answers into a closed turn
    time.sleep(0.1)
    assert shop.executions == []  # its guesses never ran: the turn was closed
    if speculator_kind == "async":
        assert seen == ["cancelled"]
    assert leftover_work() == []
    assert agent_report_problems(mw.report) == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_early_tool_runs_stay_out_of_the_event_stream(mode: str) -> None:
    """`astream_events` shows the agent's own runs only: a prefetch (right or wrong guess) is
    traced as a speculative child, never as an event of the user's stream."""
    shop = Shop(latency=0.02)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.02, wait_for=gate.ready)
    shop.model = model

    async def speculator(state: Any) -> Any:
        return oracle(state)

    mw = SpeculativeToolCalls(gate.wrap(oracle if mode == "sync" else speculator), read_only=READS)
    agent = create_agent(model, shop.tools(), middleware=[mw])

    async def events() -> list[Any]:
        return [e async for e in agent.astream_events(ask(), version="v2")]

    seen = asyncio.run(events())
    assert mw.report.node("model").launched >= 4  # the prefetches ran
    leaked = [(e["event"], e["name"]) for e in seen if "speculative" in (e.get("tags") or [])]
    assert leaked == []
    ran = [e["name"] for e in seen if e["event"] == "on_tool_start"]
    assert "get_order" not in ran or all(
        "ZZ" not in str(e["data"].get("input")) for e in seen if e["event"] == "on_tool_start"
    )  # the wrong guess's call never shows


def test_events_reach_the_custom_stream_as_json() -> None:
    shop = Shop(latency=0.02)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.02, wait_for=gate.ready)
    shop.model = model
    mw = SpeculativeToolCalls(
        gate.wrap(oracle), read_only=READS, policy=SpeculationPolicy(stream_events=True)
    )
    agent = create_agent(model, shop.tools(), middleware=[mw])
    events = [chunk for chunk in agent.stream(ask(), stream_mode="custom")]
    assert events and all(e["type"] == "speculation" and e["node"] == "model" for e in events)
    json.dumps(events)
    kinds = {e["event"] for e in events}
    assert {"guesses", "launch", "hit", "adopted", "cancelled", "skipped"} <= kinds
    adopted = [e for e in events if e["event"] == "adopted"]
    assert all(e["hidden_s"] >= 0 and e["tool_call_id"].startswith("call_") for e in adopted)
    assert [e["event"] for e in mw.report.events if e["event"] in kinds] == [e["event"] for e in events]


def test_the_custom_stream_carries_no_speculation_events_by_default() -> None:
    shop = Shop(latency=0.02)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.02, wait_for=gate.ready)
    shop.model = model
    mw = SpeculativeToolCalls(gate.wrap(oracle), read_only=READS)
    agent = create_agent(model, shop.tools(), middleware=[mw])
    assert [chunk for chunk in agent.stream(ask(), stream_mode="custom")] == []
    assert {"guesses", "hit", "adopted"} <= {e["event"] for e in mw.report.events}  # the report keeps them


def test_disabled_policy_is_a_plain_agent() -> None:
    out, shop, mw = speculative("invoke", oracle, latch=False, policy=SpeculationPolicy(enabled=False))
    assert mw.report.events == [] and mw.report.calls == 0
    assert not any(e["early"] for e in shop.executions)


def test_k_and_min_confidence_bound_the_prefetches() -> None:
    def many(state: Any) -> list[dict[str, Any]]:
        return [
            {"name": "get_order", "args": {"order_id": o}, "confidence": c}
            for o, c in [("A1", 0.9), ("B2", 0.8), ("C3", 0.1), ("D4", 0.7)]
        ]

    policy = SpeculationPolicy(k=2, min_confidence=0.5)
    _, _, mw = speculative(
        "invoke", many, latch=False, policy=policy, script=[[("get_order", {"order_id": "A1"})]]
    )
    launched = [e["call"]["args"]["order_id"] for e in mw.report.events if e["event"] == "launch"]
    assert launched[:2] == ["A1", "B2"] and "C3" not in launched and "D4" not in launched


# ---------------------------------------------------------------------- what a served message is


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_served_messages_equal_the_tool_nodes_for_every_kind_of_result(mode: str) -> None:
    @tool
    def as_dict(x: str) -> dict[str, Any]:
        """A dict result."""
        time.sleep(0.02)
        return {"x": x, "list": [1, 2.5, None]}

    @tool(response_format="content_and_artifact")
    def with_artifact(x: str) -> tuple[str, dict[str, Any]]:
        """Content and an artifact."""
        time.sleep(0.02)
        return f"content {x}", {"raw": [x, x]}

    @tool
    def blocks(x: str) -> list[dict[str, Any]]:
        """Content blocks."""
        time.sleep(0.02)
        return [{"type": "text", "text": f"block {x}"}]

    @tool
    def unicode(x: str) -> str:
        """Non-ASCII text."""
        time.sleep(0.02)
        return f"héllo → {x} ✓"

    tools = [as_dict, with_artifact, blocks, unicode]
    script: list[Any] = [[(t.name, {"x": "1"}) for t in tools]]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "args": {"x": "1"}} for t in tools] if len(state["messages"]) == 1 else []

    def run(middleware: list[Any]) -> dict[str, Any]:
        model = scripted(script, delay=0.1)
        return run_agent(mode, create_agent(model, tools, middleware=middleware))

    mw = SpeculativeToolCalls(guess, read_only={t.name for t in tools}, policy=SpeculationPolicy(k=4))
    out = run([mw])
    plain = run([])
    assert same(out, plain)
    assert mw.report.adopted == 4
    served = {m.name: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert served["with_artifact"].artifact == {"raw": ["1", "1"]}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_error_results_are_never_served(mode: str) -> None:
    calls: list[str] = []

    @tool
    def flaky(x: str) -> str:
        """Fails the first time."""
        calls.append(x)
        if len(calls) == 1:
            raise ToolException("temporarily down")
        return "fine"

    flaky.handle_tool_error = True
    script: list[Any] = [[("flaky", {"x": "1"})]]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "flaky", "args": {"x": "1"}}] if len(state["messages"]) == 1 else []

    mw = SpeculativeToolCalls(guess, read_only={"flaky"})
    model = scripted(script, delay=0.1)
    out = run_agent(mode, create_agent(model, [flaky], middleware=[mw]))
    result = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert result.content == "fine" and result.status == "success"
    assert calls == ["1", "1"]  # the early error was not served; the tool step ran it
    assert any(e.get("reason") == "not_served:error" for e in mw.report.events)


def test_a_store_injected_read_is_served() -> None:
    store = InMemoryStore()
    store.put(("prefs",), "ann", {"lang": "fr"})

    @tool
    def get_pref(user: str, store: Annotated[Any, InjectedStore()]) -> str:
        """Read a preference."""
        time.sleep(0.05)
        return json.dumps(store.get(("prefs",), user).value)

    script: list[Any] = [[("get_pref", {"user": "ann"})]]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "get_pref", "args": {"user": "ann"}}] if len(state["messages"]) == 1 else []

    mw = SpeculativeToolCalls(guess, read_only={"get_pref"})
    out = create_agent(scripted(script, delay=0.1), [get_pref], middleware=[mw], store=store).invoke(ask())
    assert mw.report.adopted == 1
    assert next(m for m in out["messages"] if isinstance(m, ToolMessage)).content == '{"lang": "fr"}'


def test_concurrent_runs_share_one_middleware_without_crosstalk() -> None:
    async def main() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        shop = Shop(latency=0.05)
        model = scripted(shop_script(), delay=0.05)
        mw = SpeculativeToolCalls(oracle, read_only=READS)
        agent = create_agent(model, shop.tools(), middleware=[mw])
        plain = create_agent(scripted(shop_script(), delay=0.05), Shop(latency=0.05).tools())
        outs = await asyncio.gather(*(agent.ainvoke(ask()) for _ in range(3)))
        ref = await plain.ainvoke(ask())
        return [(o, ref) for o in outs]

    for out, ref in asyncio.run(main()):
        assert same(out, ref)


# ---------------------------------------------------------------------- mistakes


def test_constructor_mistakes_name_the_culprit_and_the_fix() -> None:
    with pytest.raises(TypeError, match="not callable"):
        SpeculativeToolCalls(42, read_only={"get_order"})
    with pytest.raises(TypeError, match=r"read_only=\{'get_order'\}"):
        SpeculativeToolCalls(oracle, read_only="get_order")
    with pytest.raises(ValueError, match="is empty"):
        SpeculativeToolCalls(oracle, read_only=[])
    with pytest.raises(TypeError, match="must be a SpeculationPolicy"):
        SpeculativeToolCalls(oracle, read_only={"get_order"}, policy={"k": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tool names"):
        SpeculativeToolCalls(oracle, read_only=[3])  # type: ignore[list-item]


def test_create_agent_refuses_unknown_read_only_tools() -> None:
    shop = Shop()
    with pytest.raises(ValueError, match=r"'get_ordr', not among the agent's tools \('cancel_order'"):
        create_agent(
            scripted([]), shop.tools(), middleware=[SpeculativeToolCalls(oracle, read_only={"get_ordr"})]
        )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_read_only_tool_given_state_or_runtime_gets_the_state_of_the_real_call(mode: str) -> None:
    """Injected state and `ToolRuntime` are given to an early call as the tool node gives them:
    the state at the model call (the real call's, less the reply), the run's context; what it
    writes to its stream writer reaches the custom stream when it is served."""
    seen: list[Any] = []

    @tool
    def peek(x: str, topic: Annotated[str, InjectedState("topic")]) -> str:
        """Reads a state field."""
        time.sleep(0.05)
        return f"{x}:{topic}"

    @tool
    def count(x: str, runtime: ToolRuntime[str, Any]) -> str:
        """Reads the state through its runtime."""
        time.sleep(0.05)
        seen.append(runtime.tool_call_id)
        runtime.stream_writer({"counted": x})
        return f"{x}:{len(runtime.state['messages'])}:{runtime.state['topic']}"

    @tool
    def label(x: str, runtime: ToolRuntime[str, Any]) -> str:
        """Reads a state field through its runtime, and streams."""
        time.sleep(0.05)
        runtime.stream_writer({"labelled": x})
        return f"{x}:{runtime.state['topic']}:{runtime.context}"

    class State(AgentState):  # type: ignore[type-arg]
        topic: str

    calls = [("peek", {"x": "a"}), ("count", {"x": "b"}), ("label", {"x": "c"})]
    script: list[Any] = [calls, "ok"]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": n, "args": a} for n, a in calls] if len(state["messages"]) == 1 else []

    def build(mw: Any) -> Any:
        return create_agent(
            scripted(script, delay=0.15, ids="seeded"),
            [peek, count, label],
            middleware=mw,
            state_schema=State,
            context_schema=str,
        )

    mw = SpeculativeToolCalls(guess, read_only={"peek", "count", "label"}, policy=SpeculationPolicy(k=3))
    inputs = {**ask(), "topic": "shoes"}

    async def go(agent: Any) -> tuple[Any, list[Any]]:
        custom: list[Any] = []
        final: Any = None
        async for mode_, chunk in agent.astream(inputs, stream_mode=["custom", "values"], context="ctx"):
            if mode_ == "custom" and ("counted" in chunk or "labelled" in chunk):
                custom.append(chunk)
            elif mode_ == "values":
                final = chunk
        return final, custom

    def go_sync(agent: Any) -> tuple[Any, list[Any]]:
        custom: list[Any] = []
        final: Any = None
        for mode_, chunk in agent.stream(inputs, stream_mode=["custom", "values"], context="ctx"):
            if mode_ == "custom" and ("counted" in chunk or "labelled" in chunk):
                custom.append(chunk)
            elif mode_ == "values":
                final = chunk
        return final, custom

    run = (lambda a: asyncio.run(go(a))) if mode == "async" else go_sync
    out, custom = run(build([mw]))
    early = list(seen)
    ref, ref_custom = run(build([]))
    assert same(out, ref)
    results = [m.content for m in out["messages"] if isinstance(m, ToolMessage)]
    assert results == ["a:shoes", "b:2:shoes", "c:shoes:ctx"]  # count sees the model's reply too
    assert mw.report.adopted == 2  # peek and label, given the state at the model call, are served
    assert [e["call"]["name"] for e in mw.report.events if e.get("reason") == "read_messages"] == ["count"]
    assert len(early) == 2 and early[0].startswith("speculative-")  # count ran early, then for real
    # label's early write is streamed when it is served; count's early write never is
    expected = ["{'counted': 'b'}", "{'labelled': 'c'}"]
    assert sorted(map(str, custom)) == sorted(map(str, ref_custom)) == expected


def test_a_prefetch_given_a_state_that_changed_before_the_tool_step_is_not_served() -> None:
    """A middleware's after_model hook changes the field a read-only tool reads: the early call
    saw the old value, so the tool step runs the tool on the new one."""
    from langchain.agents.middleware import AgentMiddleware

    @tool
    def peek(x: str, topic: Annotated[str, InjectedState("topic")]) -> str:
        """Reads a state field."""
        time.sleep(0.05)
        return f"{x}:{topic}"

    class State(AgentState):  # type: ignore[type-arg]
        topic: str

    class Retopic(AgentMiddleware):  # type: ignore[type-arg]
        state_schema = State

        def after_model(self, state: Any, runtime: Any) -> dict[str, Any]:
            return {"topic": "hats"}

    script: list[Any] = [[("peek", {"x": "a"})], "ok"]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "peek", "args": {"x": "a"}}] if len(state["messages"]) == 1 else []

    mw = SpeculativeToolCalls(guess, read_only={"peek"})
    inputs = {**ask(), "topic": "shoes"}
    out = create_agent(scripted(script, delay=0.15), [peek], middleware=[Retopic(), mw]).invoke(inputs)
    assert next(m for m in out["messages"] if isinstance(m, ToolMessage)).content == "a:hats"
    assert mw.report.adopted == 0
    assert any(e.get("reason") == "state_changed" for e in mw.report.events)


def test_a_prefetch_that_tried_to_write_the_state_is_not_served() -> None:
    """A tool named read-only that writes the state through LangGraph's config (as deepagents'
    StateBackend does) and hides the failure: its early write never happened, so it is not
    served and the tool step's write is the plain run's."""
    from langgraph.config import get_config

    @tool
    def sneaky(x: str, runtime: ToolRuntime) -> str:
        """Writes the state, whatever it says."""
        try:
            get_config()["configurable"]["__pregel_send"]([("topic", x)])
        except RuntimeError:
            pass
        return "ok"

    class State(AgentState):  # type: ignore[type-arg]
        topic: str

    script: list[Any] = [[("sneaky", {"x": "hats"})], "done"]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "sneaky", "args": {"x": "hats"}}] if len(state["messages"]) == 1 else []

    def build(mw: list[Any]) -> Any:
        return create_agent(scripted(script, delay=0.15), [sneaky], middleware=mw, state_schema=State)

    mw = SpeculativeToolCalls(guess, read_only={"sneaky"})
    out = build([mw]).invoke({**ask(), "topic": "shoes"})
    ref = build([]).invoke({**ask(), "topic": "shoes"})
    assert out["topic"] == ref["topic"] == "hats"
    assert mw.report.adopted == 0
    assert any(e.get("reason") == "wrote_state" for e in mw.report.events)


def test_a_prefetch_whose_result_shows_its_call_id_is_not_served() -> None:
    calls: list[str] = []

    @tool
    def echo(x: str, call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Answers with its own call id."""
        calls.append(call_id)
        time.sleep(0.05)
        return f"{x} from {call_id}"

    script: list[Any] = [[("echo", {"x": "1"})], "ok"]

    def guess(state: Any) -> list[dict[str, Any]]:
        return [{"name": "echo", "args": {"x": "1"}}] if len(state["messages"]) == 1 else []

    mw = SpeculativeToolCalls(guess, read_only={"echo"})
    out = create_agent(scripted(script, delay=0.15), [echo], middleware=[mw]).invoke(ask())
    message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert message.content == f"1 from {message.tool_call_id}"
    assert len(calls) == 2 and calls[0].startswith("speculative-")
    assert mw.report.adopted == 0
    assert any(e.get("reason") == "not_served:shows_call_id" for e in mw.report.events)


def test_outside_create_agent_it_warns_that_gates_were_not_checked() -> None:
    from langchain_core.messages import AIMessage as AI
    from langgraph.prebuilt.tool_node import ToolNode  # noqa: F401 - the point: no create_agent

    mw = SpeculativeToolCalls(oracle, read_only={"get_order"})

    class Request:
        tools: list[Any] = []
        state = {"messages": [HumanMessage("hi")]}
        runtime = None
        messages = state["messages"]

    with (
        pytest.warns(UserWarning, match="HumanInTheLoopMiddleware"),
        pytest.raises(ValueError, match="get_order"),
    ):
        mw.wrap_model_call(Request(), lambda r: AI(content="hi"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- streams and traces


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_the_messages_stream_is_the_plain_agents(mode: str) -> None:
    """No prefetch reaches stream_mode="messages"; served results stream as the tool step's output."""

    def chunks(middleware: list[Any], shop: Shop, model: Any) -> list[tuple[str, Any, str]]:
        agent = create_agent(model, shop.tools(), middleware=middleware)
        if mode == "stream":
            parts = list(agent.stream(ask(), stream_mode="messages"))
        else:

            async def collect() -> list[Any]:
                return [p async for p in agent.astream(ask(), stream_mode="messages")]

            parts = asyncio.run(collect())
        return [(type(m).__name__, str(m.content), meta["langgraph_node"]) for m, meta in parts]

    shop = Shop(latency=0.02)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.02, wait_for=gate.ready)
    shop.model = model
    mw = SpeculativeToolCalls(gate.wrap(oracle), read_only=READS)
    streamed = chunks([mw], shop, model)
    plain = chunks([], Shop(latency=0.02), scripted(shop_script(), delay=0.02))
    assert mw.report.adopted == 4
    assert streamed == plain


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """test_langsmith's LangSmith collector, on 127.0.0.1."""
    from http.server import ThreadingHTTPServer

    from .test_langsmith import _Collector

    _Collector.posts, _Collector.patches = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    try:
        yield url
    finally:
        server.shutdown()


def test_prefetches_are_traced_as_speculative_children_of_the_model_call(collector: str) -> None:
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    from .test_langsmith import _Collector

    client = Client(api_url=collector, api_key="test-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="agents-test")
    shop = Shop(latency=0.02)
    gate = Latch(shop)
    model = scripted(shop_script(), delay=0.02, wait_for=gate.ready)
    shop.model = model
    mw = SpeculativeToolCalls(gate.wrap(oracle), read_only=READS)
    create_agent(model, shop.tools(), middleware=[mw]).invoke(ask(), {"callbacks": [tracer]})
    tracer.wait_for_futures()
    client.flush()

    runs = {r["id"]: r for r in _Collector.posts}

    def meta(r: dict[str, Any]) -> dict[str, Any]:
        patched = _Collector.patches.get(r["id"], {}).get("extra") or {}
        return {**((r.get("extra") or {}).get("metadata") or {}), **(patched.get("metadata") or {})}

    early = [r for r in runs.values() if "speculative" in (r.get("tags") or [])]
    assert len(early) == mw.report.node("model").launched == 5
    for r in early:
        assert meta(r)["speculative"] is True and meta(r)["spec_guess"]["name"] == r["name"]
        assert runs[r["parent_run_id"]]["name"] == "SpeculativeToolCalls.wrap_model_call"
    spans = [r for r in runs.values() if r["name"] == "SpeculativeToolCalls.wrap_model_call"]
    outcomes = [meta(r)["speculation"]["outcome"] for r in spans if "speculation" in meta(r)]
    assert outcomes == ["hit", "hit", "hit", "hit"]
    adopted = [
        r
        for r in runs.values()
        if r["name"] == "SpeculativeToolCalls.wrap_tool_call" and meta(r).get("spec_adopted")
    ]
    assert len(adopted) == 4


def test_the_middleware_adds_no_node_no_checkpoint_and_no_update() -> None:
    """As without the middleware (issue 25 item 10): the same graph nodes, the same checkpoints
    per run, the same `updates` events; the speculator still learns from every finished run."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from langgraph_speculative.agents import ToolPatternSpeculator

    def run(mw: Any) -> tuple[list[str], list[Any], list[Any]]:
        model = scripted(shop_script(), delay=0.01, ids="seeded")
        agent = create_agent(
            model, Shop(latency=0.01).tools(), middleware=[mw] if mw else [], checkpointer=InMemorySaver()
        )
        cfg: Any = {"configurable": {"thread_id": "t"}}
        updates = [list(chunk) for chunk in agent.stream(ask(), cfg, stream_mode="updates")]
        history = [(s.next, s.metadata.get("step")) for s in agent.get_state_history(cfg)]
        return sorted(agent.get_graph().nodes), updates, history

    patterns = ToolPatternSpeculator()
    mw = SpeculativeToolCalls(patterns, read_only=READS)
    assert run(mw) == run(None)
    assert mw.last_report is not None and mw.last_report.node("model").calls > 0
    assert patterns.runs == 1  # observed at the final reply, without a node of its own
