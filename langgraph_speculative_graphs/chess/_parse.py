"""Reading a move out of a chat model's reply."""

from __future__ import annotations

import re

import chess

__all__ = ("parse_move", "parse_moves")

_BRACKETED = re.compile(r"\[\s*([^\[\]]{2,12}?)\s*\]")


def _to_move(board: chess.Board, text: str) -> chess.Move | None:
    text = text.strip().strip(".").replace(" ", "")
    try:
        move = chess.Move.from_uci(text.lower())
        if move in board.legal_moves:
            return move
    except (ValueError, chess.InvalidMoveError):
        pass
    try:  # SAN by mistake ("Nf3", "exd5", "O-O")
        return board.parse_san(text)
    except ValueError:
        return None


def parse_moves(board: chess.Board, reply: str) -> list[chess.Move]:
    """Legal moves in `reply`, in order, without repeats.

    Moves are read from brackets (`[e2e4]`) first, UCI or SAN; a reply with no
    brackets is read word by word.
    """
    candidates = _BRACKETED.findall(reply) or reply.replace(",", " ").split()
    out: list[chess.Move] = []
    for text in candidates:
        move = _to_move(board, text)
        if move is not None and move not in out:
            out.append(move)
    return out


def parse_move(board: chess.Board, reply: str) -> chess.Move | None:
    """The first legal move in `reply`, or None."""
    moves = parse_moves(board, reply)
    return moves[0] if moves else None
