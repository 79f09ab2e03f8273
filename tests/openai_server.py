"""An OpenAI-compatible chat-completions server on 127.0.0.1, for the real-client test tier.

The real provider clients (`langchain_openai.ChatOpenAI`, `init_chat_model("openai:...")`) talk
HTTP to it as they would to OpenAI: keep-alive connections in the client's pool, non-streamed
replies exactly as OpenAI shapes them (`refusal: null`, `usage`, random `chatcmpl-`/`call_` ids),
streamed SSE replies (content deltas, tool-call deltas split across chunks by index, id, name and
argument fragments, a usage chunk when `stream_options.include_usage`). What it answers is a
deterministic *script*: `script(request) -> reply`, so a test makes an actor model and a speculator
model that agree or disagree as it needs. Each model has its own latency, and requests are counted
per model.

    with OpenAIServer(script, latency={"big": 0.4, "small": 0.05}) as server:
        model = ChatOpenAI(model="big", base_url=server.base_url, api_key="test")
        ...
        assert server.count("small") == 3

Run it as a script to try a client against it by hand:
`python -m tests.openai_server --port 8765` (it echoes the last user message).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ("OpenAIServer", "Reply", "Request", "Script", "echo")


@dataclass(frozen=True)
class Request:
    """One chat-completions request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    body: dict[str, Any]

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools the request offers."""
        return [str((t.get("function") or {}).get("name")) for t in self.tools]

    @property
    def last_user(self) -> str:
        """The text of the last user message ('' if none)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return _text(m.get("content"))
        return ""

    @property
    def tool_results(self) -> list[str]:
        """The contents of the tool messages, in order."""
        return [_text(m.get("content")) for m in self.messages if m.get("role") == "tool"]

    @property
    def system(self) -> str:
        """The text of the system (or developer) messages, joined."""
        return "\n".join(
            _text(m.get("content")) for m in self.messages if m.get("role") in ("system", "developer")
        )

    @property
    def turns(self) -> int:
        """How many assistant messages the conversation already has."""
        return sum(m.get("role") == "assistant" for m in self.messages)


@dataclass
class Reply:
    """What the model answers: text, tool calls `(name, args)` or both."""

    content: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


Script = Callable[[Request], "Reply | str"]
"""Maps a request to the model's reply (a `Reply`, or a string for a text-only reply)."""


def echo(request: Request) -> Reply:
    """The default script: says back the last user message."""
    return Reply(f"You said: {request.last_user}")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OpenAIServer:
    """A chat-completions server on 127.0.0.1 (a free port), answering from `script`.

    Args:
        script: request -> reply. Default: `echo`.
        latency: seconds a model takes before it answers, by model name (e.g.
            `{"big": 0.4, "small": 0.05}`); `default_latency` for other models.
        chunk_delay: seconds between two chunks of a streamed reply.
    """

    def __init__(
        self,
        script: Script = echo,
        *,
        latency: Mapping[str, float] | None = None,
        default_latency: float = 0.0,
        chunk_delay: float = 0.0,
        port: int = 0,
    ) -> None:
        self.script = script
        self.latency = dict({"big": 0.4, "small": 0.05} if latency is None else latency)
        self.default_latency = default_latency
        self.chunk_delay = chunk_delay
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._streamed: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._httpd = _Quiet(("127.0.0.1", port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as `base_url=` to `ChatOpenAI` or `init_chat_model`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        """Serve on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="openai-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ counts

    def count(self, model: str | None = None) -> int:
        """Requests received for `model` (all models when None)."""
        with self._lock:
            return sum(self._counts.values()) if model is None else self._counts[model]

    def streamed(self, model: str | None = None) -> int:
        """Streamed requests received for `model` (all models when None)."""
        with self._lock:
            return sum(self._streamed.values()) if model is None else self._streamed[model]

    def counts(self) -> dict[str, int]:
        """Requests received, by model."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forget the counts and the recorded requests."""
        with self._lock:
            self._counts.clear()
            self._streamed.clear()
            self.requests.clear()
            self.errors.clear()

    # ------------------------------------------------------------------ answering

    def _record(self, request: Request) -> None:
        with self._lock:
            self._counts[request.model] += 1
            if request.stream:
                self._streamed[request.model] += 1
            self.requests.append(request)

    def answer(self, request: Request) -> Reply:
        """The script's reply to `request`, as a `Reply`."""
        reply = self.script(request)
        if isinstance(reply, str):
            return Reply(reply)
        if not isinstance(reply, Reply):
            raise TypeError(f"the script returned {type(reply).__name__}; return a Reply or a string")
        return reply

    def completion(self, request: Request, reply: Reply) -> dict[str, Any]:
        """A non-streamed chat completion, shaped exactly as OpenAI sends one."""
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(dict(args))},
            }
            for name, args in reply.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content or (None if calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": self._usage(request, reply),
            "service_tier": "default",
            "system_fingerprint": "fp_local",
        }

    def chunks(self, request: Request, reply: Reply) -> list[dict[str, Any]]:
        """A streamed chat completion's chunks, shaped as OpenAI streams them."""
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def chunk(
            delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
        ) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "service_tier": "default",
                "system_fingerprint": "fp_local",
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if usage is not None or (request.body.get("stream_options") or {}).get("include_usage"):
                out["usage"] = usage
            return out

        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        words = reply.content.split(" ")
        if reply.content:
            out += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        for index, (name, args) in enumerate(reply.tool_calls):
            arguments = json.dumps(dict(args))
            cut = [arguments[: len(arguments) // 3], arguments[len(arguments) // 3 : 2 * len(arguments) // 3]]
            cut.append(arguments[2 * len(arguments) // 3 :])
            out.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": f"call_{uuid.uuid4().hex[:24]}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            out += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                for part in cut
                if part
            ]
        out.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if (request.body.get("stream_options") or {}).get("include_usage"):
            out.append(chunk(None, usage=self._usage(request, reply)))
        return out

    def _usage(self, request: Request, reply: Reply) -> dict[str, Any]:
        prompt = sum(_tokens(_text(m.get("content"))) for m in request.messages)
        completion = _tokens(reply.content) + sum(_tokens(json.dumps(dict(a))) for _, a in reply.tool_calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def wait(self, request: Request) -> None:
        """Sleep the model's latency."""
        time.sleep(self.latency.get(request.model, self.default_latency))


class _Quiet(ThreadingHTTPServer):
    """A threading HTTP server that does not print a client closing its connection."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: connections stay in the client's pool

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                models = sorted(server.latency)
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
            else:
                self._json(
                    404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
                )

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._json(
                    404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
                )
                return
            try:
                body = json.loads(raw or b"{}")
                request = Request(
                    model=str(body.get("model", "")),
                    messages=list(body.get("messages") or []),
                    tools=list(body.get("tools") or []),
                    stream=bool(body.get("stream")),
                    body=body,
                )
                server._record(request)
                reply = server.answer(request)
            except Exception as exc:  # a broken script or request: a 500 the client reports
                with server._lock:
                    server.errors.append(f"{type(exc).__name__}: {exc}")
                self._json(
                    500, {"error": {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}}
                )
                return
            try:
                server.wait(request)
                if not request.stream:
                    self._json(200, server.completion(request, reply))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, chunk in enumerate(server.chunks(request, reply)):
                    if i and server.chunk_delay:
                        time.sleep(server.chunk_delay)
                    self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a cancelled call)
                self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the echo script until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    args = parser.parse_args(argv)
    server = OpenAIServer(echo, latency={}, default_latency=args.latency, port=args.port)
    print(f"serving on {server.base_url} (Ctrl-C stops)", flush=True)
    try:
        server.start()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
