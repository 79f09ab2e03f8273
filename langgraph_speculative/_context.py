"""What the core modules share: the context variable that tells a node which speculation it runs
in, the signal that ends a branch, and the few facts of LangGraph's runtime the session reads.

Everything else imports from here; this module imports nothing of the library's own (its types
only, for annotations), so the core has a one-way flow: `_context` <- `_session` <- `_compile`.
A node reaches its run through `NodeHost`, the small interface a `Session` provides.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langgraph.errors import GraphBubbleUp

if TYPE_CHECKING:
    import asyncio

    from langchain_core.runnables import RunnableConfig

    from ._state import Binding, Branch, Entry

__all__ = ("SHED", "BranchStop", "NodeHost", "SpeculationInfo", "current", "exec_info", "speculation_info")


class BranchStop(GraphBubbleUp):
    """Ends a branch at a node it must not pass or need not run (not an error).

    A `GraphBubbleUp`, like LangGraph's own interrupts: no `RetryPolicy` retries it, it is
    never saved as a task error, and it does not cancel the other tasks of its superstep.
    """


class Contained(Exception):
    """A `BaseException` (KeyboardInterrupt, SystemExit, ...) raised by speculative user code,
    carried as an ordinary exception so that it cannot stop the event loop it runs on."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exc = exc


@dataclass(frozen=True)
class SpeculationInfo:
    """What a node or actor running speculatively can know about it (`speculation_info()`)."""

    node: str
    """The speculative node whose guess the branch follows."""
    rank: int
    """The guess's rank among the speculator's guesses (1 is its best)."""
    level: int
    """How many guesses deep the branch is (1: a guess of a call the main run is making)."""


class _Bindings(Protocol):
    @property
    def bindings(self) -> dict[str, Binding]: ...


class NodeHost(Protocol):
    """What a speculative node's wrapper needs from the run it is called in (a `Session`): the
    node depends on this, never on the session itself."""

    @property
    def plan(self) -> _Bindings: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    def main_sync(self, b: Binding, state: Any, config: RunnableConfig) -> Any: ...

    async def main_async(self, b: Binding, state: Any, config: RunnableConfig) -> Any: ...

    async def branch_node(self, b: Binding, state: Any, config: RunnableConfig, branch: Branch) -> Any: ...


class Ctx:
    """The speculation a piece of work belongs to: the main run (`branch is None`) or a branch.

    It holds its session weakly: contexts copied into tasks and threads keep a `Ctx` alive, and
    a strong reference would put the session (and all its run holds) in a cycle that only the
    cyclic collector frees. `session` is None once the run is over, and in a run that does not
    speculate because the process was busy when it started (`SHED`).
    """

    __slots__ = ("_session", "branch", "entry")

    def __init__(
        self, session: NodeHost | None, branch: Branch | None = None, entry: Entry | None = None
    ) -> None:
        self._session = weakref.ref(session) if session is not None else None
        self.branch = branch
        self.entry = entry  # set inside an early call

    @property
    def session(self) -> NodeHost | None:
        return self._session() if self._session is not None else None


SHED = Ctx(None)
"""The context of a speculative graph's run that sheds all speculation: it runs as the plain graph."""


_CURRENT: ContextVar[Ctx | None] = ContextVar("langgraph_speculative", default=None)


def current() -> Ctx | None:
    """The speculation context of the running code, if any."""
    return _CURRENT.get()


def speculation_info() -> SpeculationInfo | None:
    """`None` on the main run (and outside any speculative graph); on a branch, or in a call
    launched early on one, which guess it follows.

    Use it to run speculative work at a lower priority. What a node returns must not depend
    on it: an early call is adopted as if the main run had made it.
    """
    ctx = _CURRENT.get()
    if ctx is None or ctx.branch is None:
        return None
    branch = ctx.branch
    return SpeculationInfo(node=branch.parent.name, rank=branch.rank, level=branch.level)


def exec_info() -> Any:
    """LangGraph's `ExecutionInfo` of the running task (checkpoint, task and thread ids), or None."""
    from langgraph.runtime import get_runtime

    try:
        return get_runtime().execution_info
    except Exception:
        return None
