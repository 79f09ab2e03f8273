"""ReAct HotpotQA: wiki semantics, the live backend against a loopback stub, lossless, the eval command."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from graphs.hotpotqa._graph import ReplayReAct, make_graph, session_after
from graphs.hotpotqa._wiki import LocalWiki, WikipediaAPI, WikiSession, parse_action
from langgraph_speculative._cli import main as cli

RUNS = "graphs/hotpotqa/data/react_trajectories_dev.json"
WIKI = LocalWiki()


def test_local_wiki_exact_hit_similar_and_lookup_cursor() -> None:
    s = WikiSession(WIKI)
    obs = s.step("Search", "velvetpark")  # titles match case-insensitively
    assert obs.startswith("Velvetpark: Dyke Culture in Bloom")
    assert s.step("Lookup", "lesbian").startswith("(Result 1 / 2) ")
    assert s.step("Lookup", "lesbian").startswith("(Result 2 / 2) ")
    assert s.step("Lookup", "lesbian") == "No more results."
    miss = s.step("Search", "SAS")
    assert miss.startswith("Could not find [SAS]. Similar: [") and "Special Air Service" in miss
    assert s.step("Lookup", "x") == "No page is open: Search[entity] first."
    assert s.step("Finish", "1941") == "Episode finished."
    assert parse_action("Search[Pete Doherty]") == ("Search", "Pete Doherty")
    assert parse_action("search Pete") is None


def test_session_after_rebuilds_the_lookup_cursor() -> None:
    s = WikiSession(WIKI)
    steps = []
    for tool, arg in [("Search", "Velvetpark"), ("Lookup", "lesbian")]:
        steps.append({"thought": "", "tool": tool, "arg": arg, "observation": s.step(tool, arg)})
    assert session_after(WIKI, steps).observe("Lookup", "lesbian") == s.observe("Lookup", "lesbian")


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        if q.get("list") == "search":
            body = {"query": {"search": [{"title": "Pete Doherty"}, {"title": "The Libertines"}]}}
        elif q.get("titles", "").lower() == "pete doherty":
            body = {
                "query": {
                    "pages": {
                        "1": {
                            "title": "Pete Doherty",
                            "extract": "Peter Doherty is a musician. He formed The Libertines.\nMore text.",
                        }
                    }
                }
            }
        else:
            body = {"query": {"pages": {"-1": {"title": q.get("titles"), "missing": ""}}}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_live_backend_against_a_loopback_stub() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = WikipediaAPI(base_url=f"http://127.0.0.1:{server.server_port}/w/api.php")
        s = WikiSession(api)
        assert s.step("Search", "Pete Doherty") == "Peter Doherty is a musician. He formed The Libertines."
        assert s.step("Lookup", "Libertines") == "(Result 1 / 1) He formed The Libertines."
        assert (
            s.step("Search", "Pete") == "Could not find [Pete]. Similar: ['Pete Doherty', 'The Libertines']"
        )
    finally:
        server.shutdown()
        thread.join()


with open(RUNS) as f:
    RECORDED = json.load(f)


def _play(run: dict[str, Any], speculative: bool, latency: float, delay: float) -> dict[str, Any]:
    builder = make_graph(
        agent_model=ReplayReAct(steps=run["steps"], delay=delay),
        backend=WIKI,
        latency=latency,
        speculative=speculative,
    )
    graph = builder.compile(checkpointer=InMemorySaver())
    state = {"question": run["question"], "steps": [], "pending": None, "answer": None, "max_steps": 8}
    return asyncio.run(graph.ainvoke(state, {"configurable": {"thread_id": "q"}}))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run=st.sampled_from(RECORDED),
    latency=st.sampled_from([0.0, 0.01, 0.03]),
    delay=st.sampled_from([0.0, 0.02]),
)
def test_react_graph_is_lossless(run: dict[str, Any], latency: float, delay: float) -> None:
    assert _play(run, True, latency, delay) == _play(run, False, latency, delay)


def test_eval_command_on_dev_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["eval", "hotpotqa", "--trajectories", RUNS, "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 50 and out["steps"] == 184
    assert 0 < out["top1_acc"] <= out["topk_acc"] <= 1
    assert set(out["per_tool"]) == {"Search", "Lookup", "Finish"}
    assert cli(["eval", "hotpotqa", "--trajectories", "missing.json"]) == 2
    assert "not found" in capsys.readouterr().err
