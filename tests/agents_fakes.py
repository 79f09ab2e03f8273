"""Fakes for the agent-middleware tests: a scripted chat model with real latency, a
little shop of read and write tools that record every execution, and transcript
comparison."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, StructuredTool

Turn = Callable[[list[BaseMessage]], "list[tuple[str, dict[str, Any]]] | str"]


class ScriptedModel(BaseChatModel):
    """Replies turn by turn from `script`, after `delay` seconds (real sleeps).

    Turn i (i = the number of AI messages so far) is either a list of
    `(tool, args)` calls, a final text, or a function of the messages giving
    one of those. Past the script it answers with every tool result it has
    read, so a wrong `ToolMessage` changes the transcript. Tool-call ids are
    random (`ids="random"`, like a provider's) or drawn from a seed
    (`ids="seeded"`, equal across runs). `thinking` counts calls in progress.
    """

    script: list[Any]
    delay: float = 0.05
    ids: str = "random"
    seed: int = 0
    wait_for: Any = None
    """Optional latch `(messages) -> bool`: the reply waits until it is true (up to 5 s)."""
    fail_at: int | None = None
    """Raise at this turn (after the latch), to test a failing model call."""
    thinking: list[int] = [0]
    calls: list[int] = [0]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        n = sum(isinstance(m, AIMessage) for m in messages)
        turn: Any = self.script[n] if n < len(self.script) else None
        if callable(turn):
            turn = turn(messages)
        if turn is None:
            seen = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
            return AIMessage(content="Done. I read: " + " | ".join(seen))
        if isinstance(turn, str):
            return AIMessage(content=turn)
        rng = random.Random(f"{self.seed}:{n}")
        calls = []
        for name, args in turn:
            cid = (
                f"call_{uuid.uuid4().hex[:24]}"
                if self.ids == "random"
                else f"call_{rng.getrandbits(96):024x}"
            )
            calls.append({"name": name, "args": args, "id": cid, "type": "tool_call"})
        return AIMessage(content="", tool_calls=calls)

    def _maybe_fail(self, messages: list[BaseMessage]) -> None:
        if self.fail_at is not None and sum(isinstance(m, AIMessage) for m in messages) == self.fail_at:
            raise RuntimeError("the model failed")

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        self.thinking[0] += 1
        self.calls[0] += 1
        try:
            time.sleep(self.delay)
            deadline = time.monotonic() + 5
            while self.wait_for is not None and not self.wait_for(messages) and time.monotonic() < deadline:
                time.sleep(0.002)
            self._maybe_fail(messages)
            return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])
        finally:
            self.thinking[0] -= 1

    async def _agenerate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        self.thinking[0] += 1
        self.calls[0] += 1
        try:
            await asyncio.sleep(self.delay)
            deadline = time.monotonic() + 5
            while self.wait_for is not None and not self.wait_for(messages) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            self._maybe_fail(messages)
            return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])
        finally:
            self.thinking[0] -= 1


def scripted(script: list[Any], **kw: Any) -> ScriptedModel:
    """A fresh scripted model with its own counters."""
    return ScriptedModel(script=script, thinking=[0], calls=[0], **kw)


ORDERS = {
    "A1": {"order_id": "A1", "status": "pending", "items": [{"product_id": "P1"}, {"product_id": "P2"}]},
    "B2": {"order_id": "B2", "status": "delivered", "items": [{"product_id": "P3"}]},
}
USERS = {"ann@example.com": {"user_id": "ann_1", "orders": ["A1", "B2"]}}


@dataclass
class Shop:
    """Read and write tools over a tiny store, each execution recorded (`early`: not by the tool step).

    `started` is set when any read starts (the tests' latch: a model that
    waits for it replies only once a prefetch is running).
    """

    latency: float = 0.05
    model: ScriptedModel | None = None
    executions: list[dict[str, Any]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: list[str] = field(default_factory=list)
    orders: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(ORDERS)))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Note an execution; `early` unless the agent's tool step ran it (its node says so)."""
        from langchain_core.runnables.config import ensure_config

        from langgraph_speculative import speculation_info

        node = (ensure_config().get("metadata") or {}).get("langgraph_node")
        early = node != "tools" or speculation_info() is not None  # not the tool step, or on a branch
        with self.lock:
            entry = {"name": name, "args": args, "early": early, "finished": False}
            self.executions.append(entry)
            return entry

    def reads(self) -> list[dict[str, Any]]:
        return [e for e in self.executions if e["name"] in READS]

    def writes(self) -> list[dict[str, Any]]:
        return [e for e in self.executions if e["name"] in WRITES]

    def _read(self, name: str, fn: Callable[..., Any]) -> BaseTool:
        def run(**kw: Any) -> Any:
            entry = self._record(name, kw)
            self.started.set()
            try:
                time.sleep(self.latency)
                return fn(**kw)
            finally:
                entry["finished"] = True

        async def arun(**kw: Any) -> Any:
            entry = self._record(name, kw)
            self.started.set()
            try:
                await asyncio.sleep(self.latency)
                return fn(**kw)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
            finally:
                entry["finished"] = True

        return StructuredTool.from_function(
            func=run, coroutine=arun, name=name, description=f"{name} (read)", args_schema=_schemas[name]
        )

    def _write(self, name: str, fn: Callable[..., Any]) -> BaseTool:
        def run(**kw: Any) -> Any:
            self._record(name, kw)
            time.sleep(self.latency)
            return fn(**kw)

        async def arun(**kw: Any) -> Any:
            self._record(name, kw)
            await asyncio.sleep(self.latency)
            return fn(**kw)

        return StructuredTool.from_function(
            func=run, coroutine=arun, name=name, description=f"{name} (write)", args_schema=_schemas[name]
        )

    def tools(self) -> list[BaseTool]:
        def find_user(email: str) -> str:
            user = USERS.get(email)
            return user["user_id"] if user else "not found"

        def get_user(user_id: str) -> dict[str, Any]:
            for user in USERS.values():
                if user["user_id"] == user_id:
                    return user
            raise ValueError(f"no user {user_id}")

        def get_order(order_id: str) -> dict[str, Any]:
            if order_id not in self.orders:
                raise ValueError(f"no order {order_id}")
            return self.orders[order_id]

        def cancel_order(order_id: str) -> str:
            self.orders[order_id]["status"] = "cancelled"
            return f"cancelled {order_id}"

        return [
            self._read("find_user", find_user),
            self._read("get_user", get_user),
            self._read("get_order", get_order),
            self._write("cancel_order", cancel_order),
        ]


WRITES = {"cancel_order"}
READS = {"find_user", "get_user", "get_order"}


def _schema(name: str, field_name: str) -> Any:
    from pydantic import create_model

    return create_model(name, **{field_name: (str, ...)})


_schemas = {
    "find_user": _schema("FindUser", "email"),
    "get_user": _schema("GetUser", "user_id"),
    "get_order": _schema("GetOrder", "order_id"),
    "cancel_order": _schema("CancelOrder", "order_id"),
}


def shop_script() -> list[Any]:
    """find_user -> get_user -> get_order per order (from the user record) -> cancel the pending one."""

    def orders(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]]:
        user = json.loads(str(messages[-1].content))
        return [("get_order", {"order_id": o}) for o in user["orders"][:1]]

    def second(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]]:
        return [("get_order", {"order_id": "B2"})]

    return [
        [("find_user", {"email": "ann@example.com"})],
        lambda m: [("get_user", {"user_id": str(m[-1].content)})],
        orders,
        second,
        [("cancel_order", {"order_id": "A1"})],
    ]


def transcript(messages: Sequence[BaseMessage], *, canonical_ids: bool = False) -> list[dict[str, Any]]:
    """Every message as data, without message ids (random in any run).

    `canonical_ids`: tool-call ids are replaced by their order of first
    appearance, so two runs with random provider ids compare equal exactly
    when every ToolMessage answers the same call as in the other run.
    """
    ids: dict[str, str] = {}

    def cid(x: Any) -> Any:
        if not canonical_ids or x is None:
            return x
        return ids.setdefault(x, f"id{len(ids)}")

    out = []
    for m in messages:
        d = m.model_dump()
        d.pop("id", None)
        if isinstance(m, AIMessage):
            d["tool_calls"] = [{**c, "id": cid(c["id"])} for c in m.tool_calls]
        if isinstance(m, ToolMessage):
            d["tool_call_id"] = cid(m.tool_call_id)
        out.append({**d, "class": type(m).__name__})
    return out


class Latch:
    """Makes a model reply only after this turn's speculation has started its reads.

    `wrap(speculator)` counts the speculator's answers and the read-only guesses
    it launches (the first `k`); `ready(messages)` is true once the speculator
    has answered for the current model call and the shop has seen that many
    reads start. A model with `wait_for=latch.ready` therefore replies while
    the prefetches run, whatever the machine's load: no sleep wins a race.
    """

    def __init__(self, shop: Shop, read_only: set[str] | None = None, k: int = 3) -> None:
        self.shop = shop
        self.read_only = READS if read_only is None else read_only
        self.k = k
        self.answered = 0
        self.expected = 0
        self.base = 0

    def wrap(self, speculator: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def guess(state: Any) -> Any:
            try:
                out = speculator(state)
            except BaseException:
                self.answered += 1
                raise
            reads = []
            for g in out if isinstance(out, list) else []:
                if isinstance(g, dict) and g.get("name") in self.read_only:
                    key = json.dumps([g["name"], g.get("args")], sort_keys=True)
                    if key not in reads:
                        reads.append(key)
            self.expected += len(reads[: self.k])
            self.answered += 1
            return out

        return guess

    def ready(self, messages: list[BaseMessage]) -> bool:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        early = sum(1 for e in self.shop.reads() if e["early"])
        return self.answered > turn and early >= self.expected


def ask(text: str = "Please cancel my pending order. I am ann@example.com") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}
