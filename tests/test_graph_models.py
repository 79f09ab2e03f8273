"""The ready-made graphs with chat players through the real client stack: `ChatOpenAI` (built from a
spec string by `init_chat_model`) talking HTTP to a tiny OpenAI-compatible server on 127.0.0.1.

The server here is deliberately minimal (non-streamed chat completions, a per-model reply policy and
latency, a request log); a fuller one lives elsewhere and can replace it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("langchain_openai")
chess = pytest.importorskip("chess")

from langgraph_speculative._cli import main as cli  # noqa: E402
from langgraph_speculative_graphs._common import SpecError, chat_model, parse_chat_spec, redact  # noqa: E402

LEGAL = re.compile(r"Valid moves: (.*)$", re.M)


def _reply(model: str, prompt: str) -> str:
    """What each model of the server answers: `first` plays the first legal move it is shown (and
    `guesser` guesses the first k), `nonsense` never names a legal move."""
    legal = LEGAL.search(prompt)
    moves = re.findall(r"\[([a-h][1-8][a-h][1-8][qrbn]?)\]", legal.group(1)) if legal else []
    if model == "nonsense":
        return "I would rather not say."
    asked = re.search(r"List the (\d+) moves", prompt)
    if asked:
        return " ".join(f"[{m}]" for m in moves[: int(asked.group(1))])
    return f"I play [{moves[0]}]." if moves else "No moves."


@dataclass
class OpenAIServer:
    """A loopback OpenAI-compatible chat-completions server (non-streamed replies only)."""

    latency: dict[str, float] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def spec(self, model: str, **options: str) -> str:
        opts = {"base_url": self.url, "api_key": "sk-loopback", "max_retries": "0", **options}
        return f"openai:{model}," + ",".join(f"{k}={v}" for k, v in opts.items())


def _handler(state: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client pools its connections

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append({**body, "authorization": self.headers.get("Authorization")})
            if self.path != "/v1/chat/completions" or body.get("stream"):
                self.send_error(404 if self.path != "/v1/chat/completions" else 400)
                return
            model = body["model"]
            prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
            time.sleep(state.latency.get(model, 0.0))
            reply = _reply(model, prompt)
            data = json.dumps(
                {
                    "id": "chatcmpl-loopback",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": reply,
                                "refusal": None,
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # a cancelled branch's call: the client left
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a cancelled call's connection, closed
            return
        super().handle_error(request, client_address)


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the spec's api_key= is the only key
    state = OpenAIServer(latency={"first": 0.15, "nonsense": 0.0, "guesser": 0.02})
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _one_line_err(err: str) -> None:
    assert "Traceback" not in err, err


def test_chess_compare_with_chat_players_plays_both_games_through_one_client(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's main job with chat players: both games (sequential, then speculative) run, are
    identical, and speculation adopts branch moves (the speculator's first guess is the move)."""
    player = openai_server.spec("first")
    speculator = openai_server.spec("guesser", model_kwargs="{}", temperature="0")
    argv = ["chess", "--compare", "--json", "--moves", "6", "--white", player, "--speculator", speculator]
    assert cli(argv) == 0
    captured = capsys.readouterr()
    _one_line_err(captured.err)
    out = json.loads(captured.out)
    assert out["identical"] is True and out["status"] == "move_limit" and out["plies"] == 6
    assert out["moves"][:2] == ["g1h3", "g8h6"]  # python-chess lists these first: the policy's moves
    assert out["hits"] >= 1 and out["adopted"] >= 1
    assert out["players"]["white"] == f"{redact(player)} (chat model)"
    assert "sk-loopback" not in captured.out + captured.err  # a key in a spec is never printed
    requests = openai_server.requests
    assert {r["authorization"] for r in requests} == {"Bearer sk-loopback"}  # the spec's api_key=
    guesser = [r for r in requests if r["model"] == "guesser"]
    assert guesser and all(r["temperature"] == 0 for r in guesser)  # a number, not the string "0"
    assert all(r["model"] in ("first", "guesser") for r in requests)


def test_a_player_that_never_gives_a_legal_move_forfeits_and_the_command_says_so(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nonsense = openai_server.spec("nonsense")
    argv = ["chess", "--moves", "4", "--white", nonsense, "--black", openai_server.spec("first")]
    argv += ["--speculator", openai_server.spec("guesser")]
    assert cli(argv) == 0
    text = capsys.readouterr().out
    assert "status forfeit: white gave no legal move after retries, 0 plies" in text
    assert "status playing" not in text
    asked = [r for r in openai_server.requests if r["model"] == "nonsense"]
    assert len(asked) == 3  # MOVE_RETRIES on the main run (branches play black), each with the dialogue
    assert [len(r["messages"]) for r in asked] == [1, 3, 5]
    assert cli([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "forfeit: white gave no legal move after retries"


def test_an_api_key_in_the_spec_is_accepted_everywhere_without_the_environment_variable(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One parser of specs: chess, cfs and eval hotpotqa take `api_key=` the same way."""
    import langgraph_speculative_graphs.cfs._run as cfs_run
    import langgraph_speculative_graphs.chess._run as chess_run

    spec = openai_server.spec("first")
    monkeypatch.setattr(chess_run, "_games", lambda *a: (_ for _ in ()).throw(AssertionError("checked")))
    with pytest.raises(AssertionError, match="checked"):  # the checks passed; the game would start
        cli(["chess", "--white", spec])
    monkeypatch.setattr(cfs_run, "compare", lambda *a, **k: (_ for _ in ()).throw(AssertionError("checked")))
    with pytest.raises(AssertionError, match="checked"):
        cli(["cfs", "--backend", "sim", "--actor", spec])
    # without a key anywhere, each says the two ways to give one, in one line
    keyless = spec.replace(",api_key=sk-loopback", "")
    for argv in (["chess", "--white", keyless], ["eval", "hotpotqa", "--speculator", keyless]):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "needs an API key: export OPENAI_API_KEY=... or add ,api_key=..." in err[0]


@pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="needs the hotpotqa extra")
def test_eval_hotpotqa_with_a_chat_speculator_twice_in_one_process(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`api_key=` and `model_kwargs={...}` through the one spec parser; two evaluations in one process
    share LangChain's client (pooled connections on one loop that is never closed)."""
    spec = openai_server.spec("guesser", model_kwargs='{"user": "eval"}')
    for _ in range(2):
        assert cli(["eval", "hotpotqa", "--json", "--speculator", spec]) == 0
        captured = capsys.readouterr()
        _one_line_err(captured.err)
        out = json.loads(captured.out)
        assert out["runs"] == 50 and f"chat model {redact(spec)}," in out["speculator"]
        assert "sk-loopback" not in captured.out + captured.err and "api_key=***" in out["speculator"]
        assert out["rows"]["chat"]["top1_acc"] == 0.0  # the server guesses chess moves: no action parses
        assert out["rows"]["combined"] == out["rows"]["rules"] and out["chat_empty"] == out["steps"]
    assert len(openai_server.requests) == 2 * out["steps"]
    assert all(r["user"] == "eval" for r in openai_server.requests)  # model_kwargs reached the body


def test_model_kwargs_and_literal_options_reach_chat_openai(openai_server: OpenAIServer) -> None:
    model = chat_model(openai_server.spec("first", model_kwargs='{"user": "u1"}', temperature="0.5"))
    assert model.model_kwargs == {"user": "u1"} and model.temperature == 0.5 and model.max_retries == 0
    reply = model.invoke("Valid moves: [e2e4], [d2d4]")
    assert reply.content == "I play [e2e4]."
    assert asyncio.run(model.ainvoke("Valid moves: [d2d4]")).content == "I play [d2d4]."
    assert openai_server.requests[-1]["user"] == "u1"
    with pytest.raises(
        SpecError, match=r"'openai:x,model_kwargs=3,api_key=\*\*\*': the model refused its opt"
    ):
        chat_model("openai:x,model_kwargs=3,api_key=k")  # one line naming the spec, no traceback
    with pytest.raises(SpecError, match="is not key=value"):
        parse_chat_spec("openai:x,temperature")
    with pytest.raises(SpecError, match="given twice"):
        parse_chat_spec("openai:x,temperature=0,temperature=1")


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("openai:gpt-5,reasoning_effort=high", {"reasoning_effort": "high"}),
        (
            "openai:gpt-5,temperature=0,max_retries=2,streaming=true",
            {"temperature": 0, "max_retries": 2, "streaming": True},
        ),
        (
            'openai:gpt-5,model_kwargs={"a": 1, "b": [1, 2]},stop=["x,y"]',
            {"model_kwargs": {"a": 1, "b": [1, 2]}, "stop": ["x,y"]},
        ),
        (
            "openai:gpt-5,api_key=12345,base_url=http://127.0.0.1:9/v1",
            {"api_key": "12345", "base_url": "http://127.0.0.1:9/v1"},
        ),
        ("openai:gpt-5,timeout=None,seed=7,", {"timeout": None, "seed": 7}),
    ],
)
def test_spec_options_are_literals_where_they_look_like_one(spec: str, options: dict[str, Any]) -> None:
    assert parse_chat_spec(spec) == ("openai:gpt-5", options)
