"""Players and speculators from strings, resolved when the graph is built.

- engines over UCI through `chess.engine`: `stockfish:depth=16`,
  `stockfish:movetime=0.5`, `stockfish:nodes=20000`, `sunfish:depth=3`
  (pure Python, from PyPI), `path=` for an engine elsewhere. One thread,
  fresh hash per search: at fixed depth or nodes a search is deterministic,
  so games can be compared move for move. A speculator engine answers its
  top-k by MultiPV; one without MultiPV (sunfish) answers its own best move
  first and ranks the rest by a two-ply search on its evaluation (`_rank`).
- chat models through LangChain: `openai:gpt-5`, `google_genai:gemini-2.5-flash`,
  options after commas (`openai:gpt-5,reasoning_effort=high`), or a chat model
  object. Used only when you ask for them (and their keys are set).

Where the engines live is looked up once, at import (`ENGINES`): building a
graph and running its nodes do no filesystem lookups, so the graph runs
under LangGraph Server's blocking-call guard. Engine processes belong to the
event loop that started them and are stopped on that loop by `aclose()`.
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

from .._common import SpecError, chat_model, check_chat_spec, redact
from ._parse import parse_move, parse_moves
from ._rank import rank_moves

__all__ = ("ENGINES", "Players", "find_engine")

MOVE_RETRIES = 3
ENGINE_NAMES = ("stockfish", "sunfish")
OFFLINE_CHOICES = ("stockfish:depth=16", "sunfish:depth=3")


def _lookup(name: str) -> str | None:
    exe = {"sunfish": "sunfish-uci"}.get(name, name)
    found = shutil.which(exe)
    if found is None and name == "stockfish" and os.access("/usr/games/stockfish", os.X_OK):
        found = "/usr/games/stockfish"
    return found


ENGINES: dict[str, str | None] = {name: _lookup(name) for name in ENGINE_NAMES}
"""Path of each known engine (None: not installed), looked up once at import:
on PATH, or Debian's /usr/games for stockfish."""


def find_engine(name: str) -> str | None:
    """Path of a known UCI engine, from `ENGINES` (no filesystem lookup)."""
    return ENGINES.get(name)


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


@dataclass(frozen=True)
class EngineSpec:
    """A parsed engine spec: which program, where, and how long it searches."""

    spec: str
    name: str
    path: str
    limit: chess.engine.Limit


def is_engine(spec: Any) -> bool:
    """Whether `spec` names a UCI engine (rather than a chat model)."""
    return isinstance(spec, str) and spec.split(":", 1)[0] in ENGINE_NAMES


def parse_engine(spec: str, who: str = "engine") -> EngineSpec:
    """Parse `name[:key=value,...]`; `SpecError` (one line, naming `who`) if it cannot work here."""
    name, _, rest = spec.partition(":")
    where = f"{who} {spec!r}"
    opts: dict[str, str] = {}
    for part in rest.replace(",", " ").split():
        if "=" not in part:
            raise SpecError(f"{where}: option {part!r} is not key=value; e.g. {name}:depth=12")
        k, v = part.split("=", 1)
        opts[k.strip()] = v.strip()
    path = opts.pop("path", None) or find_engine(name)
    if path is None:
        other = "sunfish:depth=3 (pure Python)" if name == "stockfish" else "stockfish:depth=16"
        install = "apt-get install stockfish" if name == "stockfish" else "pip install sunfish"
        raise SpecError(
            f"{where}: {name} is not installed (looked on PATH and in /usr/games); "
            f"{install}, give path=..., or use {other}"
        )
    limits: dict[str, Any] = {}
    for key, conv in (("depth", int), ("nodes", int), ("movetime", float)):
        if key in opts:
            try:
                value = conv(opts.pop(key))
            except ValueError:
                raise SpecError(f"{where}: {key}= needs a number") from None
            if value <= 0:
                raise SpecError(f"{where}: {key}= must be positive")
            limits["time" if key == "movetime" else key] = value
    if opts:
        raise SpecError(f"{where}: unknown options {sorted(opts)}; use depth=, nodes=, movetime=, path=")
    if not limits:
        limits = {"depth": 12} if name == "stockfish" else {"depth": 3}
    return EngineSpec(spec, name, path, chess.engine.Limit(**limits))


def check_spec(spec: Any, who: str, *, check_path: bool = False) -> None:
    """Raise `SpecError` unless `spec` can play here. A chat model object passes.

    `check_path` also checks that an engine's `path=` is an executable (a
    filesystem lookup: the command line does it, graph building does not).
    """
    if not isinstance(spec, str):
        if not hasattr(spec, "ainvoke"):
            raise SpecError(f"{who}: expected an engine or chat model spec or a chat model, got {spec!r}")
        return
    if is_engine(spec):
        engine = parse_engine(spec, who)
        if check_path and not os.access(engine.path, os.X_OK):
            raise SpecError(f"{who} {spec!r}: {engine.path} is not an executable file")
        return
    check_chat_spec(spec, who, OFFLINE_CHOICES)


class _EnginePool:
    """Engine processes for one engine spec on one event loop; one search per process at a time.

    A search that is cancelled is stopped (UCI `stop`) and its engine goes back
    to the pool once it has answered, without the cancelled caller waiting;
    `aclose()` waits for those, then quits every engine.
    """

    def __init__(self, engine: EngineSpec) -> None:
        self.engine = engine
        self.loop = asyncio.get_running_loop()
        self.version: str | None = None
        """The engine's own name (UCI `id name`), once one has started."""
        self.multipv: bool | None = None
        self._idle: list[chess.engine.UciProtocol] = []
        self._all: dict[chess.engine.UciProtocol, asyncio.SubprocessTransport] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self._analyses: dict[chess.engine.UciProtocol, chess.engine.AnalysisResult] = {}
        self._unwanted: set[chess.engine.UciProtocol] = set()
        self._closed = False

    def _track(self, fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        return fut

    async def _start(self) -> chess.engine.UciProtocol:
        try:
            transport, engine = await chess.engine.popen_uci(self.engine.path)
        except (OSError, chess.engine.EngineError) as exc:
            raise RuntimeError(f"engine {self.engine.spec!r} did not start ({exc})") from None
        self._all[engine] = transport
        self.version = self.version or engine.id.get("name")
        self.multipv = "MultiPV" in engine.options
        opts = {k: v for k, v in {"Threads": 1, "Hash": 16}.items() if k in engine.options}
        if opts:
            await engine.configure(opts)
        return engine

    def _park_started(self, start: asyncio.Future[chess.engine.UciProtocol]) -> None:
        if not start.cancelled() and start.exception() is None:
            self._park(start.result())

    def _park(self, engine: chess.engine.UciProtocol) -> None:
        if self._closed:
            self._drop(engine)
        else:
            self._idle.append(engine)

    async def _acquire(self, nice: int) -> chess.engine.UciProtocol:
        if self._idle:
            engine = self._idle.pop()
        else:
            # the start (an exec and the UCI handshake) is not cancelled half-way:
            # a cancelled caller leaves a started engine to the pool
            start = self._track(asyncio.ensure_future(self._start()))
            try:
                engine = await asyncio.shield(start)
            except asyncio.CancelledError:
                start.add_done_callback(self._park_started)
                raise
        pid = self._all[engine].get_pid()
        try:  # speculative searches yield the CPU to the actor's
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        except OSError:
            pass
        return engine

    async def warm(self, n: int) -> None:
        """Start `n` engine processes now, so no search pays for a start."""
        started = [await self._acquire(0) for _ in range(max(0, n - len(self._all)))]
        self._idle.extend(started)

    async def _search(
        self, board: chess.Board, nice: int, multipv: int | None = None
    ) -> tuple[chess.Move | None, list[chess.engine.InfoDict]]:
        """One search. A cancelled search is stopped and its engine reused (see the class)."""
        engine = await self._acquire(nice)
        if not self.multipv:
            multipv = None
        info = chess.engine.INFO_PV if multipv else chess.engine.INFO_NONE  # parse only what we use
        # Not cancelled mid-command: python-chess answers a cancelled start's readyok on a
        # done future (InvalidStateError in a callback), and a closed engine's pipes on uvloop
        # ("handler is closed"). A cancelled caller hands the search to _wind_down instead.
        search = self._track(
            asyncio.ensure_future(self._run(engine, board, multipv, info)),
        )
        try:
            return await asyncio.shield(search)
        except asyncio.CancelledError:
            self._wind_down(engine, search)
            raise

    async def _run(
        self, engine: chess.engine.UciProtocol, board: chess.Board, multipv: int | None, info: Any
    ) -> tuple[chess.Move | None, list[chess.engine.InfoDict]]:
        try:
            limit = self.engine.limit
            analysis = await engine.analysis(board, limit, multipv=multipv, game=object(), info=info)
            self._analyses[engine] = analysis
            if engine in self._unwanted or self._closed:
                analysis.stop()
            best = await analysis.wait()
        except BaseException:
            self._drop(engine)
            raise
        finally:
            self._analyses.pop(engine, None)
            self._unwanted.discard(engine)
        self._park(engine)
        return best.move, analysis.multipv

    def _wind_down(self, engine: chess.engine.UciProtocol, search: asyncio.Future[Any]) -> None:
        """Stop a search nobody waits for; `_run` parks the engine when it has answered."""
        analysis = self._analyses.get(engine)
        if analysis is not None:
            analysis.stop()  # UCI "stop": the engine answers bestmove at once
        else:
            self._unwanted.add(engine)  # still starting: `_run` stops it once it has started
        search.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no log at GC

    async def play(self, board: chess.Board, nice: int = 0) -> chess.Move:
        move, _ = await self._search(board, nice)
        if move is None:
            raise RuntimeError(f"{self.engine.spec!r} returned no move for {board.fen()}")
        return move

    async def top_moves(self, board: chess.Board, k: int, nice: int = 0) -> list[chess.Move]:
        """The engine's top `k`: by MultiPV, or its best move, then a two-ply ranking of the rest."""
        best, infos = await self._search(board, nice, multipv=k)
        if self.multipv:
            return [i["pv"][0] for i in infos if i.get("pv")]
        if k == 1 or best is None:
            return [best] if best is not None else []
        ranked = await asyncio.to_thread(rank_moves, board)
        return [best, *[m for m in ranked if m != best]][:k]

    def _drop(self, engine: chess.engine.UciProtocol) -> None:
        """Forget an engine that failed and let it exit (quit, then kill), on this loop."""
        transport = self._all.pop(engine, None)
        if engine in self._idle:
            self._idle.remove(engine)
        if transport is not None:
            self._track(asyncio.ensure_future(self._quit(engine, transport)))

    @staticmethod
    async def _quit(engine: chess.engine.UciProtocol, transport: asyncio.SubprocessTransport) -> None:
        try:
            await asyncio.wait_for(engine.quit(), 2)
        except Exception:
            with contextlib.suppress(ProcessLookupError):
                transport.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(engine.returncode), 2)
        transport.close()

    async def aclose(self) -> None:
        """Stop every search and engine of this pool (call it on the pool's loop)."""
        self._closed = True
        for analysis in list(self._analyses.values()):
            analysis.stop()
        for _ in range(3):  # searches answer `stop` at once; their engines then quit (see _park)
            if self._pending:
                await asyncio.wait(set(self._pending), timeout=2)
        engines = list(self._all.items())
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(self._quit(e, t) for e, t in engines), return_exceptions=True)

    def kill(self) -> None:
        """Kill the engine processes of a pool whose loop is gone (nothing can be awaited there)
        and close their pipes as far as a closed loop allows (so nothing is left to the GC)."""
        self._closed = True
        for transport in self._all.values():
            proc = transport.get_extra_info("subprocess")  # the Popen: killed and reaped here
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(2)
            for fd in (0, 1, 2):
                with contextlib.suppress(Exception):
                    pipe = transport.get_pipe_transport(fd)
                    if pipe is not None:
                        raw = pipe.get_extra_info("pipe")
                        with contextlib.suppress(Exception):
                            pipe.close()
                        if raw is not None:
                            raw.close()
            with contextlib.suppress(Exception):
                transport.close()  # marks it closed; the closed loop refuses the rest
        self._all.clear()
        self._idle.clear()


def default_player() -> str:
    """Stockfish at depth 16 when installed, else sunfish at depth 3 (pure Python, deterministic)."""
    return "stockfish:depth=16" if find_engine("stockfish") else "sunfish:depth=3"


def default_speculator() -> str:
    """Stockfish at depth 8 (MultiPV) when installed, else sunfish at depth 1 plus its ranking."""
    return "stockfish:depth=8" if find_engine("stockfish") else "sunfish:depth=1"


def _prompt(board: chess.Board, ask: str) -> str:
    color = "White" if board.turn else "Black"
    legal = ", ".join(f"[{m.uci()}]" for m in board.legal_moves)
    return (
        f"You are playing {color} in a game of Chess.\n{ask}\n"
        f"Current board:\n{board}\nFEN: {board.fen()}\nValid moves: {legal}"
    )


@dataclass
class Players:
    """The two players and the speculator of a game.

    `check()` (called by `make_graph`) parses engine specs and builds chat
    models, so a bad spec fails before the game. Engines start on first use,
    on the running event loop, and stop in `aclose()` (call it on that loop).
    Every call is recorded in `timeline` (for the PNG and the per-ply lines).
    """

    white: Any = field(default_factory=default_player)
    black: Any = field(default_factory=default_player)
    speculator: Any = field(default_factory=default_speculator)
    cores: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    """Engine searches that may run at once; a branch search waits for a free one."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _running: int = 0
    _cpu: tuple[Any, asyncio.Condition] | None = None
    _engines: dict[str, EngineSpec] = field(default_factory=dict)
    _pools: dict[str, _EnginePool] = field(default_factory=dict)
    _models: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Resolve every spec now (no filesystem lookup), so a bad one fails before the game."""
        for who in ("white", "black", "speculator"):
            spec = getattr(self, who)
            check_spec(spec, who)
            if is_engine(spec):
                self._engines.setdefault(spec, parse_engine(spec, who))
            elif isinstance(spec, str) and spec not in self._models:
                self._models[spec] = chat_model(spec, f"{who} {redact(spec)!r}")

    def _pool(self, spec: str) -> _EnginePool:
        loop = asyncio.get_running_loop()
        if any(p.loop is not loop for p in self._pools.values()):
            self._abandon()
        if spec not in self._pools:
            if spec not in self._engines:
                self._engines[spec] = parse_engine(spec)
            self._pools[spec] = _EnginePool(self._engines[spec])
        return self._pools[spec]

    def _abandon(self) -> None:
        """Engines started on another event loop cannot be used here: stop them there, or kill them."""
        for pool in self._pools.values():
            if pool.loop.is_closed() or not pool.loop.is_running():
                pool.kill()
            else:
                asyncio.run_coroutine_threadsafe(pool.aclose(), pool.loop)
        self._pools.clear()

    def _model(self, spec: Any) -> Any:
        if not isinstance(spec, str):
            return spec
        if spec not in self._models:
            self._models[spec] = chat_model(spec)
        return self._models[spec]

    def describe(self) -> dict[str, str]:
        """What plays each role, e.g. white: "stockfish:depth=16 (Stockfish 15.1, /usr/games/stockfish)"."""
        out = {}
        for who in ("white", "black", "speculator"):
            spec = getattr(self, who)
            if is_engine(spec):
                engine = self._engines.get(spec) or parse_engine(spec, who)
                pool = self._pools.get(spec)
                version = pool.version if pool and pool.version else engine.name
                how = ""
                if who == "speculator" and pool is not None and pool.multipv is not None:
                    how = ", top-k by MultiPV" if pool.multipv else ", best move then a two-ply ranking"
                out[who] = f"{spec} ({version}, {engine.path}{how})"
            else:
                out[who] = f"{redact(spec) if isinstance(spec, str) else type(spec).__name__} (chat model)"
        return out

    async def move(
        self, board: chess.Board, *, speculative: bool = False, rank: int | None = None
    ) -> chess.Move | None:
        """The move of the player to move; None if a chat model gave no legal move."""
        spec = self.white if board.turn else self.black
        nice = 0 if not speculative else min(19, 1 + 9 * ((rank or 1) - 1))
        rec = actor_record(board, speculative, rank)
        self.timeline.append(rec)
        try:
            if is_engine(spec):
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
            if is_engine(self.speculator):
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
            if is_engine(spec):
                await self._pool(spec).warm(1 + (k * depth + 1 if len(specs) == 1 else k * depth))
        if is_engine(self.speculator):
            await self._pool(self.speculator).warm(1 + depth)

    async def aclose(self) -> None:
        """Stop every engine process (on the loop they run on)."""
        pools, self._pools = list(self._pools.values()), {}
        loop = asyncio.get_running_loop()
        for pool in pools:
            if pool.loop is loop:
                await pool.aclose()
            elif pool.loop.is_closed() or not pool.loop.is_running():
                pool.kill()
            else:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(pool.aclose(), pool.loop))
