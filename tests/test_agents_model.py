"""model_speculator through the real langchain-openai client, against an OpenAI-compatible stub
this test starts on 127.0.0.1 (no network, no key)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.utils.function_calling import convert_to_openai_tool

from langgraph_speculative.agents import SpeculativeToolCalls, model_speculator

from .agents_fakes import READS, Shop, ask, scripted, shop_script, transcript

pytest.importorskip("langchain_openai")

Reply = Callable[[dict[str, Any]], dict[str, Any]]


class Stub:
    """An OpenAI-compatible /v1/chat/completions endpoint answering with `reply(body)`."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.reply: Reply = lambda body: {"content": "ok"}
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                stub.bodies.append(body)
                if stub.status != 200:
                    self.send_response(stub.status)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "down", "type": "server_error"}}')
                    return
                message = stub.reply(body)
                calls = message.get("tool_calls") or []
                payload = {
                    "id": f"chatcmpl-{len(body['messages'])}",  # the same in both runs of a test
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": message.get("content"),
                                **({"tool_calls": calls} if calls else {}),
                            },
                            "finish_reason": "tool_calls" if calls else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    try:
        yield s
    finally:
        s.server.shutdown()


def call(name: str, args: dict[str, Any], cid: str | None = None) -> dict[str, Any]:
    return {
        "id": cid or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def next_call(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shop script's next call, from an OpenAI-format conversation."""
    results = [m["content"] for m in messages if m["role"] == "tool"]
    n = len(results)
    script: list[tuple[str, dict[str, Any]]] = [("find_user", {"email": "ann@example.com"})]
    if n >= 1:
        script.append(("get_user", {"user_id": results[0]}))
    script += [("get_order", {"order_id": "A1"}), ("get_order", {"order_id": "B2"})]
    script.append(("cancel_order", {"order_id": "A1"}))
    return call(*script[n]) if n < len(script) else None


def speculator_reply(body: dict[str, Any]) -> dict[str, Any]:
    nxt = next_call(body["messages"])
    if nxt is None:
        return {"content": "It will answer in text."}
    return {"content": None, "tool_calls": [nxt, call("get_order", {"order_id": "ZZ"})]}


def speculative_agent(stub: Stub, **kw: Any) -> tuple[Any, Shop, SpeculativeToolCalls]:
    shop = Shop(latency=0.05)

    def ready(messages: list[Any]) -> bool:  # reply once this turn's prefetch runs
        turn = sum(1 for m in messages if m.type == "ai")
        return len([e for e in shop.reads() if e["early"]]) >= min(2 * (turn + 1), 8) or turn >= 4

    model = scripted(shop_script(), delay=0.02, wait_for=ready)
    spec = model_speculator(
        "openai:gpt-4.1-mini", k=2, base_url=stub.url, api_key="test-key", max_retries=0, **kw
    )
    mw = SpeculativeToolCalls(spec, read_only=READS)
    return create_agent(model, shop.tools(), middleware=[mw], system_prompt="You run a shop."), shop, mw


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_small_model_guesses_with_the_agents_tool_schemas(stub: Stub, mode: str) -> None:
    stub.reply = speculator_reply
    agent, shop, mw = speculative_agent(stub)
    out = agent.invoke(ask()) if mode == "invoke" else asyncio.run(agent.ainvoke(ask()))
    plain_shop = Shop(latency=0.05)
    plain = create_agent(scripted(shop_script(), delay=0.02), plain_shop.tools()).invoke(ask())
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert mw.report.adopted == 4
    assert len(stub.bodies) == 6  # asked at every model call
    expected = sorted(
        (convert_to_openai_tool(t) for t in Shop().tools()), key=lambda t: t["function"]["name"]
    )
    for body in stub.bodies:
        assert body["model"] == "gpt-4.1-mini"
        assert sorted(body["tools"], key=lambda t: t["function"]["name"]) == expected
        assert body["messages"][0]["role"] == "system"
        assert (
            "predict" in body["messages"][0]["content"]
            and "You run a shop." in body["messages"][0]["content"]
        )
    assert not any(w["early"] for w in shop.writes())


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "I think it will call get_order."},
        {"content": None, "tool_calls": [call("no_such_tool", {"x": 1})]},
        {
            "content": None,
            "tool_calls": [
                {**call("get_order", {}), "function": {"name": "get_order", "arguments": "{oops"}}
            ],
        },
    ],
    ids=["text", "unknown-tool", "bad-json"],
)
def test_junk_from_the_small_model_changes_nothing(stub: Stub, reply: dict[str, Any]) -> None:
    stub.reply = lambda body: reply
    shop = Shop(latency=0.02)
    mw = SpeculativeToolCalls(
        model_speculator("openai:gpt-4.1-mini", base_url=stub.url, api_key="k", max_retries=0),
        read_only=READS,
    )
    out = create_agent(scripted(shop_script(), delay=0.05), shop.tools(), middleware=[mw]).invoke(ask())
    plain = create_agent(scripted(shop_script(), delay=0.05), Shop(latency=0.02).tools()).invoke(ask())
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    assert mw.report.adopted == 0 and not any(e["early"] for e in shop.executions)


def test_a_failing_endpoint_is_a_speculator_error(stub: Stub) -> None:
    stub.status = 500
    mw = SpeculativeToolCalls(
        model_speculator("openai:gpt-4.1-mini", base_url=stub.url, api_key="k", max_retries=0),
        read_only=READS,
    )
    out = asyncio.run(
        create_agent(scripted(shop_script(), delay=0.2), Shop(latency=0.01).tools(), middleware=[mw]).ainvoke(
            ask()
        )
    )
    assert out["messages"][-1].content.startswith("Done.")
    errors = [e for e in mw.report.events if e["event"] == "speculator_error"]
    assert errors and errors[0]["reason"] == "raised" and "500" in errors[0]["error"]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_actor_and_speculator_both_through_the_openai_client(stub: Stub, mode: str) -> None:
    """Provider-random call ids from the endpoint itself. The actor's reply waits (a latch, not a
    race) until this turn's prefetch has started, when a speculating run is on."""
    from langchain_openai import ChatOpenAI

    live: dict[str, Any] = {"shop": None}

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if "predict" in body["messages"][0]["content"]:
            return speculator_reply(body)
        nxt = next_call(body["messages"])
        shop = live["shop"]
        if shop is not None and nxt is not None:
            turn = sum(1 for m in body["messages"] if m["role"] == "tool")
            deadline = time.monotonic() + 5
            while len([e for e in shop.reads() if e["early"]]) < min(2 * (turn + 1), 8):
                if time.monotonic() > deadline or turn >= 4:
                    break
                time.sleep(0.005)
        if nxt is None:
            return {
                "content": "All done: "
                + " | ".join(m["content"] for m in body["messages"] if m["role"] == "tool")
            }
        return {"content": None, "tool_calls": [nxt]}

    stub.reply = reply

    def agent(middleware: list[Any]) -> tuple[Any, Shop]:
        shop = Shop(latency=0.1)
        actor = ChatOpenAI(model="gpt-4.1", base_url=stub.url, api_key="k", max_retries=0)
        return create_agent(actor, shop.tools(), middleware=middleware), shop

    mw = SpeculativeToolCalls(
        model_speculator("openai:gpt-4.1-mini", k=2, base_url=stub.url, api_key="k", max_retries=0),
        read_only=READS,
    )
    spec_agent, shop = agent([mw])
    plain_agent, plain_shop = agent([])
    run = (lambda a: a.invoke(ask())) if mode == "invoke" else (lambda a: asyncio.run(a.ainvoke(ask())))
    live["shop"] = shop
    out = run(spec_agent)
    live["shop"] = None
    plain = run(plain_agent)
    assert transcript(out["messages"], canonical_ids=True) == transcript(
        plain["messages"], canonical_ids=True
    )
    ids = [c["id"] for m in out["messages"] if m.type == "ai" for c in m.tool_calls]
    assert len(set(ids)) == len(ids) == 5  # the endpoint's own ids, all different
    assert mw.report.adopted == 4
    assert shop.writes() == plain_shop.writes() and not any(w["early"] for w in shop.writes())


def test_no_model_is_built_at_import_or_construction() -> None:
    code = (
        "import os, sys; os.environ.pop('OPENAI_API_KEY', None)\n"
        "from langgraph_speculative.agents import model_speculator\n"
        "spec = model_speculator('openai:gpt-4.1-mini', k=3)\n"
        "print('langchain_openai' in sys.modules, repr(spec))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False model_speculator('openai:gpt-4.1-mini', k=3)"


def test_model_speculator_mistakes() -> None:
    with pytest.raises(TypeError, match="init_chat_model string"):
        model_speculator(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k=0"):
        model_speculator("openai:gpt-4.1-mini", k=0)
