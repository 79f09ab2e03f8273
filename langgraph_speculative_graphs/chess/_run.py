"""`langgraph-speculative chess`: play, compare with a sequential game, report."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any, cast

import chess
import chess.pgn
from langgraph.checkpoint.memory import InMemorySaver

from .._common import SpecError, run_async
from ._graph import initial_state, make_graph
from ._players import (
    OFFLINE_CHOICES,
    Players,
    check_spec,
    default_player,
    default_speculator,
    is_engine,
    parse_engine,
)

__all__ = ("add_parser", "run")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chess",
        help="speculative chess self-play (offline on engines by default)",
        description="Two players alternate moves; while one thinks, the speculator guesses its top-k "
        "moves and the other player starts its reply to each on a branch. "
        f"Engines: {', '.join(OFFLINE_CHOICES)} (options depth=, nodes=, movetime=, path=); "
        "chat models: provider:model, e.g. openai:gpt-5 (needs the openai extra and OPENAI_API_KEY).",
    )
    p.add_argument(
        "--white", default=None, help=f"player spec (default {default_player()}; e.g. openai:gpt-5)"
    )
    p.add_argument("--black", default=None, help="player spec (default: the same as white)")
    p.add_argument("--speculator", default=None, help=f"speculator spec (default {default_speculator()})")
    p.add_argument("--k", type=int, default=3, help="guesses per move (default 3)")
    p.add_argument("--depth", type=int, default=1, help="speculation depth (default 1)")
    p.add_argument("--moves", type=int, default=30, help="plies to play (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed > 0 plays that many-th random 2-ply opening")
    p.add_argument(
        "--compare",
        action="store_true",
        help="also play the game sequentially first: checks the games are identical and measures the "
        "wall-clock saving (without it the saving is not measured)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    p.add_argument("--timeline", metavar="FILE", help="write a PNG timeline of the speculative game")
    p.set_defaults(func=run)


def _opening(seed: int) -> tuple[str, list[str]]:
    board = chess.Board()
    if seed <= 0:
        return board.fen(), []
    rng = random.Random(seed)
    played = []
    for _ in range(2):
        move = rng.choice(sorted(board.legal_moves, key=lambda m: m.uci()))
        board.push(move)
        played.append(move.uci())
    return board.fen(), played


MAX_DEPTH = 8
"""Largest speculation depth the command accepts: each level warms k more engine processes."""

DEEP_SEARCH = {"stockfish": 30, "sunfish": 6}
"""Engine search depths beyond which a move takes minutes or more: a warning, not an error."""


def check_args(args: argparse.Namespace) -> None:
    """Every spec, number and output path, before anything starts; `SpecError` (one line) if one
    cannot work, a one-line warning on stderr for a spec that works but would take very long."""
    for flag, value in (("--k", args.k), ("--depth", args.depth), ("--moves", args.moves)):
        if value < 1:
            raise SpecError(f"{flag} must be at least 1, got {value}")
    if args.depth > MAX_DEPTH:
        raise SpecError(
            f"--depth {args.depth} is more than {MAX_DEPTH}: each level of speculation starts --k more "
            "engine processes and branches; 1 (the paper's setting) to 3 is usual"
        )
    white = args.white or default_player()
    specs = (("--white", white), ("--black", args.black or white), ("--speculator", args.speculator))
    warned: set[str] = set()
    for flag, spec in specs:
        spec = spec or default_speculator()  # defaults too
        check_spec(spec, flag, check_path=True)
        if is_engine(spec) and spec not in warned:  # once per spec (black plays white's by default)
            warned.add(spec)
            engine = parse_engine(spec, flag)
            deep = DEEP_SEARCH.get(engine.name)
            if deep is not None and (engine.limit.depth or 0) > deep:
                print(
                    f"langgraph-speculative chess: warning: {flag} {spec!r}: a depth-{engine.limit.depth} "
                    f"search can take minutes to hours per move (depth {deep} or less is usual)",
                    file=sys.stderr,
                )
    if args.timeline:
        _check_timeline(args.timeline)


def _check_timeline(path: str) -> None:
    """`--timeline FILE` can be written: its directory exists, matplotlib is installed and knows the
    file type (checked before the game, which may take minutes)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SpecError(f"--timeline {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SpecError(f"--timeline {path}: directory {folder} is not writable")
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise SpecError(
            "--timeline needs matplotlib: pip install 'langgraph-speculative[chess]' (or drop --timeline)"
        ) from None
    kind = os.path.splitext(path)[1].lstrip(".").lower()
    types = FigureCanvasBase.get_supported_filetypes()
    if kind and kind not in types:
        raise SpecError(f"--timeline {path}: matplotlib cannot write .{kind} files; use .png or .svg")


async def _games(args: argparse.Namespace, log: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The sequential game (with --compare) and the speculative one, on one event loop (`run_async`:
    a chat model's client keeps its connections on the loop that opened them)."""
    seq = await _play(args, False, log, describe=True) if args.compare else None
    spec = await _play(args, True, log, describe=seq is None)
    return seq, spec


async def _play(args: argparse.Namespace, speculative: bool, log: Any, describe: bool) -> dict[str, Any]:
    builder = make_graph(
        args.white,
        args.black or args.white,
        args.speculator,
        k=args.k,
        depth=args.depth,
        speculative=speculative,
    )
    players: Players = builder.chess_players  # type: ignore[attr-defined]
    graph = builder.compile(checkpointer=InMemorySaver())
    fen, opening = _opening(args.seed)
    state = initial_state(args.moves, fen)
    try:
        await players.warm(args.k, args.depth)
        roles = players.describe()
        if describe:
            for who, what in roles.items():
                log(f"{who + ':':<11} {what}")
        log(f"{'speculative' if speculative else 'sequential'} game:")
        t0 = time.monotonic()
        hidden_total = 0.0
        hidden: dict[str, float] = {}  # node -> hidden time of its adopted call, until its update
        outcome: dict[str, str] = {}
        final: dict[str, Any] = dict(state)
        board = chess.Board(fen)
        async for mode, part in graph.astream(
            state, {"configurable": {"thread_id": "game"}}, stream_mode=["updates", "custom"]
        ):
            chunk = cast(dict[str, Any], part)  # both modes stream dicts
            if mode == "custom":
                if chunk.get("event") in ("hit", "miss"):
                    outcome[chunk["node"]] = chunk["event"]
                if chunk.get("event") == "adopted":
                    hidden[chunk["node"]] = hidden.get(chunk["node"], 0.0) + chunk.get("hidden_s", 0.0)
                continue
            for node, update in chunk.items():
                if not update:
                    continue
                if "moves" not in update:  # no move, e.g. a forfeit: the game's status changes
                    final.update(update)
                    if update.get("status", "playing") != "playing":
                        log(f"  ply {len(final['moves']) + 1:>3} {node:<5} {update['status']}")
                    continue
                final["moves"] = [*final["moves"], *update["moves"]]
                final.update({k: v for k, v in update.items() if k != "moves"})
                ply = len(final["moves"])
                before = board.fen()
                board.push_uci(update["moves"][0])
                took = _call_time(players, before)
                line = f"  ply {ply:>3} {node:<5} {update['moves'][0]:<6} actor {took:6.2f}s"
                if speculative:
                    guesses = " ".join(_guesses_at(players, before)) or "-"
                    line += f"  guesses {guesses:<17} {outcome.pop(node, '-'):<4}"
                    if node in hidden:  # this call ran early on a branch (the last move was guessed)
                        here = hidden.pop(node)
                        hidden_total += here
                        line += f"  adopted, {here:5.2f}s hidden (total {hidden_total:6.2f}s)"
                log(line)
        elapsed = time.monotonic() - t0
    finally:
        await players.aclose()
    report = getattr(graph, "last_report", None)
    return {
        "moves": opening + final["moves"],
        "status": final["status"],
        "elapsed": elapsed,
        "report": report,
        "players": players,
        "roles": roles,
        "start_fen": fen,
        "opening": opening,
        "t0": t0,
    }


def _call_time(players: Players, fen: str) -> float:
    """Duration of the actor call that moved from `fen` (on the main run or adopted)."""
    calls = [
        r
        for r in players.timeline
        if r["kind"] == "actor" and r["fen"] == fen and r["end"] is not None and r.get("ran", True)
    ]
    return (calls[-1]["end"] - calls[-1]["start"]) if calls else 0.0


def _guesses_at(players: Players, fen: str) -> list[str]:
    """The speculator's guesses for `fen`, if it answered."""
    recs = [r for r in players.timeline if r["kind"] == "speculator" and r["fen"] == fen and "moves" in r]
    return recs[0]["moves"] if recs else []


def _accuracy(result: dict[str, Any], k: int) -> tuple[float, float, int]:
    """Top-1 and top-k accuracy of the speculator over the moves it guessed, and how many it guessed."""
    board = chess.Board(result["start_fen"])
    top1 = topk = n = 0
    by_fen: dict[str, list[str]] = {}
    for r in result["players"].timeline:
        if r["kind"] == "speculator" and "moves" in r:
            by_fen.setdefault(r["fen"], r["moves"])
    for m in result["moves"][len(result["opening"]) :]:
        guesses = by_fen.get(board.fen())
        if guesses is not None:
            n += 1
            top1 += guesses[:1] == [m]
            topk += m in guesses[:k]
        board.push_uci(m)
    return (top1 / n if n else 0.0), (topk / n if n else 0.0), n


def _pgn(moves: list[str]) -> str:
    game = chess.pgn.Game()
    node: Any = game
    board = chess.Board()
    for m in moves:
        node = node.add_variation(chess.Move.from_uci(m))
        board.push_uci(m)
    game.headers["Result"] = board.result(claim_draw=True) if board.is_game_over() else "*"
    return str(game.mainline_moves())


def run(args: argparse.Namespace) -> int:
    """The `chess` command."""
    check_args(args)  # before anything starts
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    seq, spec = run_async(_games(args, log))
    report = spec["report"]
    top1, topk, guessed = _accuracy(spec, args.k)
    out: dict[str, Any] = {
        "moves": spec["moves"],
        "pgn": _pgn(spec["moves"]),
        "status": spec["status"],
        "plies": len(spec["moves"]) - len(spec["opening"]),
        "players": spec["roles"],
        "speculative_s": round(spec["elapsed"], 3),
        "hits": report.hits if report else 0,
        "adopted": report.adopted if report else 0,
        "wasted": report.wasted if report else 0,
        "hidden_actor_s": round(report.time_saved_s, 3) if report else 0.0,
        "guessed_plies": guessed,
        "top1_acc": round(top1, 4),
        "topk_acc": round(topk, 4),
        "k": args.k,
        "depth": args.depth,
        "sequential_s": None,
        "identical": None,
        "time_saved_pct": None,
    }
    if seq is not None:
        out["sequential_s"] = round(seq["elapsed"], 3)
        out["identical"] = seq["moves"] == spec["moves"]
        out["time_saved_pct"] = round(100 * (1 - out["speculative_s"] / out["sequential_s"]), 2)
    if args.timeline:
        from ._timeline import draw

        draw(spec, args.timeline, sequential_s=seq["elapsed"] if seq is not None else None)
        log(f"timeline written to {args.timeline}")
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"\n{out['pgn']}\nstatus {out['status']}, {out['plies']} plies\n"
            f"speculator: top-1 {top1:.0%}, top-{args.k} {topk:.0%} of {guessed} moves guessed; "
            f"{out['hits']} hits, {out['adopted']} replies adopted from branches, "
            f"{out['wasted']} branch calls wasted\n"
            f"hidden actor time {out['hidden_actor_s']:.2f}s: how long adopted replies had already run "
            "on branches (a sum of call times, not a wall-clock saving)"
        )
        if seq is not None:
            print(
                f"wall-clock: sequential {out['sequential_s']:.2f}s, "
                f"speculative {out['speculative_s']:.2f}s: "
                f"{out['time_saved_pct']:.1f}% saved; identical games: {out['identical']}"
            )
        else:
            print(
                f"wall-clock: speculative {out['speculative_s']:.2f}s; saving not measured "
                "(--compare plays the sequential game too)"
            )
    return 0 if out["identical"] in (None, True) else 1
