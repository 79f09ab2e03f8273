"""Ranking moves without an engine's MultiPV: a two-ply search on sunfish's piece-square tables.

Sunfish's UCI driver answers one best move and has no MultiPV option, so a
sunfish speculator takes its own search's move first and the rest of its
top-k from this ranking, which scores positions with sunfish's own
evaluation (its `pst` tables: material plus placement, imported from the
`sunfish` package) and looks one reply deep. Plain material values stand in
when sunfish is not installed.
"""

from __future__ import annotations

import chess

__all__ = ("rank_moves",)

_MATERIAL = {"P": 100, "N": 280, "B": 320, "R": 479, "Q": 929, "K": 60000}
_MATE = 10**6

try:
    from sunfish import pst as _PST
except ImportError:  # pragma: no cover - sunfish is in the chess extra
    _PST = None


def _value(piece: str, index: int) -> int:
    return _PST[piece][index] if _PST is not None else _MATERIAL[piece]


def evaluate(board: chess.Board) -> int:
    """Sunfish's score of `board` for the side to move (centipawns, material included)."""
    score = 0
    for square, piece in board.piece_map().items():
        # sunfish's 120-square board: a1 = 91, h8 = 28; black is scored on the rotated board
        index = 91 + chess.square_file(square) - 10 * chess.square_rank(square)
        if piece.color == chess.WHITE:
            score += _value(piece.symbol(), index)
        else:
            score -= _value(piece.symbol().upper(), 119 - index)
    return score if board.turn == chess.WHITE else -score


def _after_reply(board: chess.Board) -> int:
    """The mover's score after the opponent's best reply (the opponent is to move in `board`)."""
    if board.is_checkmate():
        return _MATE
    if board.is_stalemate() or board.is_insufficient_material():
        return 0
    worst = None
    for reply in board.legal_moves:
        board.push(reply)
        score = evaluate(board)  # the mover is to move again
        board.pop()
        worst = score if worst is None else min(worst, score)
    return 0 if worst is None else worst


def rank_moves(board: chess.Board) -> list[chess.Move]:
    """Every legal move of `board`, best first by a two-ply search; ties in UCI order (deterministic)."""
    work = board.copy(stack=False)
    scored = []
    for move in sorted(work.legal_moves, key=lambda m: m.uci()):
        work.push(move)
        scored.append((-_after_reply(work), move.uci(), move))
        work.pop()
    scored.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in scored]
