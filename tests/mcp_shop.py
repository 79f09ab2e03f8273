"""A real MCP server (the `mcp` package's FastMCP, streamable HTTP on 127.0.0.1) for the agent tests
and `benchmarks/stacks.py`: two reads that declare `readOnlyHint=True` (`find_user`, `get_order`)
and a write that does not (`issue_refund`), each taking `--latency` seconds. The server counts every
call it runs; `GET /calls` answers them as JSON (`{"issue_refund": 1, ...}`).

    python tests/mcp_shop.py --port 8765 --latency 0.3

`McpShop` starts it in a subprocess on a free port and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

USERS = {"ann@example.com": "ann_1", "bob@example.com": "bob_2"}
ORDERS = {
    "A1": {"order_id": "A1", "user_id": "ann_1", "status": "delivered", "total": 30},
    "B2": {"order_id": "B2", "user_id": "bob_2", "status": "delivered", "total": 12},
}
for _i in range(3, 40):  # more customers, one order each (the benchmark's conversations)
    USERS[f"user{_i}@example.com"] = f"user_{_i}"
    ORDERS[f"O{_i}"] = {
        "order_id": f"O{_i}",
        "user_id": f"user_{_i}",
        "status": "delivered",
        "total": 10 + _i,
    }


def serve(port: int, latency: float) -> None:
    """Run the server (blocks)."""
    from mcp.server.fastmcp import FastMCP
    from mcp.types import ToolAnnotations
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    calls: Counter[str] = Counter()
    app = FastMCP("shop", host="127.0.0.1", port=port, log_level="WARNING", stateless_http=True)
    reads = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @app.tool(annotations=reads)
    async def find_user(email: str) -> str:
        """Find a customer's user id by email."""
        calls["find_user"] += 1
        await asyncio.sleep(latency)
        return USERS.get(email, "not found")

    @app.tool(annotations=reads)
    async def get_order(order_id: str) -> str:
        """Read an order."""
        calls["get_order"] += 1
        await asyncio.sleep(latency)
        return json.dumps(ORDERS.get(order_id, {"error": "no such order"}), sort_keys=True)

    @app.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    async def issue_refund(order_id: str, amount: int) -> str:
        """Refund an order (a payment: never run it early)."""
        calls["issue_refund"] += 1
        await asyncio.sleep(latency)
        return f"refunded {amount} on {order_id}"

    @app.custom_route("/calls", methods=["GET"])
    async def counts(request: Request) -> JSONResponse:
        return JSONResponse(dict(calls))

    app.run(transport="streamable-http")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class McpShop:
    """The shop server in a subprocess on a free loopback port: `url`, `calls()`, `close()`."""

    def __init__(self, latency: float = 0.3, timeout: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        here = os.path.abspath(__file__)
        self.proc = subprocess.Popen(
            [sys.executable, here, "--port", str(self.port), "--latency", str(latency)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.calls()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.close()
                    raise RuntimeError(f"the MCP shop server did not start: {err[-2000:]}") from None
                time.sleep(0.05)

    def calls(self) -> dict[str, int]:
        """How many times the server ran each tool so far."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/calls", timeout=5) as r:
            return dict(json.loads(r.read()))

    def connection(self) -> dict[str, Any]:
        """The `langchain-mcp-adapters` connection to it."""
        return {"transport": "streamable_http", "url": self.url}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> McpShop:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--latency", type=float, default=0.3)
    a = p.parse_args()
    serve(a.port, a.latency)
