"""`delete_branch_threads` and `langgraph-speculative branches` on real savers: memory, SQLite
(sync and async) and PostgreSQL (sync and async), with the thread layout earlier versions left."""

from __future__ import annotations

import json
import operator
import sqlite3
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_speculative._cli import main as cli
from langgraph_speculative.maintenance import adelete_branch_threads, delete_branch_threads

from .conftest import _pg_database, amake_saver, make_saver

MAIN = ["t1", "t2", "t1_x", "50%"]
BRANCHES = {
    "t1": ["t1:spec:0123456789ab", "t1:spec:ba9876543210", "t1:spec:0123456789ab:spec:cafe00000000"],
    "t2": ["t2:spec:feedfeedfeed"],
    "t1_x": ["t1_x:spec:aaaaaaaaaaaa"],  # `_` is a LIKE wildcard: t1_x's are not t1's
    "50%": ["50%:spec:bbbbbbbbbbbb"],
    "run": ["run:spec:cccccccccccc"],  # a run without a thread id
}
LOOKALIKES = ["T1:SPEC:dddddddddddd", "t1spec", "t1:spe:eeeeeeeeeeee"]  # not branch threads
ALL_BRANCHES = sorted(b for bs in BRANCHES.values() for b in bs)


class S(TypedDict):
    n: Annotated[list[int], operator.add]


def _graph(saver: Any) -> Any:
    b = StateGraph(S)
    b.add_node("a", lambda s: {"n": [1]})
    b.add_node("b", lambda s: {"n": [2]})
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b.compile(checkpointer=saver, interrupt_before=["b"])  # leaves a pending checkpoint


def _threads() -> list[str]:
    return MAIN + ALL_BRANCHES + LOOKALIKES


def _fill(saver: Any) -> Any:
    graph = _graph(saver)
    for t in _threads():
        graph.invoke({"n": [0]}, {"configurable": {"thread_id": t}})
    return graph


async def _afill(saver: Any) -> Any:
    graph = _graph(saver)
    for t in _threads():
        await graph.ainvoke({"n": [0]}, {"configurable": {"thread_id": t}})
    return graph


def _left(saver: Any) -> set[str]:
    return {t.config["configurable"]["thread_id"] for t in saver.list(None)}


async def _aleft(saver: Any) -> set[str]:
    return {t.config["configurable"]["thread_id"] async for t in saver.alist(None)}


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_delete_branch_threads(kind: str, tmp_path: Path) -> None:
    with make_saver(kind, tmp_path) as saver:
        graph = _fill(saver)
        before = {t: graph.get_state({"configurable": {"thread_id": t}}) for t in MAIN + LOOKALIKES}
        assert delete_branch_threads(saver, dry_run=True) == ALL_BRANCHES
        assert _left(saver) == set(_threads())  # a dry run deletes nothing
        assert delete_branch_threads(saver, "t1") == sorted(BRANCHES["t1"])
        assert delete_branch_threads(saver, "50%") == BRANCHES["50%"]
        rest = sorted(set(ALL_BRANCHES) - set(BRANCHES["t1"]) - set(BRANCHES["50%"]))
        assert delete_branch_threads(saver) == rest
        assert delete_branch_threads(saver) == []
        assert _left(saver) == set(MAIN + LOOKALIKES)
        for t, state in before.items():  # main threads as they were, pending task included
            after = graph.get_state({"configurable": {"thread_id": t}})
            assert (after.values, after.next, after.config) == (state.values, state.next, state.config)
        for t in ALL_BRANCHES:
            assert saver.get_tuple({"configurable": {"thread_id": t, "checkpoint_ns": ""}}) is None
        if kind == "memory":  # nothing of a branch left anywhere: checkpoints, writes, blobs
            assert not any(":spec:" in k[0] for k in list(saver.writes) + list(saver.blobs))


@pytest.mark.parametrize("kind", ["memory", "sqlite_aio", "postgres_aio"])
async def test_adelete_branch_threads(kind: str, tmp_path: Path) -> None:
    async with amake_saver(kind, tmp_path) as saver:
        await _afill(saver)
        assert await adelete_branch_threads(saver, dry_run=True) == ALL_BRANCHES
        assert await adelete_branch_threads(saver, "t1_x") == BRANCHES["t1_x"]
        assert await adelete_branch_threads(saver) == sorted(set(ALL_BRANCHES) - set(BRANCHES["t1_x"]))
        assert await adelete_branch_threads(saver) == []
        assert await _aleft(saver) == set(MAIN + LOOKALIKES)
        if kind != "memory":
            with pytest.raises(TypeError, match="adelete_branch_threads"):
                delete_branch_threads(saver)


def test_async_twin_takes_sync_savers(tmp_path: Path) -> None:
    import asyncio

    with make_saver("sqlite", tmp_path) as saver:
        _fill(saver)
        assert asyncio.run(adelete_branch_threads(saver)) == ALL_BRANCHES
        assert _left(saver) == set(MAIN + LOOKALIKES)


def test_any_other_saver_is_walked_with_list(tmp_path: Path) -> None:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.checkpoint.memory import InMemorySaver

    class Wrapped(BaseCheckpointSaver):  # type: ignore[type-arg]
        """A saver that is no known kind: only the interface."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = InMemorySaver()

        def __getattribute__(self, name: str) -> Any:
            if name in ("get_tuple", "put", "put_writes", "list", "delete_thread", "get_next_version"):
                return getattr(object.__getattribute__(self, "inner"), name)
            return object.__getattribute__(self, name)

    saver = Wrapped()
    _fill(saver)
    assert delete_branch_threads(saver) == ALL_BRANCHES
    assert _left(saver) == set(MAIN + LOOKALIKES)


def test_an_empty_sqlite_database_has_no_branch_threads(tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(tmp_path / "empty.db"), check_same_thread=False)
    try:
        assert delete_branch_threads(SqliteSaver(conn)) == []
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []  # nothing set up
    finally:
        conn.close()


# ---------------------------------------------------------------- the command


def _sqlite_file(tmp_path: Path) -> Path:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = tmp_path / f"{uuid.uuid4().hex}.db"
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        _fill(SqliteSaver(conn))
    finally:
        conn.close()
    return path


def test_cli_branches_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _sqlite_file(tmp_path)
    assert cli(["branches", "--sqlite", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.split() == ALL_BRANCHES
    assert f"{len(ALL_BRANCHES)} branch threads found (use --delete" in out.err
    assert cli(["branches", "--sqlite", str(path), "--thread", "t2", "--delete", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"found": 1, "deleted": 1, "threads": BRANCHES["t2"]}
    assert cli(["branches", "--sqlite", str(path), "--delete"]) == 0
    out = capsys.readouterr()
    assert sorted(out.out.split()) == sorted(set(ALL_BRANCHES) - set(BRANCHES["t2"]))
    assert "branch threads deleted" in out.err
    assert cli(["branches", "--sqlite", str(path)]) == 0
    assert capsys.readouterr().out == ""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute("SELECT thread_id FROM checkpoints UNION SELECT thread_id FROM writes")
        left = {r[0] for r in rows}
    finally:
        conn.close()
    assert left == set(MAIN + LOOKALIKES)


def test_cli_branches_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _pg_database() as uri:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(uri) as saver:
            saver.setup()
            _fill(saver)
        assert cli(["branches", "--postgres", uri, "--thread", "t1"]) == 0
        assert capsys.readouterr().out.split() == sorted(BRANCHES["t1"])
        assert cli(["branches", "--postgres", uri, "--delete", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["threads"] == ALL_BRANCHES
        with PostgresSaver.from_conn_string(uri) as saver:
            assert _left(saver) == set(MAIN + LOOKALIKES)
            assert delete_branch_threads(saver) == []


def test_cli_branches_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.db"
    assert cli(["branches", "--sqlite", str(missing)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not missing.exists()  # never created
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert cli(["branches", "--sqlite", str(junk)]) == 2
    assert "not a LangGraph checkpoint database" in capsys.readouterr().err
    assert cli(["branches", "--postgres", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["branches"])  # --sqlite or --postgres is required
