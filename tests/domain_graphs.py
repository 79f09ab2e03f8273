"""Random apps for the areas the other generators leave thin (issue #27), checked by the oracle.

A `DomainSpec` describes a small agent-shaped graph:

    START -> plan -> act -> [worker x m, by `Send`, equal payloads] -> finish -> END
                  \\-> gate (optional: asks a person in the same superstep as act) -/

- **Domain records and messages.** `plan` (slow, speculated) returns records shaped like tool
  calls (`{"id", "name", ...}` or `{"uid", "name", ...}`) and an `AIMessage` whose `tool_calls`
  `act` executes (it reads the *last* AI message's calls), answering with `ToolMessage`s; plain
  dicts or a `Command` carrying the messages (`goto="act"`).
- **Guesses** for `plan` that are right, right but with other tool-call ids (providers' ids are
  random), wrong, and *nearly* right: equal except the one field `act` reads (a record's id, a
  tool call's argument).
- **The store**: `act` puts and deletes in several namespaces and reads back what it reads.
- **Gates**: `interrupt()` asked in `act` itself, in a helper it calls, in a nested function, in a
  subgraph's node (`act` is then a compiled subgraph), `interrupt_after=["act"]` on the subgraph
  node, or by a `gate` node beside `act` (same superstep as a speculated node); a second turn
  resumes.
- **`Send` fan-outs with equal payloads** to a speculated `worker`; **failures**: `act` raises
  on some inputs; **a chat model with tags** (`nostream` or not) called in `act`.
- `finish` is unsafe (a side effect, logged with its payload by the oracle's `Recorder`).

Every actor logs its call and what it read to the `Recorder`, so the oracle sees the call log.
"""

from __future__ import annotations

import asyncio
import operator
import random
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

from . import oracle

GATES = ("none", "node", "helper", "nested", "subgraph", "after_subgraph", "beside")
GUESSES = ("right", "other_ids", "wrong", "nearly")
NAMES = ("Ann", "Bob")
BALANCES = {"u-1": 100, "u-2": 5, "u-3": 42}


def _concat(a: list[Any], b: list[Any]) -> list[Any]:
    return a + b


class DState(TypedDict, total=False):
    q: int
    records: Annotated[list[dict[str, Any]], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]


@dataclass
class DomainSpec:
    """One random domain app (see the module docstring)."""

    id_field: str  # "id" (shaped like a tool call) or "uid"
    command: bool  # plan returns a `Command` carrying its messages
    guess: str
    nearly_field: str  # what a nearly-right guess changes: "record" or "arg"
    speculate_act: bool
    gate: str
    sends: int  # 0: no fan-out
    store_ops: list[tuple[str, tuple[str, ...], str]]  # (put|delete, namespace, key)
    raises: bool
    model_tag: str | None  # None: act calls no chat model
    asynchronous: bool
    stream: bool
    q: int

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in vars(self).items())


def random_domain_spec(rnd: random.Random) -> DomainSpec:
    """Draw a `DomainSpec`."""
    namespaces = [("users",), ("users", "eu"), ("audit",)]
    ops = [
        (rnd.choice(["put", "put", "delete"]), rnd.choice(namespaces), rnd.choice(["k1", "k2"]))
        for _ in range(rnd.randint(0, 3))
    ]
    return DomainSpec(
        id_field=rnd.choice(["id", "uid"]),
        command=rnd.random() < 0.3,
        guess=rnd.choice(GUESSES),
        nearly_field=rnd.choice(["record", "arg"]),
        speculate_act=rnd.random() < 0.3,
        gate=rnd.choice(GATES),
        sends=rnd.choice([0, 0, 2, 3]),
        store_ops=ops,
        raises=rnd.random() < 0.15,
        model_tag=rnd.choice([None, None, "nostream", "plain"]),
        asynchronous=rnd.random() < 0.5,
        stream=rnd.random() < 0.5,
        q=rnd.randint(1, 3),
    )


def plan_out(spec: DomainSpec, state: Any, *, call_id: str = "call_1") -> dict[str, Any]:
    """What `plan` writes: a record and an AI message whose tool call `act` executes."""
    q = state["q"]
    uid = f"u-{q}"
    record = {spec.id_field: uid, "name": NAMES[q % 2], "note": "from plan"}
    msg = AIMessage(
        content="",
        tool_calls=[{"name": "lookup", "args": {"user": q}, "id": call_id, "type": "tool_call"}],
    )
    return {"records": [record], "messages": [msg], "log": [f"plan:{q}"]}


def guesses(spec: DomainSpec, state: Any) -> list[Any]:
    """The speculator of `plan`: right, right with other ids, wrong, or nearly right."""
    right = plan_out(spec, state)
    if spec.guess == "right":
        return [right]
    if spec.guess == "other_ids":
        return [plan_out(spec, state, call_id="call_guess_9")]
    other = state["q"] % 3 + 1  # another user
    if spec.guess == "wrong":
        return [plan_out(spec, {"q": other})]
    # nearly: equal except the one field act reads
    near = plan_out(spec, state)
    if spec.nearly_field == "record":
        near["records"] = [{**near["records"][0], spec.id_field: f"u-{other}"}]
    else:
        msg = near["messages"][0]
        call = {**msg.tool_calls[0], "args": {"user": other}}
        near["messages"] = [AIMessage(content="", tool_calls=[call])]
    return [near]


def _ask(spec: DomainSpec, what: str) -> str:
    return str(interrupt({"approve": what}))


def _act_body(spec: DomainSpec, rec: oracle.Recorder, state: Any) -> dict[str, Any]:
    """What `act` does (sync part): read the last AI message's calls and the last record."""
    last_ai = [m for m in state["messages"] if isinstance(m, AIMessage)][-1]
    record = state["records"][-1]
    uid = record.get(spec.id_field)
    # tool-call ids are read by position (the library's contract: providers' ids are random)
    reads = {
        "uid": uid,
        "name": record["name"],
        "calls": [(c["name"], c["args"]) for c in last_ai.tool_calls],
    }
    rec.call("act", reads)
    answers = []
    for call in last_ai.tool_calls:
        user = f"u-{call['args']['user']}"
        answers.append(ToolMessage(content=f"{user} has {BALANCES[user]}", tool_call_id=call["id"]))
    line = f"{record['name']} ({uid}) has {BALANCES.get(uid)}"
    store = get_store()
    for kind, ns, key in spec.store_ops:
        if kind == "put":
            store.put(ns, key, {"by": uid, "q": state["q"]})
        else:
            store.delete(ns, key)
    seen = store.get(("users",), "k1")
    line += f" k1={seen.value if seen else None}"
    if spec.raises and state["q"] == 2:
        raise ValueError(f"act cannot serve {uid}")
    return {"messages": answers, "log": [line]}


def _model(spec: DomainSpec) -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="noted, thanks")]))
    return model.with_config(tags=[spec.model_tag]) if spec.model_tag else model


def build_domain(spec: DomainSpec, rec: oracle.Recorder, delay: float = 0.06) -> StateGraph:  # type: ignore[type-arg]
    """The graph `spec` describes (uncompiled)."""
    asy = spec.asynchronous

    def plan_sync(state: Any) -> Any:
        rec.call("plan", {"q": state["q"]})
        time.sleep(delay)
        out = plan_out(spec, state)
        return Command(update=out, goto="act") if spec.command else out

    async def plan_async(state: Any) -> Any:
        rec.call("plan", {"q": state["q"]})
        await asyncio.sleep(delay)
        out = plan_out(spec, state)
        return Command(update=out, goto="act") if spec.command else out

    def act_sync(state: Any) -> Any:
        out = _act_body(spec, rec, state)
        if spec.model_tag:
            out["messages"] = [*out["messages"], _model(spec).invoke([HumanMessage(content="log it")])]
        return out

    async def act_async(state: Any) -> Any:
        await asyncio.sleep(0.001)
        out = _act_body(spec, rec, state)
        if spec.model_tag:
            reply = await _model(spec).ainvoke([HumanMessage(content="log it")])
            out["messages"] = [*out["messages"], reply]
        return out

    # the gates: only the variant that asks contains `interrupt()` (a compile-time scan finds it)
    def act_gate_node(state: Any) -> Any:
        out = act_sync(state)
        return {**out, "log": [out["log"][0] + " approved=" + str(interrupt({"approve": state["q"]}))]}

    def act_gate_helper(state: Any) -> Any:
        out = act_sync(state)
        return {**out, "log": [out["log"][0] + " approved=" + _ask(spec, str(state["q"]))]}

    def act_gate_nested(state: Any) -> Any:
        def confirm() -> str:
            return str(interrupt({"confirm": state["q"]}))

        out = act_sync(state)
        return {**out, "log": [out["log"][0] + " approved=" + confirm()]}

    gated = {"node": act_gate_node, "helper": act_gate_helper, "nested": act_gate_nested}

    def worker(payload: Any) -> Any:
        rec.call("worker", payload)
        return {"log": [f"w:{payload['user']}"]}

    async def aworker(payload: Any) -> Any:
        rec.call("worker", payload)
        await asyncio.sleep(0.001)
        return {"log": [f"w:{payload['user']}"]}

    def gate(state: Any) -> Any:
        rec.call("gate", {"q": state["q"]})
        return {"log": [f"gate:{interrupt({'gate': state['q']})}"]}

    def finish(state: Any) -> Any:
        rec.call("finish", {"log": state["log"]})
        rec.effect("finish", state["log"])
        return {"log": ["done"]}

    b = StateGraph(DState)
    if spec.command:
        b.add_node("plan", plan_async if asy else plan_sync, destinations=("act",))
    else:
        b.add_node("plan", plan_async if asy else plan_sync)
    act: Any = gated.get(spec.gate) or (act_async if asy else act_sync)
    if spec.gate in ("subgraph", "after_subgraph"):
        inner = StateGraph(DState)
        if spec.gate == "subgraph":

            def inner_act(state: Any) -> Any:
                out = _act_body(spec, rec, state)
                out["log"] = [*out["log"], "inner approved=" + str(interrupt({"inner": state["q"]}))]
                return out

            inner.add_node("inner_act", inner_act)
        else:
            inner.add_node("inner_act", act)
        inner.add_edge(START, "inner_act")
        inner.add_edge("inner_act", END)
        act = inner.compile()
    b.add_node("act", act)
    b.add_node("finish", finish)
    b.add_edge(START, "plan")
    if not spec.command:
        b.add_edge("plan", "act")
    after_act = ["act"]
    if spec.gate == "beside":
        b.add_node("gate", gate)
        b.add_edge("plan", "gate")
        after_act.append("gate")
    if spec.sends:
        b.add_node("worker", aworker if asy else worker)  # type: ignore[arg-type]
        n = spec.sends

        def fan(state: Any) -> Any:
            uid = state["records"][-1].get(spec.id_field)
            return [Send("worker", {"user": uid}) for _ in range(n)]  # equal payloads

        b.add_conditional_edges("act", fan, ["worker"])
        if spec.gate == "beside":
            b.add_edge("gate", "finish")
        b.add_edge("worker", "finish")
    else:
        b.add_edge(after_act, "finish")
    b.add_edge("finish", END)
    return b


def act_guess(spec: DomainSpec) -> Any:
    """A speculator for `act` that is right whenever it can be (no gate, no store reads after
    writes it cannot see): it recomputes the tool answers and the line from the state."""

    def guess(state: Any) -> Any:
        last_ai = [m for m in state["messages"] if isinstance(m, AIMessage)][-1]
        record = state["records"][-1]
        uid = record.get(spec.id_field)
        users = [(f"u-{c['args']['user']}", c["id"]) for c in last_ai.tool_calls]
        answers = [ToolMessage(content=f"{u} has {BALANCES[u]}", tool_call_id=i) for u, i in users]
        return [{"messages": answers, "log": [f"{record['name']} ({uid}) has {BALANCES.get(uid)} k1=None"]}]

    return guess
