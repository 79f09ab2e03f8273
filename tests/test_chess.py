"""Chess graph: LLM output parsing, fake chat-model players, a real UCI engine."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

import chess
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_speculative_graphs._common import SpecError
from langgraph_speculative_graphs.chess import Players, make_graph, served_graph
from langgraph_speculative_graphs.chess._graph import initial_state
from langgraph_speculative_graphs.chess._parse import parse_move, parse_moves
from langgraph_speculative_graphs.chess._players import ENGINES, find_engine, parse_engine
from langgraph_speculative_graphs.chess._rank import rank_moves


def test_parse_brackets_whitespace_san_and_illegal() -> None:
    board = chess.Board()
    assert parse_move(board, "I play [e2e4].") == chess.Move.from_uci("e2e4")
    assert parse_move(board, "[ g1f3 ]") == chess.Move.from_uci("g1f3")
    assert parse_move(board, "My move: [Nf3]") == chess.Move.from_uci("g1f3")  # SAN by mistake
    assert parse_move(board, "[e2e5] then [d2d4]") == chess.Move.from_uci("d2d4")  # illegal skipped
    assert parse_move(board, "no move here") is None
    assert parse_moves(board, "[e2e4] [d2d4] [e2e4] [g1f3]") == [
        chess.Move.from_uci(m) for m in ("e2e4", "d2d4", "g1f3")
    ]


class SlowFake(FakeListChatModel):
    """A deterministic fake chat model with real latency (asyncio.sleep)."""

    delay: float = 0.02

    def _reply(self, messages: list[BaseMessage]) -> str:
        return self._call(messages)

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._reply(messages)))])


class PositionalFake(SlowFake):
    """Answers from the prompt alone, so any call order gives the same game.

    A first ask gets an illegal move; the retry (the last message says it was
    not legal) gets the last valid move listed. The speculator ask gets the
    last two valid moves.
    """

    def _reply(self, messages: list[BaseMessage]) -> str:
        prompt, last = str(messages[0].content), str(messages[-1].content)
        valid = prompt.split("Valid moves:")[-1].split(",")
        if "most likely" in prompt:
            return " ".join(v.strip() for v in reversed(valid[-2:]))
        if "not a legal move" in last:
            return valid[-1].strip()
        return "[z9z9]"


def _fake_game(replies: list[str], guesses: list[str], plies: int) -> tuple[dict[str, Any], Any]:
    player = SlowFake(responses=replies, delay=0.03)
    speculator = SlowFake(responses=guesses, delay=0.005)
    players = Players(white=player, black=player, speculator=speculator)
    graph = make_graph(players=players, k=2).compile(checkpointer=InMemorySaver())
    out = asyncio.run(graph.ainvoke(initial_state(plies), {"configurable": {"thread_id": "g"}}))
    return out, graph


def test_fake_llm_game_is_lossless_and_retries_illegal_moves() -> None:
    async def play(speculative: bool) -> tuple[dict[str, Any], Any]:
        player, speculator = (
            PositionalFake(responses=["-"], delay=0.03),
            PositionalFake(responses=["-"], delay=0.0),
        )
        players = Players(white=player, black=player, speculator=speculator)
        graph = make_graph(players=players, k=2, speculative=speculative).compile(
            checkpointer=InMemorySaver()
        )
        return await graph.ainvoke(initial_state(6), {"configurable": {"thread_id": "g"}}), graph

    seq, _ = asyncio.run(play(False))
    spec, graph = asyncio.run(play(True))
    assert seq["status"] == "move_limit" and len(seq["moves"]) == 6  # every move came from a retry
    assert spec["moves"] == seq["moves"]
    assert graph.last_report.hits >= 1


def test_llm_that_never_answers_legally_forfeits_cleanly() -> None:
    out, graph = _fake_game(["I resign, no move", "[z9z9]"] * 20, ["nothing"], 6)
    assert out["status"].startswith("forfeit: white")
    assert out["moves"] == []


@pytest.mark.skipif(find_engine("stockfish") is None, reason="stockfish not installed (.ci/run installs it)")
def test_real_engine_game_identical_to_sequential_and_ends_by_mate() -> None:
    async def play(speculative: bool, fen: str, plies: int) -> dict[str, Any]:
        players = Players(
            white="stockfish:depth=8", black="stockfish:depth=8", speculator="stockfish:depth=4"
        )
        builder = make_graph(players=players, k=3, speculative=speculative)
        graph = builder.compile(checkpointer=InMemorySaver())
        try:
            return await graph.ainvoke(initial_state(plies, fen), {"configurable": {"thread_id": "g"}})
        finally:
            await players.aclose()

    seq = asyncio.run(play(False, chess.STARTING_FEN, 10))
    spec = asyncio.run(play(True, chess.STARTING_FEN, 10))
    assert spec["moves"] == seq["moves"] and len(spec["moves"]) == 10
    # mate in one for white: the game ends mid-speculation and its branches are cancelled
    mate_in_one = "6k1/5ppp/8/8/8/8/5PPP/3R2K1 w - - 0 1"
    out = asyncio.run(play(True, mate_in_one, 20))
    assert out["moves"] == ["d1d8"] and out["status"] == "checkmate"


def test_bad_engine_specs_are_clear_errors() -> None:
    with pytest.raises(SpecError, match=r"white 'stockfish:path=/bin/true,speed=9': unknown options"):
        Players(white="stockfish:path=/bin/true,speed=9").check()
    with pytest.raises(SpecError, match="depth= must be positive"):
        parse_engine("sunfish:depth=0", "--white")
    if ENGINES["stockfish"] is None:
        with pytest.raises(SpecError, match="stockfish is not installed .*apt-get install stockfish"):
            parse_engine("stockfish:depth=3", "--white")


needs_stockfish = pytest.mark.skipif(find_engine("stockfish") is None, reason="stockfish not installed")
needs_sunfish = pytest.mark.skipif(find_engine("sunfish") is None, reason="sunfish not installed")


def test_ranking_without_multipv_sees_captures_and_mates() -> None:
    # white to move: the queen on d5 hangs to the knight on f4 (and to nothing else)
    board = chess.Board("4k3/8/8/3q4/5N2/8/8/4K3 w - - 0 1")
    assert rank_moves(board)[0] == chess.Move.from_uci("f4d5")
    mate_in_one = chess.Board("6k1/5ppp/8/8/8/8/5PPP/3R2K1 w - - 0 1")
    assert rank_moves(mate_in_one)[0] == chess.Move.from_uci("d1d8")
    ranked = rank_moves(chess.Board())
    assert sorted(m.uci() for m in ranked) == sorted(m.uci() for m in chess.Board().legal_moves)
    assert ranked == rank_moves(chess.Board())  # deterministic


@needs_sunfish
def test_a_sunfish_speculator_ranks_its_own_moves_without_multipv() -> None:
    async def go() -> tuple[list[chess.Move], chess.Move, str]:
        players = Players(white="sunfish:depth=1", black="sunfish:depth=1", speculator="sunfish:depth=1")
        players.check()
        board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
        try:
            guesses = await players.guesses(board, 3)
            best = await players.move(board)
            return guesses, best, players.describe()["speculator"]
        finally:
            await players.aclose()

    guesses, best, description = asyncio.run(go())
    assert len(guesses) == 3 and len(set(guesses)) == 3
    assert guesses[0] == best  # the same engine's own search comes first
    assert "best move then a two-ply ranking" in description


@needs_sunfish
def test_sunfish_game_is_identical_to_sequential_and_speculates() -> None:
    """The README's fallback without Stockfish: sunfish players and a sunfish speculator (no MultiPV)."""

    async def play(speculative: bool) -> tuple[dict[str, Any], Any]:
        players = Players(white="sunfish:depth=3", black="sunfish:depth=3", speculator="sunfish:depth=1")
        builder = make_graph(players=players, k=3, speculative=speculative)
        graph = builder.compile(checkpointer=InMemorySaver())
        try:
            return await graph.ainvoke(initial_state(4), {"configurable": {"thread_id": "g"}}), graph
        finally:
            await players.aclose()

    seq, _ = asyncio.run(play(False))
    spec, graph = asyncio.run(play(True))
    assert spec["moves"] == seq["moves"] and len(spec["moves"]) == 4
    events = [e["event"] for e in graph.last_report.events]
    assert "speculator_error" not in events
    assert "hit" in events or "miss" in events  # guesses arrived in time and were judged


def test_building_the_graph_does_no_filesystem_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a filesystem lookup while building the graph")

    monkeypatch.setattr(shutil, "which", blocked)
    monkeypatch.setattr(os, "access", blocked)
    monkeypatch.setattr(os, "stat", blocked)
    if not (ENGINES["stockfish"] and ENGINES["sunfish"]):
        pytest.skip("needs stockfish and sunfish")
    builder = make_graph("stockfish:depth=4", "sunfish:depth=1", "stockfish:depth=2")
    assert builder.chess_players.describe()["white"].startswith("stockfish:depth=4 (")


ENGINE_TROUBLE = (
    "Exception in callback",
    "handler is closed",
    "never retrieved",
    "Close running child",
    "was destroyed",
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def trouble(self) -> list[str]:
        return [r.getMessage() for r in self.records if any(t in r.getMessage() for t in ENGINE_TROUBLE)]


@pytest.fixture
def engine_logs() -> Any:
    """asyncio's and python-chess's log records (where an engine closed from the wrong place shows)."""
    handler = _Records()
    loggers = [logging.getLogger("asyncio"), logging.getLogger("chess.engine")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop  # LangGraph Server's loop; its closed pipes raise "handler is closed"

        loops.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    except ImportError:
        loops.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip(reason="uvloop not installed")))
    return loops


def _run_on(new_loop: Any, coro: Any) -> Any:
    loop = new_loop()
    loop.set_debug(True)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(") ")[-1][0] != "Z"


@needs_stockfish
@pytest.mark.parametrize("new_loop", _loops())
def test_speculative_games_leave_no_engine_error_and_no_engine(new_loop: Any, engine_logs: _Records) -> None:
    """Branch searches are cancelled mid-start, mid-search and at the game's end; none may log
    an error from a callback, and every engine process is gone after `aclose`."""
    pids: list[int] = []

    async def games() -> None:
        for plies in (7, 8, 9):
            players = Players("stockfish:depth=7", "stockfish:depth=7", "stockfish:depth=3")
            graph = make_graph(players=players, k=3).compile(checkpointer=InMemorySaver())
            try:
                out = await graph.ainvoke(initial_state(plies), {"configurable": {"thread_id": "g"}})
                assert len(out["moves"]) == plies
            finally:
                pids.extend(t.get_pid() for p in players._pools.values() for t in p._all.values())
                await players.aclose()

    _run_on(new_loop, games())
    gc.collect()
    assert pids and not [p for p in pids if _alive(p)]
    assert engine_logs.trouble() == []


@needs_stockfish
def test_one_graph_on_two_event_loops(engine_logs: _Records) -> None:
    """A graph built once and run on one loop, then another (a server's module-level graph):
    the second loop starts its own engines; the first loop's are stopped, not written to."""
    builder = make_graph("stockfish:depth=6", "stockfish:depth=6", "stockfish:depth=3")
    graph = builder.compile(checkpointer=InMemorySaver())
    players = builder.chess_players

    async def game(thread: str) -> list[str]:
        return (await graph.ainvoke(initial_state(4), {"configurable": {"thread_id": thread}}))["moves"]

    first = _run_on(asyncio.new_event_loop, game("a"))
    old = [t.get_pid() for p in players._pools.values() for t in p._all.values()]

    async def second() -> list[str]:
        try:
            return await game("b")
        finally:
            await players.aclose()

    assert _run_on(asyncio.new_event_loop, second()) == first
    assert old and not [p for p in old if _alive(p)]
    assert engine_logs.trouble() == []


@needs_stockfish
def test_served_graph_runs_under_the_blocking_call_guard_and_stops_its_engines(engine_logs: _Records) -> None:
    blockbuster = pytest.importorskip("blockbuster")
    config = {"configurable": {"white": "stockfish:depth=6", "speculator": "stockfish:depth=3", "k": 2}}

    async def serve() -> tuple[list[str], Players]:
        with blockbuster.blockbuster_ctx():
            async with served_graph(config) as builder:  # what LangGraph Server does around a run
                graph = builder.compile(checkpointer=InMemorySaver())
                out = await graph.ainvoke(initial_state(4), {"configurable": {"thread_id": "s"}})
                assert graph.last_report.hits >= 0
        return out["moves"], builder.chess_players

    moves, players = asyncio.run(serve())
    assert len(moves) == 4 and players._pools == {}
    assert players.describe()["speculator"].startswith("stockfish:depth=3")
    assert engine_logs.trouble() == []


def test_chat_model_specs_are_checked_when_the_graph_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SpecError, match=r"^white 'stockfsh:depth=3': unknown engine or provider 'stockfsh'"):
        make_graph("stockfsh:depth=3")
    with pytest.raises(SpecError, match=r"^speculator 'openai:gpt-5' needs"):
        make_graph("sunfish:depth=1" if ENGINES["sunfish"] else None, speculator="openai:gpt-5")
