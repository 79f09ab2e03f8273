"""Players and speculators from strings, resolved at run time.

- engines over UCI through `chess.engine`: `stockfish:depth=16`,
  `stockfish:movetime=0.5`, `stockfish:nodes=20000`, `sunfish:movetime=0.3`
  (pure Python, from PyPI). One thread, fresh hash per search: at fixed depth
  or nodes a search is deterministic, so games can be compared move for move.
- chat models through LangChain: `openai:gpt-5`, `google_genai:gemini-2.5-flash`,
  options after commas (`openai:gpt-5,reasoning_effort=high`), or a chat model
  object. Used only when you ask for them (and their keys are set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import chess
import chess.engine

from ._parse import parse_move, parse_moves

__all__ = ("Players", "find_engine")

MOVE_RETRIES = 3


def actor_record(board: chess.Board, speculative: bool, rank: int | None) -> dict[str, Any]:
    """A timeline entry for one actor call (its `end` is set when the call returns)."""
    return {
        "kind": "actor",
        "player": "white" if board.turn else "black",
        "fen": board.fen(),
        "speculative": speculative,
        "rank": rank,
        "start": time.monotonic(),
        "end": None,
    }


def find_engine(name: str) -> str | None:
    """Path of a UCI engine: on PATH, or Debian's /usr/games for stockfish."""
    exe = {"sunfish": "sunfish-uci"}.get(name, name)
    found = shutil.which(exe)
    if found is None and name == "stockfish" and os.access("/usr/games/stockfish", os.X_OK):
        found = "/usr/games/stockfish"
    return found


def _options(parts: list[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        if "=" not in part:
            raise ValueError(f"option {part!r} is not key=value")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class _EnginePool:
    """Engine processes for one engine spec; one search per process at a time."""

    def __init__(self, path: str, limit: chess.engine.Limit) -> None:
        self.path = path
        self.limit = limit
        self._idle: list[chess.engine.UciProtocol] = []
        self._all: list[tuple[asyncio.SubprocessTransport, chess.engine.UciProtocol]] = []

    async def _acquire(self, nice: int) -> chess.engine.UciProtocol:
        if self._idle:
            engine = self._idle.pop()
        else:
            transport, engine = await chess.engine.popen_uci(self.path)
            self._all.append((transport, engine))
            opts = {k: v for k, v in {"Threads": 1, "Hash": 16}.items() if k in engine.options}
            if opts:
                await engine.configure(opts)
        pid = getattr(engine.transport, "get_pid", lambda: None)() if hasattr(engine, "transport") else None
        if pid:
            try:  # speculative searches yield the CPU to the actor's
                os.setpriority(os.PRIO_PROCESS, pid, nice)
            except (PermissionError, OSError):
                pass
        return engine

    async def warm(self, n: int) -> None:
        """Start `n` engine processes now, so no search pays for a start."""
        started = [await self._acquire(0) for _ in range(max(0, n - len(self._all)))]
        self._idle.extend(started)

    async def _search(
        self, board: chess.Board, nice: int, multipv: int | None = None
    ) -> tuple[chess.Move | None, list[chess.engine.InfoDict]]:
        """One search; on cancel the engine is told to stop and kept for reuse."""
        engine = await self._acquire(nice)
        try:
            info = chess.engine.INFO_PV if multipv else chess.engine.INFO_NONE  # parse only what we use
            analysis = await engine.analysis(board, self.limit, multipv=multipv, game=object(), info=info)
        except BaseException:
            await self._retire(engine)
            raise
        try:
            best = await asyncio.shield(analysis.wait())
        except asyncio.CancelledError:
            analysis.stop()  # UCI "stop": the engine answers bestmove at once
            try:
                await asyncio.wait_for(analysis.wait(), 2)
            except BaseException:
                await self._retire(engine)
                raise
            self._idle.append(engine)
            raise
        except BaseException:
            await self._retire(engine)
            raise
        self._idle.append(engine)
        return best.move, analysis.multipv

    async def play(self, board: chess.Board, nice: int = 0) -> chess.Move:
        move, _ = await self._search(board, nice)
        if move is None:
            raise RuntimeError(f"{self.path} returned no move for {board.fen()}")
        return move

    async def top_moves(self, board: chess.Board, k: int, nice: int = 0) -> list[chess.Move]:
        _, infos = await self._search(board, nice, multipv=k)
        return [i["pv"][0] for i in infos if i.get("pv")]

    async def _retire(self, engine: chess.engine.UciProtocol) -> None:
        for transport, e in self._all:
            if e is engine:
                transport.close()

    async def aclose(self) -> None:
        for transport, engine in self._all:
            try:
                await asyncio.wait_for(engine.quit(), 2)
            except Exception:
                pass
            transport.close()
        self._all.clear()
        self._idle.clear()


def _engine_pool(spec: str) -> _EnginePool:
    name, *rest = spec.split(":", 1)
    opts = _options(rest[0].replace(",", " ").split()) if rest else {}
    path = opts.pop("path", None) or find_engine(name)
    if path is None:
        hint = "apt-get install stockfish" if name == "stockfish" else "pip install sunfish"
        raise ValueError(f"engine {name!r} not found on PATH (or /usr/games); install it: {hint}")
    limits: dict[str, Any] = {}
    for key, conv in (("depth", int), ("nodes", int), ("movetime", float)):
        if key in opts:
            limits["time" if key == "movetime" else key] = conv(opts.pop(key))
    if opts:
        raise ValueError(f"unknown engine options {sorted(opts)} in {spec!r}; use depth=, nodes=, movetime=")
    if not limits:
        limits = {"depth": 12} if name == "stockfish" else {"time": 0.3}
    return _EnginePool(path, chess.engine.Limit(**limits))


def _is_engine(spec: Any) -> bool:
    return isinstance(spec, str) and spec.split(":", 1)[0] in ("stockfish", "sunfish")


def default_player() -> str:
    """Stockfish at depth 16 when installed, else sunfish (pure Python)."""
    return "stockfish:depth=16" if find_engine("stockfish") else "sunfish:movetime=0.3"


def default_speculator() -> str:
    return "stockfish:depth=8" if find_engine("stockfish") else "sunfish:movetime=0.05"


def _chat_model(spec: Any) -> Any:
    if not isinstance(spec, str):
        return spec  # a chat model object
    model, *rest = spec.split(",")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise ValueError(f"{spec!r} needs LangChain: pip install 'langgraph-speculative[openai]'") from exc
    return init_chat_model(model, **_options(rest))


def _prompt(board: chess.Board, ask: str) -> str:
    color = "White" if board.turn else "Black"
    legal = ", ".join(f"[{m.uci()}]" for m in board.legal_moves)
    return (
        f"You are playing {color} in a game of Chess.\n{ask}\n"
        f"Current board:\n{board}\nFEN: {board.fen()}\nValid moves: {legal}"
    )


@dataclass
class Players:
    """The two players and the speculator of a game, resolved lazily.

    Engines start on first use and stop in `aclose()`. Every call is recorded
    in `timeline` (for the PNG and the per-ply lines).
    """

    white: Any = field(default_factory=default_player)
    black: Any = field(default_factory=default_player)
    speculator: Any = field(default_factory=default_speculator)
    cores: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    """Engine searches that may run at once; a branch search waits for a free one."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _running: int = 0
    _cpu: tuple[Any, asyncio.Condition] | None = None
    _pools: dict[str, _EnginePool] = field(default_factory=dict)
    _models: dict[int, Any] = field(default_factory=dict)

    def _pool(self, spec: str) -> _EnginePool:
        if spec not in self._pools:
            self._pools[spec] = _engine_pool(spec)
        return self._pools[spec]

    def _model(self, spec: Any) -> Any:
        key = id(spec) if not isinstance(spec, str) else hash(spec)
        if key not in self._models:
            self._models[key] = _chat_model(spec)
        return self._models[key]

    def check(self) -> None:
        """Resolve engine specs now, so a bad one fails before the game."""
        for spec in (self.white, self.black, self.speculator):
            if _is_engine(spec):
                self._pool(spec)

    async def move(
        self, board: chess.Board, *, speculative: bool = False, rank: int | None = None
    ) -> chess.Move | None:
        """The move of the player to move; None if a chat model gave no legal move."""
        spec = self.white if board.turn else self.black
        nice = 0 if not speculative else min(19, 1 + 9 * ((rank or 1) - 1))
        rec = actor_record(board, speculative, rank)
        self.timeline.append(rec)
        try:
            if _is_engine(spec):
                rec["ran"] = False  # a branch search may be cancelled while it waits for a core
                async with self._core(wait=speculative):
                    rec["start"], rec["ran"] = time.monotonic(), True
                    return await self._pool(spec).play(board, nice)
            return await self._llm_move(self._model(spec), board)
        finally:
            rec["end"] = time.monotonic()

    @contextlib.asynccontextmanager
    async def _core(self, wait: bool) -> AsyncIterator[None]:
        """Count a running search. A branch search (`wait`) first waits for a
        free core: more searches than cores only slow the actor down. The
        actor's own searches never wait, so an adopted branch search keeps
        running and the next branches queue behind it in rank order."""
        loop = asyncio.get_running_loop()
        if self._cpu is None or self._cpu[0] is not loop:
            self._cpu, self._running = (loop, asyncio.Condition()), 0
        cond = self._cpu[1]
        async with cond:
            if wait:
                await cond.wait_for(lambda: self._running < self.cores)
            self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            async with cond:
                cond.notify_all()

    async def guesses(self, board: chess.Board, k: int) -> list[chess.Move]:
        """The speculator's top-k moves for the player to move, best first."""
        rec = {"kind": "speculator", "fen": board.fen(), "start": time.monotonic(), "end": None}
        self.timeline.append(rec)
        try:
            if _is_engine(self.speculator):
                async with self._core(wait=False):
                    moves = await self._pool(self.speculator).top_moves(board, k)
            else:
                reply = await self._model(self.speculator).ainvoke(
                    _prompt(
                        board,
                        f"List the {k} moves the player to move is most likely to play, best first, "
                        "each in UCI inside square brackets, e.g. [e2e4] [d2d4] [g1f3].",
                    )
                )
                moves = parse_moves(board, str(reply.content))[:k]
            rec["moves"] = [m.uci() for m in moves]
            return moves
        finally:
            rec["end"] = time.monotonic()

    async def _llm_move(self, model: Any, board: chess.Board) -> chess.Move | None:
        messages: list[Any] = [
            (
                "user",
                _prompt(board, "Make your move in UCI format enclosed in square brackets (e.g., [e2e4])."),
            )
        ]
        for _ in range(MOVE_RETRIES):
            reply = await model.ainvoke(messages)
            move = parse_move(board, str(reply.content))
            if move is not None:
                return move
            messages += [
                ("assistant", str(reply.content)),
                (
                    "user",
                    "That is not a legal move. Answer with one move from the valid moves, "
                    "in square brackets.",
                ),
            ]
        return None

    async def warm(self, k: int, depth: int = 1) -> None:
        """Start the engine processes a game will use (before timing it)."""
        specs = {self.white, self.black}
        for spec in specs:
            if _is_engine(spec):
                await self._pool(spec).warm(1 + (k * depth + 1 if len(specs) == 1 else k * depth))
        if _is_engine(self.speculator):
            await self._pool(self.speculator).warm(1 + depth)

    async def aclose(self) -> None:
        """Stop every engine process."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
