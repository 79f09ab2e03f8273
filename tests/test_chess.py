"""Chess graph: LLM output parsing, fake chat-model players, a real UCI engine."""

from __future__ import annotations

import asyncio
from typing import Any

import chess
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver

from graphs.chess import Players, make_graph
from graphs.chess._graph import initial_state
from graphs.chess._parse import parse_move, parse_moves
from graphs.chess._players import _engine_pool, find_engine


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
    with pytest.raises(ValueError, match="unknown engine options"):
        Players(white="stockfish:path=/bin/true,speed=9").check()
    with pytest.raises(ValueError, match="not found"):
        _engine_pool("nosuchengine:depth=3")
