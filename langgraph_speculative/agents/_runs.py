"""What one agent run's speculation holds: its prefetches, the kept ones, its report.

A run is one `invoke`/`stream` (or async twin) of the agent. LangGraph gives
every invocation its own stream writer, shared by all of its nodes, so a run
is keyed by `(thread id, the writer)`: a resumed run (after an interrupt) is a
new run and never sees the prefetches of the one it resumes.

A turn is one model call. While it runs, guessed read-only calls are launched
as prefetches. When the model replies, `settle` keeps the prefetches whose
call the reply makes (bound to the reply's call id) and cancels the rest.
The tool step then `take`s a kept prefetch for a call with the same id, name
and arguments, or finds nothing and runs the tool as usual.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import msg_content_output

from langgraph_speculative import SpeculationReport

from ._calls import ToolGuess, call_key
from ._inspect import Injected

__all__ = (
    "NODE",
    "Env",
    "Prefetch",
    "Run",
    "Turn",
    "as_served",
    "placeholder_call",
    "reply_of",
    "same_state",
)

NODE = "model"
"""The name speculation counters are kept under in a report (create_agent's model node)."""

Mode = Literal["sync", "async"]


@dataclass(eq=False)
class Prefetch:
    """One guessed read-only call, started early."""

    guess: ToolGuess
    rank: int
    tool: BaseTool
    turn: Turn
    call: dict[str, Any]
    """The tool call as the tool gets it (a placeholder id; injected store, state, runtime)."""
    snapshot: Any = None
    """The state the call was given (injected state, `ToolRuntime.state`), or None if it reads none."""
    read: set[str] = field(default_factory=set)
    """The state keys the call read (`*`: it went through all of them; `WROTE`: it tried to write)."""
    writes: list[Any] = field(default_factory=list)
    """What the call wrote to its `ToolRuntime.stream_writer`, replayed when it is served."""
    launched_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    future: concurrent.futures.Future[Any] | None = None
    task: asyncio.Task[Any] | None = None
    state: str = "running"
    """running -> kept -> adopted; or cancelled / dropped (never used)."""

    @property
    def done(self) -> bool:
        work = self.task if self.task is not None else self.future
        return work is not None and work.done()

    def cancel(self) -> bool:
        """Ask the call to stop; True if it will not (or did not) finish its work."""
        if self.task is not None:
            loop = self.task.get_loop()
            if loop.is_closed():
                return True
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self.task.cancel()
            else:
                loop.call_soon_threadsafe(self.task.cancel)
            return True
        if self.future is not None:
            return self.future.cancel() or self.future.done()
        return True

    def hidden_s(self, asked_at: float) -> float:
        """How long the call had been running when the tool step asked for it."""
        end = asked_at if self.finished_at is None else min(self.finished_at, asked_at)
        return max(0.0, end - self.launched_at)


@dataclass(eq=False)
class Turn:
    """One model call and the prefetches launched while it ran."""

    run: Run
    mode: Mode
    started_at: float = field(default_factory=time.monotonic)
    prefetches: dict[str, Prefetch] = field(default_factory=dict)
    """By match key (tool name and canonical arguments)."""
    closed: bool = False
    """The model has replied (or failed): nothing more is launched."""
    speculator_done: bool = False
    timed_out: bool = False
    """The speculator overran `speculator_timeout` (counted once, whoever notices first)."""
    stopper: Any = None
    """Cancels the speculator call when the model replies first."""
    shed: bool = False
    """Started while the process was busy with other runs: it does not speculate."""
    counted_out: bool = False
    """`Engine.end_turn` has given its count of active runs back."""


class Run:
    """Speculation state of one agent run."""

    def __init__(self, key: tuple[Any, int], thread_id: str | None, writer: Any) -> None:
        self.key = key
        self.thread_id = thread_id
        self.writer = writer  # held, so its id is not reused while this run lives
        self.report = SpeculationReport()
        self.started_at = time.monotonic()
        self.lock = threading.RLock()
        self.turn: Turn | None = None
        self.kept: dict[tuple[str, str], Prefetch] = {}
        self.launched: list[Prefetch] = []
        self.closed = False

    def live(self) -> list[Prefetch]:
        """Prefetches not yet settled for good (running, or kept and not taken)."""
        with self.lock:
            return [p for p in self.launched if p.state in ("running", "kept")]


def reply_of(state: Any, call_id: str) -> AIMessage | None:
    """The model reply in `state` that made the call with id `call_id`."""
    messages = state.get("messages") if isinstance(state, dict) else getattr(state, "messages", None)
    for message in reversed(messages or []):
        if isinstance(message, AIMessage) and any(c.get("id") == call_id for c in message.tool_calls):
            return message
    return None


def as_served(result: Any, call_id: str, placeholder: str | None = None) -> ToolMessage | None:
    """A prefetch's result as the ToolMessage of the real call, or None if it may not be served.

    Only a successful `ToolMessage` is served: the tool node would have produced
    the same message (its content normalized the same way) under the real call's
    id. Errors, commands and anything else make the tool step run the call itself,
    and so does a result that shows the prefetch's `placeholder` call id (the real
    call would have shown its own).
    """
    if not isinstance(result, ToolMessage) or result.status != "success":
        return None
    if placeholder is not None and placeholder in f"{result.content}{result.artifact!r}":
        return None
    return result.model_copy(update={"tool_call_id": call_id, "content": msg_content_output(result.content)})


class Env:
    """What a model call knows of its agent run, for the arguments its tools get injected:
    the node's `Runtime` (context, store, stream writer, execution and server info), the
    agent's state at the model call and the agent's tools."""

    def __init__(self, runtime: Any, state: Any, tools: list[BaseTool]) -> None:
        self.runtime = runtime
        self.state = state
        self.tools = tools
        self.store = getattr(runtime, "store", None)
        self._snapshot: Any = None
        self._lock = threading.Lock()

    def snapshot(self) -> Any:
        """A deep copy of the state (taken once): what tools that read the state are given."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = _deep_copy(self.state)
            return self._snapshot


def _deep_copy(state: Any) -> Any:
    try:
        return copy.deepcopy(state)
    except Exception:
        return dict(state) if isinstance(state, dict) else state


@dataclass
class Prepared:
    """A prefetch's tool call and config, and what it is given to read and write."""

    call: dict[str, Any]
    config: RunnableConfig
    snapshot: Any
    read: set[str]
    writes: list[Any]


def placeholder_call(guess: ToolGuess, injected: Injected, env: Env, config: RunnableConfig) -> Prepared:
    """The tool call a prefetch runs and its config, as the agent's tool node would build them
    for the real call: the guessed arguments, a throwaway id, and what the tool gets injected
    (the store; the state, a copy taken at the model call, whose reads are recorded; a
    `ToolRuntime` with that state, the run's context and store, a stream writer that buffers)."""
    from langgraph.prebuilt import ToolRuntime

    call_id = f"speculative-{uuid.uuid4().hex}"
    hidden = set(injected.state) | {n for n in (injected.store, injected.runtime) if n is not None}
    args = {k: v for k, v in guess.args.items() if k not in hidden}
    writes: list[Any] = []
    read: set[str] = set()
    snapshot = env.snapshot() if injected.reads_state else None
    view = _Watched(snapshot, read) if isinstance(snapshot, dict) else snapshot
    if snapshot is not None:
        config = {**config, "configurable": {**(config.get("configurable") or {}), **_state_io(view, read)}}
    if injected.store is not None:
        args[injected.store] = env.store
    for param, name in injected.state.items():
        if name is None:
            args[param] = view
        else:
            read.add(name)
            if isinstance(snapshot, dict) and name in snapshot:
                args[param] = snapshot[name]
            elif hasattr(snapshot, name):
                args[param] = getattr(snapshot, name)
    if injected.runtime is not None:
        given: dict[str, Any] = {
            "state": view,
            "context": getattr(env.runtime, "context", None),
            "config": config,
            "stream_writer": writes.append,
            "tool_call_id": call_id,
            "store": env.store,
            "tools": list(env.tools),
            "execution_info": getattr(env.runtime, "execution_info", None),
            "server_info": getattr(env.runtime, "server_info", None),
        }
        known = {f.name for f in dataclasses.fields(ToolRuntime)}
        args[injected.runtime] = ToolRuntime(**{k: v for k, v in given.items() if k in known})
    call = {"name": guess.name, "args": args, "id": call_id, "type": "tool_call"}
    return Prepared(call, config, snapshot, read, writes)


class _Watched(dict):  # type: ignore[type-arg]
    """The state as a prefetch sees it: a dict that records which keys are read (`*`: all)."""

    def __init__(self, data: dict[str, Any], read: set[str]) -> None:
        super().__init__(data)
        self.read = read

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        self.read.add(key)
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self.read.add("*")
        return super().__iter__()

    def keys(self) -> Any:
        self.read.add("*")
        return super().keys()

    def values(self) -> Any:
        self.read.add("*")
        return super().values()

    def items(self) -> Any:
        self.read.add("*")
        return super().items()

    def copy(self) -> dict[str, Any]:
        self.read.add("*")
        return dict(super().items())

    def __reduce_ex__(self, protocol: Any) -> Any:
        self.read.add("*")
        return (dict, (dict(super().items()),))


# LangGraph's config keys for a task's reads and writes of channels. Tools that keep their data in
# the agent's state read it through them (deepagents' `StateBackend` reads `files` so): a prefetch
# reads the state copy it was given, and a write makes it fail (it is then never served).
_READ_KEY = "__pregel_read"
_SEND_KEY = "__pregel_send"


WROTE = "<wrote>"
"""Recorded among a prefetch's reads when it tried to write the state."""


def _state_io(snapshot: Any, read_keys: set[str]) -> dict[str, Any]:
    def read(select: Any, fresh: bool = False) -> Any:
        get = snapshot.get if isinstance(snapshot, dict) else lambda k: getattr(snapshot, k, None)  # noqa: E731
        if isinstance(select, str):
            return get(select)
        return {k: get(k) for k in select}

    def send(writes: Any) -> None:
        read_keys.add(WROTE)
        raise RuntimeError(
            "a tool that runs early (SpeculativeToolCalls read_only) wrote to the agent's state: "
            "it is not read-only; remove it from read_only (or its readOnlyHint)"
        )

    return {_READ_KEY: read, _SEND_KEY: send}


def same_state(snapshot: Any, real: Any, reply: AIMessage) -> bool:
    """Whether the state a prefetch was given is the real call's state before the model's reply:
    every key equal, and the real messages are the given ones and then the reply. (A prefetch
    that read the messages is never served: the real call would have seen the reply too.)"""
    if not isinstance(snapshot, dict) or not isinstance(real, dict):
        return bool(snapshot == real)
    for key in set(snapshot) | set(real):
        if key == "messages":
            continue
        mine, theirs = snapshot.get(key), real.get(key)
        if mine is not theirs and mine != theirs:
            return False
    messages = list(real.get("messages") or [])
    return bool(messages == [*(snapshot.get("messages") or []), reply])


def key_of(call: dict[str, Any]) -> str | None:
    """The match key of a real tool call, or None if its arguments are not JSON data."""
    try:
        return call_key(call["name"], call.get("args") or {})
    except (TypeError, ValueError, KeyError):
        return None
