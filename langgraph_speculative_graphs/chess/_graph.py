"""The chess self-play graph: two player nodes, each speculative."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import chess
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import Guess, SpeculationPolicy, speculate, speculation_info

from ._players import Players

__all__ = ("ChessState", "make_graph", "served_graph")


class ChessState(TypedDict):
    """A game: the position, the moves so far, and whether it goes on."""

    fen: str
    moves: Annotated[list[str], operator.add]
    status: str
    max_plies: int


def initial_state(max_plies: int = 30, fen: str = chess.STARTING_FEN) -> ChessState:
    """The state a game starts from."""
    return {"fen": fen, "moves": [], "status": "playing", "max_plies": max_plies}


def after(state: ChessState, move: chess.Move | None, who: str) -> dict[str, Any]:
    """The update a player's move makes (also what a speculator guesses)."""
    board = chess.Board(state["fen"])
    if move is None:
        return {"status": f"forfeit: {who} gave no legal move after retries"}
    board.push(move)
    outcome = board.outcome(claim_draw=False)
    if outcome is not None:
        status = outcome.termination.name.lower()
    elif len(state["moves"]) + 1 >= state["max_plies"]:
        status = "move_limit"
    else:
        status = "playing"
    return {"fen": board.fen(), "moves": [move.uci()], "status": status}


def position_key(state: ChessState) -> tuple[str, int]:
    """What a player reads: the position (and the move limit)."""
    return state["fen"], state["max_plies"]


def make_graph(
    white: Any = None,
    black: Any = None,
    speculator: Any = None,
    *,
    k: int = 3,
    depth: int = 1,
    players: Players | None = None,
    speculative: bool = True,
) -> StateGraph:  # type: ignore[type-arg]
    """A self-play `StateGraph` over a python-chess board.

    Players and the speculator are specs (see `Players`), checked here: a bad
    one raises `SpecError` before anything starts. Building does no
    filesystem lookup and starts no engine. The returned builder carries its
    players as `builder.chess_players`; call `await builder.chess_players.aclose()`
    on the loop that ran the game to stop its engines (or serve it through
    `served_graph`, which does). With `speculative=False` it is the plain
    sequential graph (for comparisons).
    """
    if players is None:
        kwargs = {n: v for n, v in (("white", white), ("black", black), ("speculator", speculator)) if v}
        players = Players(**kwargs)
    players.check()

    async def white_move(state: ChessState, config: RunnableConfig) -> dict[str, Any]:
        return await _turn(players, state, config, "white")

    async def black_move(state: ChessState, config: RunnableConfig) -> dict[str, Any]:
        return await _turn(players, state, config, "black")

    async def guess(state: ChessState) -> list[Guess]:
        board = chess.Board(state["fen"])
        moves = await players.guesses(board, k)
        return [Guess(after(state, m, ""), confidence=None) for m in moves]

    builder = StateGraph(ChessState)
    builder.add_node("white", white_move)
    builder.add_node("black", black_move)
    builder.add_edge(START, "white")
    builder.add_conditional_edges(
        "white", lambda s: "black" if s["status"] == "playing" else END, ["black", END]
    )
    builder.add_conditional_edges(
        "black", lambda s: "white" if s["status"] == "playing" else END, ["white", END]
    )
    if speculative:
        builder = speculate(
            builder,
            {"white": guess, "black": guess},
            policy=SpeculationPolicy(k=k, depth=depth, max_inflight=4 * k * depth + 4, stream_events=True),
            keys={"white": position_key, "black": position_key},
        )
    builder.chess_players = players  # type: ignore[attr-defined]
    return builder


async def _turn(players: Players, state: ChessState, config: RunnableConfig, who: str) -> dict[str, Any]:
    board = chess.Board(state["fen"])
    info = speculation_info()  # on a branch: search at a lower priority (the move is the same)
    move = await players.move(board, speculative=info is not None, rank=info.rank if info else None)
    return after(state, move, who)


@contextlib.asynccontextmanager
async def served_graph(config: RunnableConfig) -> AsyncIterator[StateGraph]:  # type: ignore[type-arg]
    """A LangGraph Server graph factory, in langgraph.json:
    `"graphs": {"chess": "langgraph_speculative_graphs.chess:served_graph"}`.

    (Module syntax: loading the file by path would break the package's relative imports.)

    Reads `white`, `black`, `speculator`, `k`, `depth` from the assistant's
    `configurable` (defaults as in `make_graph`); `"speculative": false` serves the
    plain sequential graph. Input: `initial_state(max_plies)`, e.g. `{"fen": <start>,
    "moves": [], "status": "playing", "max_plies": 30}`. The server enters it around
    each run, on the run's event loop, so the game's engines are stopped on
    that loop when the run ends. Nothing in it or in the graph's nodes does a
    blocking filesystem call (the server's blocking-call guard).
    """
    conf = config.get("configurable") or {}
    builder = make_graph(
        conf.get("white"),
        conf.get("black") or conf.get("white"),
        conf.get("speculator"),
        k=int(conf.get("k", 3)),
        depth=int(conf.get("depth", 1)),
        speculative=str(conf.get("speculative", True)).lower() not in ("0", "false", "no", ""),
    )
    try:
        yield builder
    finally:
        await builder.chess_players.aclose()  # type: ignore[attr-defined]
