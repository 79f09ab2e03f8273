"""LangSmith: branch work is traced as child runs of the speculative node.

The real `langsmith` client posts to a collector this test starts on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypedDict

import pytest
from langchain_core.tracers.langchain import LangChainTracer
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import speculate


class _Collector(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]] = []
    patches: dict[str, dict[str, Any]] = {}

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._ok()

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path.rstrip("/").endswith("/runs"):
            self.posts.append(body)
        elif self.path.rstrip("/").endswith("/runs/batch"):
            self.posts.extend(body.get("post", []))
            for p in body.get("patch", []):
                self.patches[p["id"]] = p
        self._ok()

    def do_PATCH(self) -> None:  # noqa: N802
        body = self._body()
        self.patches[self.path.rstrip("/").rsplit("/", 1)[-1]] = body
        self._ok()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _Collector.posts, _Collector.patches = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    try:
        yield url
    finally:
        server.shutdown()


class S(TypedDict):
    n: int


async def slow(state: S) -> dict[str, int]:
    # b (n == 1) is launched early on a's branch; it must still be running when the main
    # run adopts it, or b has no speculation (by design) and only a's branches exist
    await asyncio.sleep(0.05 if state["n"] != 1 else 0.3)
    return {"n": state["n"] + 1}


async def guesses(state: S) -> list[dict[str, int]]:
    return [{"n": state["n"] + 1}, {"n": 999}]


def test_branches_are_child_runs_with_outcomes(collector: str) -> None:
    from langsmith import Client

    client = Client(api_url=collector, api_key="test-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="speculative-test")
    b = StateGraph(S)
    for name in ("a", "b", "c"):
        b.add_node(name, slow)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", END)
    graph = speculate(b, {"a": guesses, "b": guesses}).compile()
    assert asyncio.run(graph.ainvoke({"n": 0}, {"callbacks": [tracer]})) == {"n": 3}
    tracer.wait_for_futures()
    client.flush()

    runs = {r["id"]: r for r in _Collector.posts}
    branches = [r for r in runs.values() if r.get("name", "").endswith(":speculative_branch")]
    assert len(branches) == 4  # two guesses at a, two at b
    for r in branches:
        meta = r["extra"]["metadata"]
        assert meta["speculative"] is True and meta["spec_node"] in ("a", "b")
        assert "spec_guess" in meta
        parent = runs[r["parent_run_id"]]
        assert parent["name"] == meta["spec_node"]  # child of the speculative node's run
    outcomes = sorted(_Collector.patches[r["id"]]["extra"]["metadata"]["spec_outcome"] for r in branches)
    assert outcomes == ["hit", "hit", "miss", "miss"]


def test_lossy_writes_are_traced_child_runs(collector: str) -> None:
    from langsmith import Client

    from langgraph_speculative.lossy import LossyNode

    client = Client(api_url=collector, api_key="test-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="lossy-test")

    async def actor(state: S) -> dict[str, int]:
        await asyncio.sleep(0.03)
        return {"n": 100}

    def step(state: S) -> dict[str, int]:
        return {"n": state["n"] + 1}

    tune = LossyNode(actor, speculator=step, name="tune")
    b = StateGraph(S)
    b.add_node("tune", tune)

    async def wait(state: S) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {}

    b.add_node("wait", wait)
    b.add_edge(START, "tune")
    b.add_edge("tune", "wait")
    b.add_conditional_edges("wait", lambda s: "tune" if s["n"] < 100 else END, ["tune", END])

    async def run() -> dict[str, Any]:
        async with tune:
            return await b.compile().ainvoke({"n": 0}, {"callbacks": [tracer], "recursion_limit": 100})

    assert asyncio.run(run())["n"] == 100  # the actor's write landed last
    tracer.wait_for_futures()
    client.flush()
    runs = {r["id"]: r for r in _Collector.posts}
    lossy = [r for r in runs.values() if r.get("name") in ("lossy_actor", "lossy_speculator")]
    assert {r["name"] for r in lossy} == {"lossy_actor", "lossy_speculator"}
    for r in lossy:
        assert r["extra"]["metadata"]["lossy"] is True
        assert runs[r["parent_run_id"]]["name"] == "tune"  # child runs of the node
    applied = [e["source"] for e in tune.report.events if e["event"] == "lossy_applied"]
    assert applied[-1] == "actor" and "speculator" in applied
