"""Players that replay the paper's recorded GPT-5 games through the real graph.

Each call sleeps the recorded latency (scaled down) and returns the recorded
move: the actor's move on the game's line, the reply the paper's run computed
for a wrong guess where it recorded one, and otherwise any legal move after the
next ply's recorded time (a stand-in; such a branch is never adopted). The
speculator returns the recorded top-k guesses of the k-guess run.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import chess

from .._common import data_text
from ._players import actor_record

__all__ = ("ReplayPlayers", "load_games")


def load_games(path: str | None = None) -> list[dict[str, Any]]:
    """The recorded games (`langgraph_speculative_graphs/chess/data/paper_games.json` by default)."""
    if path is None:
        text = data_text(__name__.rpartition(".")[0], "paper_games.json")
    else:
        with open(path) as f:
            text = f.read()
    return list(json.loads(text)["games"])


@dataclass
class ReplayPlayers:
    """Duck-types `Players` for one recorded game at guess count `k`."""

    game: dict[str, Any]
    k: int = 3
    scale: float = 1 / 1000
    timeline: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: {"actor": 0, "speculative": 0, "speculator": 0})

    def __post_init__(self) -> None:
        if str(self.k) not in self.game["guesses"]:
            raise ValueError(f"the recorded games have guesses for k in 1..3, not k={self.k}")
        self._line: dict[str, tuple[int, str, float]] = {}
        self._off: dict[str, tuple[str | None, float]] = {}
        board = chess.Board()
        moves, times = self.game["moves"], self.game["actor_s"]
        for i, move in enumerate(moves):
            self._line[board.fen()] = (i, move, times[i])
            nxt = times[i + 1] if i + 1 < len(times) else times[i]
            for guess in set(self.game["guesses"][str(self.k)][i]) | set(self.game["replies"][i]):
                try:
                    mv = chess.Move.from_uci(guess)
                except ValueError:
                    continue
                if guess == move or mv not in board.legal_moves:
                    continue
                reply = self.game["replies"][i].get(guess)
                after = board.copy(stack=False)
                after.push(mv)
                self._off.setdefault(after.fen(), (reply[0], reply[1]) if reply else (None, nxt))
            board.push_uci(move)

    def check(self) -> None:
        """Nothing to resolve."""

    async def warm(self, k: int, depth: int = 1) -> None:
        """Nothing to start."""

    async def aclose(self) -> None:
        """Nothing to stop."""

    async def move(
        self, board: chess.Board, *, speculative: bool = False, rank: int | None = None
    ) -> chess.Move | None:
        """The recorded move for this position, after its recorded latency."""
        fen = board.fen()
        if fen in self._line:
            _, uci, seconds = self._line[fen]
        else:
            reply, seconds = self._off.get(fen, (None, 0.0))
            legal = sorted(board.legal_moves, key=lambda m: m.uci())
            if reply is not None and chess.Move.from_uci(reply) in legal:
                uci = reply
            elif legal:
                uci = legal[0].uci()
            else:
                return None
        self.calls["speculative" if speculative else "actor"] += 1
        rec = actor_record(board, speculative, rank)
        self.timeline.append(rec)
        try:
            await asyncio.sleep(seconds * self.scale)
        finally:
            rec["end"] = time.monotonic()
        return chess.Move.from_uci(uci)

    async def guesses(self, board: chess.Board, k: int) -> list[chess.Move]:
        """The recorded top-k guesses on the game's line (none elsewhere)."""
        fen = board.fen()
        if fen not in self._line:
            return []
        i = self._line[fen][0]
        self.calls["speculator"] += 1
        rec = {"kind": "speculator", "fen": fen, "start": time.monotonic(), "end": None}
        self.timeline.append(rec)
        try:
            await asyncio.sleep(self.game["guess_s"][str(self.k)][i] * self.scale)
        finally:
            rec["end"] = time.monotonic()
        legal = set(board.legal_moves)
        moves = [chess.Move.from_uci(m) for m in self.game["guesses"][str(self.k)][i][:k]]
        rec["moves"] = [m.uci() for m in moves if m in legal]
        return [m for m in moves if m in legal]
