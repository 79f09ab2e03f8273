"""`ToolPatternSpeculator`: next tool calls from the patterns of the agent's own finished runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from ._traces import Source, Step, Trace, candidates, norm, sources_of, trace_of

__all__ = ("ToolPatternSpeculator",)

START = "<start>"
END = "<end>"
ArgKey = tuple[str, str]


class _Counts:
    """Everything learned, as counts that traces add (sign +1) or take back (sign -1)."""

    def __init__(self) -> None:
        self.follows: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.argsets: defaultdict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self.calls: Counter[str] = Counter()
        self.repeats: Counter[str] = Counter()
        self.uses: Counter[ArgKey] = Counter()
        self.types: defaultdict[ArgKey, Counter[str]] = defaultdict(Counter)
        self.consts: defaultdict[ArgKey, Counter[str]] = defaultdict(Counter)
        self.explained: defaultdict[ArgKey, Counter[Source]] = defaultdict(Counter)
        self.ranks: defaultdict[tuple[str, str, Source], Counter[int]] = defaultdict(Counter)

    def add(self, trace: Trace, sign: int = 1) -> None:
        steps = trace.steps
        for i, step in enumerate(steps):
            before = steps[:i]
            self.follows[before[-1].name if before else START][step.name] += sign
            self.argsets[step.name][tuple(sorted(step.args))] += sign
            self.calls[step.name] += sign
            if any(s.name == step.name and s.args == step.args for s in before):
                self.repeats[step.name] += sign
            texts = trace.texts[: step.said]
            for arg, value in step.args.items():
                key = (step.name, arg)
                self.uses[key] += sign
                self.types[key][type(value).__name__] += sign
                self.consts[key][json.dumps(value, sort_keys=True, default=str)] += sign
                for source, rank in sources_of(value, step.name, arg, before, texts):
                    self.explained[key][source] += sign
                    self.ranks[(step.name, arg, source)][rank] += sign
        for end in trace.ends:
            self.follows[steps[end - 1].name if 0 < end <= len(steps) else START][END] += sign


def _rank_probs(counts: Counter[int], n: int) -> list[float]:
    """P(the value is the i-th candidate), i < n, add-one smoothed."""
    weights = [max(counts.get(i, 0), 0) + 1.0 for i in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


def _cast(value: Any, types: Counter[str]) -> Any:
    kind = types.most_common(1)[0][0] if types else None
    try:
        if kind == "str" and not isinstance(value, str):
            return str(value)
        if kind == "int" and not isinstance(value, int):
            return int(value)
        if kind == "float" and not isinstance(value, float):
            return float(value)
    except (TypeError, ValueError):
        return value
    return value


class ToolPatternSpeculator:
    """Guesses an agent's next tool calls from the patterns of its finished runs.

    PASTE-style ("Act While Thinking", arXiv 2603.18897): it learns which tool
    call follows which (counts of the next tool after the previous one, and of
    a final answer instead), each tool's usual arguments, and where each
    argument's value came from: a field of an earlier tool result (e.g. the
    first not-yet-fetched id in `orders`), an earlier call's argument, a span
    of the user's words (an email, an order number), a span of an earlier text
    result, or a constant. At a new point of a conversation it proposes the
    calls those sources give, scored `P(tool | previous tool) x P(each value)`.
    No model, no key: it costs microseconds to milliseconds.

    Use it as `SpeculativeToolCalls(ToolPatternSpeculator(), read_only=...)`:
    the middleware shows it every finished run (`observe`), so it learns from
    the agent's own traffic. With `store=` (any LangGraph `BaseStore`) the runs
    are kept under `namespace`, one item per conversation thread, and a new
    instance on the same store picks them up: learning survives restarts.
    `fit(conversations)` learns from recorded conversations up front.

    It returns its `k` best guesses (default 8, writes included: it does not
    know which tools are safe); the middleware launches the best
    `policy.k` of those in `read_only`, so keep `k` above `policy.k`.
    """

    def __init__(
        self,
        *,
        store: Any = None,
        namespace: tuple[str, ...] = ("langgraph_speculative", "tool_patterns"),
        k: int = 8,
        max_traces: int = 1000,
        max_chars: int = 20_000,
    ) -> None:
        if store is not None and not all(callable(getattr(store, m, None)) for m in ("put", "search")):
            raise TypeError(f"ToolPatternSpeculator(store={store!r}) must be a LangGraph BaseStore.")
        if (
            not isinstance(namespace, tuple)
            or not namespace
            or not all(isinstance(p, str) for p in namespace)
        ):
            raise TypeError(f"ToolPatternSpeculator(namespace={namespace!r}) must be a tuple of strings.")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"ToolPatternSpeculator(k={k!r}) must be a whole number >= 1.")
        self.store = store
        self.namespace = namespace
        self.k = k
        self.max_traces = max_traces
        self.max_chars = max_chars
        self._traces: dict[str, Trace] = {}
        self._counts = _Counts()
        self._lock = threading.RLock()
        self._loaded = store is None

    # ------------------------------------------------------------------ learning

    @classmethod
    def fit(
        cls, conversations: Iterable[Sequence[BaseMessage] | dict[str, Any]], **kwargs: Any
    ) -> ToolPatternSpeculator:
        """A speculator that has learned from `conversations` (message lists or agent states)."""
        spec = cls(**kwargs)
        for conversation in conversations:
            spec.learn(conversation)
        return spec

    def learn(self, conversation: Sequence[BaseMessage] | dict[str, Any], *, key: str | None = None) -> str:
        """Learn from one conversation, in memory only. Same `key` again replaces it."""
        key = key or uuid.uuid4().hex
        trace = trace_of(_messages(conversation))
        with self._lock:
            old = self._traces.pop(key, None)
            if old is not None:
                self._counts.add(old, -1)
            self._traces[key] = trace
            self._counts.add(trace)
            while len(self._traces) > self.max_traces:
                oldest = next(iter(self._traces))
                self._counts.add(self._traces.pop(oldest), -1)
        return key

    def observe(self, state: Sequence[BaseMessage] | dict[str, Any], *, key: str | None = None) -> None:
        """Learn from a finished run (the middleware calls this), and keep it in the store.

        `key` is the conversation's thread id: a thread seen again replaces its
        earlier trace, so a conversation is never counted twice.
        """
        self.load()
        key = self.learn(state, key=key)
        if self.store is not None:
            self.store.put(self.namespace, key, self._traces[key].as_json(self.max_chars), index=False)

    async def aobserve(
        self, state: Sequence[BaseMessage] | dict[str, Any], *, key: str | None = None
    ) -> None:
        """Async twin of `observe`."""
        await self.aload()
        key = self.learn(state, key=key)
        if self.store is not None:
            await self.store.aput(self.namespace, key, self._traces[key].as_json(self.max_chars), index=False)

    def load(self) -> int:
        """Learn the runs kept in the store (once; later calls do nothing). Returns how many."""
        if self._loaded:
            return 0
        items: list[Any] = []
        offset = 0
        while len(items) < self.max_traces:
            page = self.store.search(self.namespace, limit=100, offset=offset)
            items += page
            offset += len(page)
            if len(page) < 100:
                break
        return self._learn_items(items)

    async def aload(self) -> int:
        """Async twin of `load`."""
        if self._loaded:
            return 0
        items: list[Any] = []
        offset = 0
        while len(items) < self.max_traces:
            page = await self.store.asearch(self.namespace, limit=100, offset=offset)
            items += page
            offset += len(page)
            if len(page) < 100:
                break
        return await asyncio.get_running_loop().run_in_executor(None, self._learn_items, items)

    def _learn_items(self, items: list[Any]) -> int:
        with self._lock:
            if self._loaded:
                return 0
            n = 0
            for item in items[: self.max_traces]:
                if item.key in self._traces:
                    continue
                try:
                    trace = Trace.from_json(item.value)
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue  # not one of ours, or damaged: skip it
                self._traces[item.key] = trace
                self._counts.add(trace)
                n += 1
            self._loaded = True
            return n

    @property
    def runs(self) -> int:
        """How many conversations it has learned from."""
        return len(self._traces)

    # ------------------------------------------------------------------ guessing

    def __call__(self, state: Sequence[BaseMessage] | dict[str, Any]) -> list[dict[str, Any]]:
        """The `k` likeliest next tool calls `{"name", "args", "confidence"}`, best first."""
        return self.guess(state)

    def invoke(self, state: Any, **_: Any) -> list[dict[str, Any]]:
        """Sync twin, for the middleware."""
        return self.guess(state)

    async def ainvoke(self, state: Any, **_: Any) -> list[dict[str, Any]]:
        """Async twin, for the middleware: learns the store first if needed, then guesses."""
        if not self._loaded:
            await self.aload()
        return await asyncio.get_running_loop().run_in_executor(None, self.guess, state)

    def guess(
        self, state: Sequence[BaseMessage] | dict[str, Any], k: int | None = None
    ) -> list[dict[str, Any]]:
        """The `k` (default `self.k`) likeliest next calls after `state`'s messages."""
        self.load()
        trace = trace_of(_messages(state))
        with self._lock:
            scored = self._score(trace.steps, trace.texts)
        return [{"name": n, "args": a, "confidence": round(p, 6)} for p, n, a in scored[: k or self.k]]

    def _score(self, steps: list[Step], texts: list[str]) -> list[tuple[float, str, dict[str, Any]]]:
        c = self._counts
        follows = c.follows.get(steps[-1].name if steps else START)
        if not follows or sum(follows.values()) <= 0:
            follows = Counter({t: n for t, n in c.calls.items() if n > 0})
        total = sum(v for v in follows.values() if v > 0)
        out: list[tuple[float, str, dict[str, Any]]] = []
        for tool, count in follows.most_common():
            if tool == END or count <= 0:
                continue
            p_tool = count / total
            argsets = c.argsets.get(tool)
            if not argsets or argsets.most_common(1)[0][1] <= 0:
                continue
            names = argsets.most_common(1)[0][0]
            options = [self._values(tool, a, steps, texts) for a in names]
            if any(not o for o in options):
                continue
            repeat = (c.repeats[tool] + 0.5) / (c.calls[tool] + 1.0)
            for combo in itertools.islice(itertools.product(*options), 27):
                args = {a: v for a, (_, v) in zip(names, combo)}
                p = p_tool
                for score, _ in combo:
                    p *= score
                if any(s.name == tool and s.args == args for s in steps):
                    p *= repeat
                out.append((p, tool, args))
        out.sort(key=lambda x: -x[0])
        seen: set[str] = set()
        unique = []
        for p, tool, args in out:
            key = json.dumps([tool, args], sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                unique.append((p, tool, args))
        return unique

    def _values(self, tool: str, arg: str, steps: list[Step], texts: list[str]) -> list[tuple[float, Any]]:
        """Candidate values for `tool`'s `arg`, scored, best first (at most 3)."""
        c = self._counts
        key = (tool, arg)
        uses = c.uses.get(key, 0)
        if uses <= 0:
            return []
        best: dict[str, tuple[float, Any]] = {}
        for source, explained in c.explained[key].items():
            if explained <= 0:
                continue
            offered = candidates(source, tool, arg, steps, texts)
            probs = _rank_probs(c.ranks[(tool, arg, source)], len(offered))
            for (norm_value, raw), q in zip(offered, probs):
                score = explained / uses * q
                if score > best.get(norm_value, (0.0, None))[0]:
                    best[norm_value] = (score, raw)
        for blob, count in c.consts[key].most_common(3):
            if count >= 2:
                value = json.loads(blob)
                norm_value = norm(value) or blob
                score = count / uses
                if score > best.get(norm_value, (0.0, None))[0]:
                    best[norm_value] = (score, value)
        ranked = sorted(best.values(), key=lambda sv: -sv[0])[:3]
        return [(s, _cast(v, c.types[key])) for s, v in ranked]


def _messages(state: Sequence[BaseMessage] | dict[str, Any]) -> Sequence[BaseMessage]:
    if isinstance(state, dict):
        return state.get("messages") or []
    messages = getattr(state, "messages", None)
    return messages if messages is not None else state  # type: ignore[return-value]
