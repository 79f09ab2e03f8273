"""LangGraph Server serving speculative graphs, as LangGraph users deploy them.

Each server is a real `langgraph dev` (the in-memory runtime, its blocking-call guard on) on
127.0.0.1 and a free port, started by these tests with `--no-browser --no-reload` and a temp
config, driven with `langgraph-sdk`. Every speculative graph is compared with the plain graph
served beside it: answers, thread state, history, two turns on a thread, concurrent runs,
the store, and what the server's own saver holds (no thread but the ones the API made).
Speculation must adopt (the custom stream's events) with no branch error; the timing ratio
is printed, not asserted.

Needs the `server` extra; skipped without it, except in CI or with LGS_REQUIRE_SERVER set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import _pg_database

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = str(ROOT / "examples" / "quickstart.py")
GRAPHS = str(ROOT / "tests" / "server_graphs.py")
SPECULATIVE = {  # graph id -> how it is written
    "spec": "module-level compiled, no checkpointer",
    "builder": "uncompiled builder",
    "factory": "factory(config) -> compiled",
    "context": "async context manager factory -> builder",
}
QUESTIONS = ["What is the capital of Japan?", "And Kenya?"]
ERRORS = {"branch_error", "internal_error", "speculator_error", "invalid_guess"}
BAD_LOG = ("Traceback", "BlockingError", "Exception in callback", "Heads up!", "Task was destroyed")


def _need_server() -> None:
    missing = [
        m for m in ("langgraph_cli", "langgraph_api", "langgraph_sdk") if not importlib.util.find_spec(m)
    ]
    if missing or sys.version_info < (3, 11):
        why = f"missing {missing}" if missing else "needs Python >= 3.11"
        msg = f"LangGraph Server tests need the server extra (pip install -e '.[server]'): {why}"
        if os.environ.get("CI") or os.environ.get("LGS_REQUIRE_SERVER"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `langgraph dev` process in `workdir` (its saver's files go to workdir/.langgraph_api)."""

    def __init__(self, workdir: Path, graphs: dict[str, str], *, jobs: int = 4, **config: Any) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        (workdir / "langgraph.json").write_text(
            json.dumps({"dependencies": ["."], "graphs": graphs, **config})
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
        }
        command = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--n-jobs-per-worker", str(jobs)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "--config", "langgraph.json"],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends everything it started
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ok", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"langgraph dev did not answer /ok in {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Ctrl-C (the server flushes its saver to disk), then SIGKILL to the group if it hangs."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def _start(request: pytest.FixtureRequest, workdir: Path, graphs: dict[str, str], **kw: Any) -> Server:
    _need_server()
    server = Server(workdir, graphs, **kw)
    request.addfinalizer(server.stop)  # even when the start fails
    server.wait_ready()
    return server


def _test_graphs() -> dict[str, str]:
    return {
        "plain": f"{QUICKSTART}:plain_graph",
        "spec": f"{QUICKSTART}:graph",
        "builder": f"{GRAPHS}:builder",
        "factory": f"{GRAPHS}:make_graph",
        "context": f"{GRAPHS}:graph_context",
        "depth1": f"{GRAPHS}:depth1",
        "store_plain": f"{GRAPHS}:store_plain",
        "store_spec": f"{GRAPHS}:store_spec",
    }


NEEDS = {"chess": "chess", "hotpotqa": "bm25s"}  # a ready-made graph -> what its extra brings


def _ready_made() -> dict[str, str]:
    """The repository's langgraph.json, its relative paths made absolute (without the graphs
    whose extra is not installed, except in CI)."""
    graphs = json.loads((ROOT / "langgraph.json").read_text())["graphs"]
    required = os.environ.get("CI") or os.environ.get("LGS_REQUIRE_SERVER")
    return {
        k: str(ROOT / v[2:]) if v.startswith("./") else v
        for k, v in graphs.items()
        if required or k not in NEEDS or importlib.util.find_spec(NEEDS[k])
    }


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server: the test graphs and the repository's ready-made ones, 4 jobs."""
    srv = _start(request, tmp_path_factory.mktemp("server"), {**_test_graphs(), **_ready_made()})
    yield srv
    srv.stop()


def _client(server: Server) -> Any:
    from langgraph_sdk import get_client

    return get_client(url=server.url, timeout=120)


def _human(text: str) -> dict[str, Any]:
    return {"messages": [{"type": "human", "content": text}]}


_DROP = {"id", "checkpoint_id", "thread_id", "run_id", "assistant_id", "graph_id", "created_at", "checkpoint"}
_DROP.add("speculative")  # the ready-made assistants' switch, which the server copies into metadata


def _clean(value: Any) -> Any:
    """`value` without what differs between two runs of one graph: ids and times."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in _DROP and not k.startswith("langgraph_")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _shape(state: dict[str, Any]) -> dict[str, Any]:
    """What must be equal in a plain and a speculative thread state (a history entry)."""
    meta = state.get("metadata") or {}
    return {
        "values": _clean(state["values"]),
        "next": state["next"],
        "metadata": _clean(meta),  # step, source, parents, what the server adds from the run's config
        "tasks": [
            _clean({k: t.get(k) for k in ("name", "error", "interrupts", "result")}) for t in state["tasks"]
        ],
        "interrupts": _clean(state.get("interrupts") or []),
    }


async def _turn(client: Any, thread: str | None, graph: str, payload: Any, **kw: Any) -> dict[str, Any]:
    """One run, streamed: its last values, its speculation events, its timings."""
    values, events = None, []
    t0 = time.perf_counter()
    started = None
    async for part in client.runs.stream(
        thread, graph, input=payload, stream_mode=["values", "custom"], **kw
    ):
        if part.event == "metadata":
            started = time.perf_counter()
        elif part.event == "values":
            values = part.data
        elif part.event == "custom":
            events.append(part.data)
        elif part.event == "error":
            pytest.fail(f"{graph}: the run failed: {part.data}")
    end = time.perf_counter()
    return {"values": values, "events": events, "sdk_s": end - t0, "run_s": end - (started or t0)}


async def _conversation(client: Any, graph: str, texts: list[str], **kw: Any) -> dict[str, Any]:
    thread = (await client.threads.create())["thread_id"]
    turns = [await _turn(client, thread, graph, _human(t), **kw) for t in texts]
    state = await client.threads.get_state(thread)
    history = await client.threads.get_history(thread, limit=1000)
    return {"thread": thread, "turns": turns, "state": state, "history": history}


def _events(conv: dict[str, Any]) -> list[str]:
    return [e["event"] for t in conv["turns"] for e in t["events"]]


def _assert_same(plain: dict[str, Any], spec: dict[str, Any], label: str) -> None:
    assert [_clean(t["values"]) for t in spec["turns"]] == [_clean(t["values"]) for t in plain["turns"]], (
        label
    )
    assert _shape(spec["state"]) == _shape(plain["state"]), label
    assert len(spec["history"]) == len(plain["history"]), label
    assert [_shape(h) for h in spec["history"]] == [_shape(h) for h in plain["history"]], label


def _assert_adopts(conv: dict[str, Any], label: str, shed_ok: bool = False) -> None:
    adopted = 0
    for i, t in enumerate(conv["turns"]):
        kinds = [e["event"] for e in t["events"]]
        adopted += "adopted" in kinds
        # shed_ok: under load a turn may run as plain (no event) or shed its branches mid-turn
        assert "adopted" in kinds or (shed_ok and (not kinds or "shed" in kinds)), (
            f"{label}, turn {i + 1}: nothing adopted: {kinds}"
        )
        assert not ERRORS & set(kinds), (
            f"{label}, turn {i + 1}: {[e for e in t['events'] if e['event'] in ERRORS]}"
        )
        assert all(e["type"] == "speculation" and e["node"] for e in t["events"])
    assert adopted, f"{label}: no turn adopted anything"


# ---------------------------------------------------------------- the quickstart graph, four ways


async def test_module_level_graph_brings_no_checkpointer() -> None:
    """What the server's loader refuses ("Heads up! ... custom checkpointer") is not there."""
    from . import server_graphs

    graphs = (server_graphs.qs.graph, server_graphs.depth1, server_graphs.store_spec)
    for g in graphs:
        assert g.checkpointer is None and g.store is None
    assert server_graphs.builder.compile().checkpointer is None
    out = await server_graphs.qs.graph.ainvoke(_human(QUESTIONS[0]))  # a run without a checkpointer...
    assert out["fact"] == "The capital of Japan is Tokyo."
    assert server_graphs.qs.graph.last_report.adopted >= 1
    for g in graphs:  # ...leaves nothing attached either (its private saver was the run's only)
        assert g.checkpointer is None and g.store is None


async def test_served_graphs_load(server: Server) -> None:
    client = _client(server)
    for graph in [*_test_graphs(), *_ready_made()]:
        found = await client.assistants.search(graph_id=graph)
        assert found, f"{graph} was not loaded:\n{server.log()[-3000:]}"
    assert "Heads up!" not in server.log()


@pytest.mark.parametrize("graph", list(SPECULATIVE))
async def test_same_answers_state_history_and_memory_as_plain(server: Server, graph: str) -> None:
    client = _client(server)
    plain = await _conversation(client, "plain", QUESTIONS)
    spec = await _conversation(client, graph, QUESTIONS)
    label = f"{graph} ({SPECULATIVE[graph]})"
    _assert_same(plain, spec, label)
    messages = [m["content"] for m in spec["state"]["values"]["messages"]]
    assert messages == [
        QUESTIONS[0],
        "The capital of Japan is Tokyo.",
        QUESTIONS[1],
        "The capital of Kenya is Nairobi.",
    ]
    assert len(spec["history"]) == 10  # 5 checkpoints a turn, as plain: nothing renamed, nothing lost
    _assert_adopts(spec, label)
    assert not plain["turns"][0]["events"]


async def test_store_graph_same_as_plain(server: Server) -> None:
    """The server's store, lent at run time: reads on branches, writes on the main run only."""
    client = _client(server)
    texts = ["What is the capital of Peru?", "Peru again?", "And Japan?"]
    convs = {g: await _conversation(client, g, texts) for g in ("store_plain", "store_spec")}
    plain, spec = convs["store_plain"], convs["store_spec"]
    _assert_same(plain, spec, "store_spec")
    items = {}
    for graph, conv in convs.items():
        found = await client.store.search_items(("facts", graph, conv["thread"]), limit=100)
        items[graph] = sorted((i["key"], json.dumps(i["value"], sort_keys=True)) for i in found["items"])
    assert items["store_spec"] == items["store_plain"] and len(items["store_plain"]) == 2
    assert "adopted" in _events(spec) and not ERRORS & set(_events(spec))


async def test_concurrent_runs(server: Server) -> None:
    """--n-jobs-per-worker 4: plain and speculative conversations at once, each as when alone."""
    client = _client(server)
    sets = [QUESTIONS, ["Tell me about Peru", "And France?"], ["Kenya?", "What is the capital of Japan?"]]
    jobs = [_conversation(client, g, texts) for texts in sets for g in ("plain", "spec", "builder")]
    done = await asyncio.gather(*jobs)
    for i in range(len(sets)):
        plain, *specs = done[3 * i : 3 * i + 3]
        for graph, spec in zip(("spec", "builder"), specs):
            _assert_same(plain, spec, f"{graph}, questions {sets[i]}")
            # nine conversations at once may keep the server busy: a turn that starts then runs as
            # the plain graph (shed: no event on the stream); the others speculate and adopt
            _assert_adopts(spec, graph, shed_ok=True)


async def test_stateless_runs_time_travel_and_other_streams(server: Server) -> None:
    client = _client(server)
    for graph in ("plain", "spec"):
        out = await client.runs.wait(None, graph, input=_human("What is the capital of Peru?"))
        assert out["messages"][-1]["content"] == "The capital of Peru is Lima.", graph
    forks = {}
    for graph in ("plain", "spec"):  # fork a thread from the end of its first turn
        conv = await _conversation(client, graph, QUESTIONS)
        first = [h for h in conv["history"] if not h["next"]][-1]
        fork = await _turn(
            client, conv["thread"], graph, _human("Peru?"), checkpoint_id=first["checkpoint"]["checkpoint_id"]
        )
        history = await client.threads.get_history(conv["thread"], limit=1000)
        forks[graph] = (_clean(fork["values"]), [_shape(h) for h in history])
    assert forks["spec"] == forks["plain"]
    finals = {}
    for graph in ("plain", "spec"):  # astream_events and the updates/debug streams
        thread = (await client.threads.create())["thread_id"]
        modes = ["events", "updates", "debug", "messages-tuple", "custom"]
        kinds = set()
        async for part in client.runs.stream(thread, graph, input=_human(QUESTIONS[0]), stream_mode=modes):
            assert part.event != "error", part.data
            kinds.add(part.event.split("|")[0])
        finals[graph] = _shape(await client.threads.get_state(thread))
        assert {"events", "updates", "debug"} <= kinds, kinds
    assert finals["spec"] == finals["plain"]


@pytest.mark.parametrize("jobs", [4, 1])
async def test_timing_ratio(
    jobs: int,
    server: Server,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    record_property: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reported, not asserted (a shared 2-core machine). `spec`: the served quickstart graph
    (depth 2); `depth1`: the quickstart's own policy. `sdk_s`: request to last event, the dev
    server's queue wait included (its worker polls every 0.5 s: 0.5-1.0 s a run, about 1.0 s
    with one job); `run_s`: the run's first event to its last. `interleaved`: plain, spec,
    depth1, plain, ...; `blocks`: each graph's runs back to back. Medians. 4 jobs: the module's
    server; 1 job (langgraph dev's default): a server of its own."""
    if jobs != 4:
        graphs = {k: v for k, v in _test_graphs().items() if k in ("plain", "spec", "depth1")}
        server = _start(request, tmp_path / "timing", graphs, jobs=jobs)
    client = _client(server)
    graphs, rounds = ("plain", "spec", "depth1"), 4
    orders = {
        "interleaved": [g for _ in range(rounds) for g in graphs],
        "blocks": [g for g in graphs for _ in range(rounds)],
    }
    report: dict[str, Any] = {"rounds": rounds}
    for order, sequence in orders.items():
        times: dict[str, dict[str, list[float]]] = {g: {"sdk_s": [], "run_s": []} for g in graphs}
        for graph in sequence:
            t = await _turn(client, (await client.threads.create())["thread_id"], graph, _human(QUESTIONS[0]))
            for key in ("sdk_s", "run_s"):
                times[graph][key].append(t[key])
        med = {g: {k: statistics.median(v) for k, v in d.items()} for g, d in times.items()}
        report[order] = {
            "median_s": {g: {k: round(v, 3) for k, v in d.items()} for g, d in med.items()},
            "ratio_sdk": {g: round(med[g]["sdk_s"] / med["plain"]["sdk_s"], 3) for g in graphs[1:]},
            "ratio_run": {g: round(med[g]["run_s"] / med["plain"]["run_s"], 3) for g in graphs[1:]},
        }
    record_property(f"server_timing_{jobs}_jobs", report)
    with capsys.disabled():
        print(f"\nLangGraph Server timing (quickstart graph, {jobs} job(s)): {json.dumps(report)}")


# ---------------------------------------------------------------- the ready-made graphs


async def _ready_pair(
    client: Any, graph: str, payload: Any, conf: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    out = []
    for speculative in (False, True):
        assistant = await client.assistants.create(
            graph, config={"configurable": {**conf, "speculative": speculative}}
        )
        thread = (await client.threads.create())["thread_id"]
        turn = await _turn(
            client, thread, assistant["assistant_id"], payload, config={"recursion_limit": 200}
        )
        history = await client.threads.get_history(thread, limit=1000)
        out.append({"turns": [turn], "state": await client.threads.get_state(thread), "history": history})
    return tuple(out)


async def test_ready_made_graphs_served(server: Server) -> None:
    """tau_retail, hotpotqa and chess from the repository's langgraph.json: as plain, adopting."""
    from langgraph_speculative_graphs.chess._players import find_engine

    client = _client(server)
    question = json.loads(
        (ROOT / "langgraph_speculative_graphs/hotpotqa/data/react_trajectories_dev.json").read_text()
    )[0]["question"]
    if find_engine("stockfish"):  # players that think longer than the speculator
        player, guesser = "stockfish:depth=12", "stockfish:depth=6"
    else:
        player, guesser = "sunfish:depth=3", "sunfish:depth=1"
    cases = {
        "tau_retail": ({"messages": [], "db_version": 0}, {"replay_delay": 0.3, "tool_latency": 0.2}),
        "hotpotqa": (
            {"question": question, "steps": [], "pending": None, "answer": None, "max_steps": 8},
            {"agent_delay": 0.3, "latency": 0.2},
        ),
        "chess": (
            {
                "fen": "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
                "moves": [],
                "status": "playing",
                "max_plies": 4,
            },
            {"white": player, "black": player, "speculator": guesser, "k": 2},
        ),
    }
    missing = sorted(set(cases) - set(_ready_made()))
    for graph, (payload, conf) in cases.items():
        if graph in missing:
            continue
        plain, spec = await _ready_pair(client, graph, payload, conf)
        _assert_same(plain, spec, graph)
        kinds = _events(spec)
        assert "guesses" in kinds and not ERRORS & set(kinds), (graph, kinds)
        if graph != "chess":  # chess adopts when a guess is right, which a short game may not give
            assert "adopted" in kinds, (graph, kinds)
    if missing:
        pytest.skip(f"not served (their extras are not installed): {missing}")


def test_server_log_is_clean(server: Server) -> None:
    """Last in this module: nothing the tests ran left a traceback, a blocking call or a refusal."""
    log = server.log()
    bad = [line for line in log.splitlines() if any(b in line for b in BAD_LOG)]
    assert not bad, "\n".join(bad[:20])


# ---------------------------------------------------------------- what the server's saver holds


async def _api_threads(client: Any) -> set[str]:
    return {t["thread_id"] for t in await client.threads.search(limit=1000)}


def _saved_threads(workdir: Path) -> set[str]:
    """Every thread id in the in-memory runtime's saver, as it flushed it to disk at shutdown."""
    from langgraph.checkpoint.memory import PersistentDict

    names: set[str] = set()
    files = sorted((workdir / ".langgraph_api").glob(".langgraph_checkpoint.*.pckl"))
    assert files, "the server wrote no saver file"  # (checkpoints, writes, blobs)
    for f in files:
        d = PersistentDict(filename=str(f))
        d.load()
        names |= {str(k[0] if isinstance(k, tuple) else k) for k in d}
    return names


async def test_no_orphan_threads_in_the_servers_saver(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """One job (langgraph dev's default); every thread the saver holds is one the API made."""
    srv = _start(request, tmp_path / "orphans", _test_graphs(), jobs=1)
    client = _client(srv)
    for graph in ("spec", "builder", "factory", "context"):
        conv = await _conversation(client, graph, QUESTIONS)
        _assert_adopts(conv, graph)
    await _conversation(client, "store_spec", QUESTIONS)
    await client.runs.wait(None, "spec", input=_human("Peru?"))  # a stateless run: a temporary thread
    api = await _api_threads(client)
    srv.stop()
    saved = _saved_threads(tmp_path / "orphans")
    assert saved and not [t for t in saved if ":spec:" in t]
    assert saved <= api, saved - api
    assert not [line for line in srv.log().splitlines() if any(b in line for b in BAD_LOG)]


async def test_postgres_checkpointer(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """langgraph.json's `checkpointer` (examples/postgres_checkpointer.py): the main runs' checkpoints
    in PostgreSQL, as plain; no branch thread there; the maintenance helper finds none."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from langgraph_speculative.maintenance import adelete_branch_threads

    _need_server()
    with _pg_database() as uri:
        os.environ["CHECKPOINT_POSTGRES_URI"] = uri
        try:
            srv = _start(
                request,
                tmp_path / "pg",
                {k: v for k, v in _test_graphs().items() if k in ("plain", "spec", "builder")},
                checkpointer={"path": f"{ROOT / 'examples' / 'postgres_checkpointer.py'}:checkpointer"},
            )
        finally:
            del os.environ["CHECKPOINT_POSTGRES_URI"]
        client = _client(srv)
        plain = await _conversation(client, "plain", QUESTIONS)
        for graph in ("spec", "builder"):
            spec = await _conversation(client, graph, QUESTIONS)
            _assert_same(plain, spec, f"{graph} on PostgreSQL")
            _assert_adopts(spec, graph)
        api = await _api_threads(client)
        srv.stop()
        async with AsyncPostgresSaver.from_conn_string(uri) as saver:
            saved = {t.config["configurable"]["thread_id"] async for t in saver.alist(None)}
            assert await adelete_branch_threads(saver, dry_run=True) == []
        assert saved and saved <= api, saved - api
        assert "Using custom checkpointer: AsyncPostgresSaver" in srv.log()
        assert not [line for line in srv.log().splitlines() if any(b in line for b in BAD_LOG)]
