"""Random LangGraph apps for the lossless property: layouts, actors, speculators, features.

A `Spec` is drawn from a `random.Random` (hypothesis supplies one it controls, so it can shrink;
the statistics test and explicit seeds use plain ones). It describes a graph of 2-6 nodes in one
of seven layouts (chain, conditional, loop, fan-out, `Send` map-reduce, `Command` routing, a
subgraph), node latencies, speculators that are right, wrong, partly right, raise, hang, return
junk or low-confidence guesses, unsafe nodes with side effects, a node that asks a person
(`interrupt()`, resumed in a second turn), a node that raises, store reads and writes, the run's
`context`, custom keys and matches, and budgets.

Every actor computes from what LangGraph gives it (state or `Send` payload, `runtime.context`,
the store), so a right speculator can compute the same: it calls `compute` (no side effects).
Latches: on the speculative run, a main-run actor with a right speculator waits (at most 2 s)
until some branch has started a call after it began, so adoption is not left to a race.
"""

from __future__ import annotations

import asyncio
import operator
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

from langgraph_speculative import Guess, speculation_info

from . import oracle

LAYOUTS = ("chain", "cond", "loop", "fanout", "send", "command", "subgraph")
BEHAVIOURS = ("right",) * 6 + ("partly", "wrong", "raise", "hang", "junk", "unknown_key", "lowconf")
HELPFUL = ("right", "partly")


def last(a: Any, b: Any) -> Any:
    """Keep the newest value; parallel writes apply in LangGraph's task order."""
    return b


class State(TypedDict):
    v: Annotated[int, last]
    log: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]


@dataclass
class Ctx:
    """The run's context: every actor mixes `k` into what it computes."""

    k: int


@dataclass
class Spec:
    """One random app (see the module docstring)."""

    layout: str
    n: int
    slow: list[bool]
    speculators: dict[int, str]
    unsafe: set[int]
    interrupt: int | None
    raises: int | None
    store_write: int | None
    store_read: int | None
    custom_key: bool
    custom_match: bool
    k: int
    depth: int
    min_confidence: float | None
    max_inflight: int
    asynchronous: bool
    turns: int
    context: int
    stream: bool = False  # run the turns by `stream` (every mode) rather than `invoke`
    prefetch: frozenset[int] = frozenset()  # `prefetch=`: their successors launched early

    def describe(self) -> str:
        return (
            f"{self.layout} n={self.n} spec={self.speculators} unsafe={sorted(self.unsafe)} "
            f"interrupt={self.interrupt} raises={self.raises} store w/r={self.store_write}/{self.store_read} "
            f"key={self.custom_key} match={self.custom_match} k={self.k} depth={self.depth} "
            f"minconf={self.min_confidence} inflight={self.max_inflight} async={self.asynchronous} "
            f"turns={self.turns} ctx={self.context} slow={self.slow} stream={self.stream} "
            f"prefetch={sorted(self.prefetch)}"
        )


def random_spec(rnd: random.Random, asynchronous: bool | None = None) -> Spec:
    """Draw a `Spec`."""
    layout = rnd.choice(LAYOUTS)
    n = rnd.randint(3, 6) if layout in ("send", "command", "subgraph") else rnd.randint(2, 6)
    nodes = list(range(n))
    speculative = set(rnd.sample(nodes, rnd.randint(max(1, n // 2), n)))
    if layout == "subgraph":
        speculative.discard(1)  # the subgraph node: its result is the subgraph's whole state
        speculative = speculative or {0}
    others = [i for i in nodes if i not in speculative]
    unsafe = {i for i in others if rnd.random() < 0.2}
    free = [i for i in nodes if i not in unsafe]
    asks = rnd.choice(free) if free and rnd.random() < 0.15 else None
    # a node that raises, but not beside siblings: which siblings finish before LangGraph
    # cancels them is a matter of timing, for plain runs as much as for speculative ones
    raises = rnd.choice(nodes) if rnd.random() < 0.15 and layout not in ("fanout", "send") else None
    writer = rnd.choice(nodes) if rnd.random() < 0.25 else None
    reader = rnd.choice(nodes) if rnd.random() < 0.25 else None
    behaviours = {i: rnd.choice(BEHAVIOURS) for i in sorted(speculative)}
    if rnd.random() < 0.85:
        # most apps have one slow call with a right speculator and a safe node after it, so
        # that most examples must adopt (the others still check losslessness)
        if layout == "subgraph":
            n = max(n, 4)
            candidates = list(range(2, n - 1))
        elif layout in ("fanout", "send"):
            candidates = [0]
        else:
            candidates = list(range(n - 1))
        focus = rnd.choice(candidates)
        behaviours[focus] = "right"
        nexts = {focus + 1, focus + 2} if layout in ("cond", "command") else {focus + 1}
        if layout == "fanout":
            nexts = set(range(1, n))
        unsafe -= {focus, *nexts}
        if asks is not None:
            asks = None if asks in (focus, *nexts) or asks < focus else asks
    if _same_superstep(layout, n, writer, reader):
        # they would race in a plain run as much as in a speculative one: the reader reads
        # whatever the writer's thread got to first (not a property of speculation)
        reader = None
    return Spec(
        layout=layout,
        n=n,
        slow=[rnd.random() < 0.7 for _ in range(n)],
        speculators=behaviours,
        unsafe=unsafe,
        interrupt=asks,
        raises=raises,
        store_write=writer,
        store_read=reader,
        custom_key=rnd.random() < 0.25,
        custom_match=rnd.random() < 0.2,
        k=rnd.randint(1, 3),
        depth=rnd.randint(1, 3),
        min_confidence=0.5 if rnd.random() < 0.3 else None,
        max_inflight=rnd.choice([1, 2, 16, 16, 16]),
        asynchronous=rnd.random() < 0.5 if asynchronous is None else asynchronous,
        turns=rnd.randint(1, 2) if asks is None else 2,
        context=rnd.randint(0, 9),
        stream=rnd.random() < 0.5,  # drawn after the rest: earlier draws (and old seeds) unchanged
        prefetch=frozenset(i for i in nodes if rnd.random() < 0.4) if rnd.random() < 0.3 else frozenset(),
    )


def _same_superstep(layout: str, n: int, writer: int | None, reader: int | None) -> bool:
    """Can a store writer and a store reader (different tasks) run in one superstep?"""
    if writer is None or reader is None:
        return False
    if layout == "fanout":
        mids = range(1, n - 1)
        return writer in mids and reader in mids and writer != reader
    return layout == "send" and writer == 1 and reader == 1  # two `Send` workers


class Probe:
    """Side effects, calls and branch starts of one run."""

    def __init__(self, latch: bool) -> None:
        self.latch = latch
        self.effects: Counter[str] = Counter()
        self.branch_starts = 0
        self._cond = threading.Condition()
        self.recorder = oracle.Recorder()

    def effect(self, name: str, payload: Any = None) -> None:
        with self._cond:
            self.effects[name] += 1
        self.recorder.effect(name, payload)

    def started(self) -> int:
        """Note a start; the number of branch starts so far (before this one)."""
        with self._cond:
            before = self.branch_starts
            if speculation_info() is not None:
                self.branch_starts += 1
                self._cond.notify_all()
            return before

    def wait_sync(self, before: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.branch_starts > before, timeout=2.0)

    async def wait_async(self, before: int) -> None:
        deadline = time.monotonic() + 2.0
        while self.branch_starts <= before and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


def compute(spec: Spec, i: int, state: Any, k: int) -> Any:
    """What node i returns (without its side effects)."""
    v = (state["v"] * 31 + i + 7 + k) % 101
    out: dict[str, Any] = {"v": v, "log": [f"n{i}:{v}"]}
    if spec.layout == "send" and i == 1:
        out = {"log": [f"n1:{state['j']}:{(state['v'] * 7 + state['j'] + k) % 101}"]}
    elif i % 2 == 0:
        out["messages"] = [AIMessage(content=f"n{i} says {v}")]
    if spec.store_read == i:
        item = get_store().get(("s",), "w")
        out["log"] = [*out["log"], f"r{i}:{item.value['v'] if item else None}"]
    if spec.layout == "command" and i < spec.n - 2:
        return Command(update=out, goto=f"n{i + 1}" if v % 2 else f"n{i + 2}")
    return out


def _effects(spec: Spec, i: int, probe: Probe, result: Any) -> Any:
    update = result.update if isinstance(result, Command) else result
    if i in spec.unsafe:
        probe.effect(f"n{i}", update)
    if spec.store_write == i and "v" in update:
        get_store().put(("s",), "w", {"v": update["v"]})
    if spec.raises == i and update.get("v", 1) % 5 == 0:
        raise ValueError(f"n{i} failed at {update['v']}")
    return result


def _ask(result: Any, i: int) -> Any:
    """The node that asks a person: its answer goes into the log (its code shows the call)."""
    update = result.update if isinstance(result, Command) else result
    answer = interrupt(f"n{i}?")
    update = {**update, "log": [*update["log"], f"answer:{answer}"]}
    return Command(update=update, goto=result.goto) if isinstance(result, Command) else update


def waits(spec: Spec, i: int) -> bool:
    """Does node i's main-run actor wait for a branch to start (its guess is helpful)?

    Not when it runs beside another speculative call of its superstep (a `Send` worker, a
    fan-out's middle nodes): a branch of one resumes the superstep with the others' real
    results, so it starts nothing before they finish, and they would be waiting for it."""
    if spec.speculators.get(i) not in HELPFUL:
        return False
    if not any(
        j not in spec.unsafe and j != spec.interrupt and not (spec.layout == "subgraph" and j == 1)
        for j in successors(spec, i)
    ):
        return False  # nothing after it runs on a branch: no branch would start anything
    if spec.layout == "send" and i == 1:
        return False
    if spec.layout == "fanout" and 0 < i < spec.n - 1:
        mids = [j for j in range(1, spec.n - 1) if j in spec.speculators]
        return len(mids) < 2
    return True


def successors(spec: Spec, i: int) -> set[int]:
    """The nodes that can run right after node i."""
    n = spec.n
    if spec.layout in ("cond", "command"):
        return {j for j in (i + 1, i + 2) if j < n}
    if spec.layout == "loop":
        return {i + 1} if i + 1 < n else {0}
    if spec.layout == "fanout":
        if i == 0:
            return set(range(1, n - 1)) or {n - 1}
        return {n - 1} if i < n - 1 else set()
    return {i + 1} if i + 1 < n else set()  # chain, subgraph, send (n0 -> n1 by Send -> n2 ...)


def make_actor(spec: Spec, i: int, probe: Probe, inner: bool = False) -> Any:
    if spec.interrupt == i and not inner:
        return _asking_actor(spec, i, probe)
    delay = (0.03 + 0.01 * (i % 3)) if spec.slow[i] else 0.002 * (i % 2)
    wait = waits(spec, i) and not inner  # a subgraph's own nodes are not speculated

    if spec.asynchronous:

        async def anode(state: Any, runtime: Any) -> Any:  # noqa: ANN401
            _record(probe, i, state, runtime)
            before = probe.started()
            if probe.latch and wait and speculation_info() is None:
                await probe.wait_async(before)
            await asyncio.sleep(delay)
            return _effects(spec, i, probe, compute(spec, i, state, runtime.context.k))

        anode.__name__ = f"n{i}"
        return _untyped(anode)

    def node(state: Any, runtime: Any) -> Any:  # noqa: ANN401
        _record(probe, i, state, runtime)
        before = probe.started()
        if probe.latch and wait and speculation_info() is None:
            probe.wait_sync(before)
        time.sleep(delay)
        return _effects(spec, i, probe, compute(spec, i, state, runtime.context.k))

    node.__name__ = f"n{i}"
    return _untyped(node)


def _asking_actor(spec: Spec, i: int, probe: Probe) -> Any:
    if spec.asynchronous:

        async def anode(state: Any, runtime: Any) -> Any:  # noqa: ANN401
            _record(probe, i, state, runtime)
            probe.started()
            await asyncio.sleep(0.01)
            return _ask(_effects(spec, i, probe, compute(spec, i, state, runtime.context.k)), i)

        anode.__name__ = f"n{i}"
        return _untyped(anode)

    def node(state: Any, runtime: Any) -> Any:  # noqa: ANN401
        _record(probe, i, state, runtime)
        probe.started()
        time.sleep(0.01)
        return _ask(_effects(spec, i, probe, compute(spec, i, state, runtime.context.k)), i)

    node.__name__ = f"n{i}"
    return _untyped(node)


def _record(probe: Probe, i: int, state: Any, runtime: Any) -> None:
    """Log the call with what the actor reads (`v`, a `Send` payload's `j`, the context)."""
    probe.recorder.call(f"n{i}", {"v": state["v"], "j": state.get("j"), "k": runtime.context.k})


def _untyped(fn: Any) -> Any:
    fn.__annotations__ = {}  # LangGraph injects `runtime` by name when it is not annotated otherwise
    return fn


def make_speculator(spec: Spec, i: int) -> Any:
    behaviour = spec.speculators[i]

    def wrong_of(right: Any) -> Any:
        update = right.update if isinstance(right, Command) else right
        wrong = {**update, "v": (update.get("v", 0) + 50) % 101, "log": [f"wrong{i}"]}
        return Command(update=wrong, goto=right.goto) if isinstance(right, Command) else wrong

    def guesses(state: Any, runtime: Any) -> Any:  # noqa: ANN401
        with oracle.speculating():  # its store reads are speculation, not the run's
            right = compute(spec, i, state, runtime.context.k)
        wrong = wrong_of(right)
        if behaviour == "right":
            return [right, wrong]
        if behaviour == "wrong":
            return [wrong, {"v": -1}]
        if behaviour == "partly":
            return [wrong, right]
        if behaviour == "lowconf":
            return [Guess(right, confidence=0.1), Guess(wrong, confidence=0.9)]
        if behaviour == "junk":
            return 42
        if behaviour == "unknown_key":
            return [{"nope": 1}, right]
        raise RuntimeError(f"speculator {i} broke")

    if spec.asynchronous:

        async def aspec(state: Any, runtime: Any) -> Any:  # noqa: ANN401
            if behaviour == "hang":
                await asyncio.sleep(30)
            return guesses(state, runtime)

        return _untyped(aspec)

    def sspec(state: Any, runtime: Any) -> Any:  # noqa: ANN401
        if behaviour == "hang":
            time.sleep(0.15)  # sync code cannot be interrupted: a bounded hang
        return guesses(state, runtime)

    return _untyped(sspec)


def build(spec: Spec, probe: Probe) -> StateGraph:  # type: ignore[type-arg]
    """The graph `spec` describes (uncompiled)."""
    b = StateGraph(State, context_schema=Ctx)
    names = [f"n{i}" for i in range(spec.n)]
    for i, name in enumerate(names):
        if spec.layout == "subgraph" and i == 1:
            inner = StateGraph(State, context_schema=Ctx)
            inner.add_node("s0", make_actor(spec, 0, probe, inner=True))
            inner.add_node("s1", make_actor(spec, 2, probe, inner=True))
            inner.add_edge(START, "s0")
            inner.add_edge("s0", "s1")
            inner.add_edge("s1", END)
            b.add_node(name, inner.compile())
        elif spec.layout == "command" and i < spec.n - 2:
            b.add_node(name, make_actor(spec, i, probe), destinations=(names[i + 1], names[i + 2]))
        else:
            b.add_node(name, make_actor(spec, i, probe))
    b.add_edge(START, names[0])
    if spec.layout in ("chain", "subgraph"):
        for a, c in zip(names, names[1:]):
            b.add_edge(a, c)
        b.add_edge(names[-1], END)
    elif spec.layout == "cond":
        for j, a in enumerate(names[:-1]):
            nxt, skip = names[j + 1], names[min(j + 2, len(names) - 1)]
            b.add_conditional_edges(a, lambda s, nxt=nxt, skip=skip: nxt if s["v"] % 3 else skip, [nxt, skip])
        b.add_edge(names[-1], END)
    elif spec.layout == "loop":
        for a, c in zip(names, names[1:]):
            b.add_edge(a, c)
        b.add_conditional_edges(
            names[-1], lambda s: names[0] if len(s["log"]) < 2 * spec.n else END, [names[0], END]
        )
    elif spec.layout == "fanout":
        mids = names[1:-1] or [names[-1]]
        for m in mids:
            b.add_edge(names[0], m)
        if len(names) > 2:
            b.add_edge(mids, names[-1])
        b.add_edge(names[-1], END)
    elif spec.layout == "send":
        b.add_conditional_edges(
            "n0", lambda s: [Send("n1", {"v": s["v"], "j": j}) for j in range(1 + s["v"] % 3)], ["n1"]
        )
        b.add_edge("n1", "n2")
        for a, c in zip(names[2:], names[3:]):
            b.add_edge(a, c)
        b.add_edge(names[-1], END)
    else:  # command: node i goes to i+1 or i+2 itself; the last two are a chain
        b.add_edge(names[-2], names[-1])
        b.add_edge(names[-1], END)
    return b


def key_v(state: Any) -> Any:
    """A custom key: the actors read only `v` (and `j`, the `Send` payload's)."""
    return (state.get("v"), state.get("j"))


def match_v(guess: Any, actual: Any) -> bool:
    """A custom match on what the next actors read: `v` (and where a `Command` goes)."""

    def view(x: Any) -> Any:
        if isinstance(x, Command):
            return (view(x.update), x.goto)
        return x.get("v") if isinstance(x, dict) else x

    return bool(view(guess) == view(actual))


@dataclass
class RunResult:
    """Everything one run showed (the oracle's `Observation`) and what speculation reported."""

    obs: oracle.Observation = field(default_factory=oracle.Observation)
    threads: set[str] = field(default_factory=set)
    adopted: int = 0
    events: list[str] = field(default_factory=list)
