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
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import msg_content_output

from langgraph_speculative import SpeculationReport

from ._calls import ToolGuess, call_key

__all__ = ("NODE", "Prefetch", "Run", "Turn", "as_served", "reply_of")

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
    """The tool call as the tool gets it (a placeholder id; the store, if injected)."""
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


def as_served(result: Any, call_id: str) -> ToolMessage | None:
    """A prefetch's result as the ToolMessage of the real call, or None if it may not be served.

    Only a successful `ToolMessage` is served: the tool node would have produced
    the same message (its content normalized the same way) under the real call's
    id. Errors, commands and anything else make the tool step run the call itself.
    """
    if not isinstance(result, ToolMessage) or result.status != "success":
        return None
    return result.model_copy(update={"tool_call_id": call_id, "content": msg_content_output(result.content)})


def placeholder_call(guess: ToolGuess, store_arg: str | None, store: Any) -> dict[str, Any]:
    """The tool call a prefetch runs: the guess, a throwaway id, the agent's store if injected."""
    args = dict(guess.args)
    if store_arg is not None:
        args[store_arg] = store
    return {"name": guess.name, "args": args, "id": f"speculative-{uuid.uuid4().hex}", "type": "tool_call"}


def key_of(call: dict[str, Any]) -> str | None:
    """The match key of a real tool call, or None if its arguments are not JSON data."""
    try:
        return call_key(call["name"], call.get("args") or {})
    except (TypeError, ValueError, KeyError):
        return None
