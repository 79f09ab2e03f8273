"""The chat model's guesses of the next action merged with the offline rules' ranking.

The rule-based ranker (`ActionSpeculator`) and a chat model (`ChatActionSpeculator`) each propose
their k likeliest next actions; `merge` makes one top-k list of them. A chat model that fails (an
error, a timeout, a reply with no action in it) costs only its guesses: the rules' list is used.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ._chat import ChatActionSpeculator
from ._speculator import ActionSpeculator

__all__ = ("CombinedActionSpeculator", "merge")

Step = dict[str, Any]
Action = tuple[str, str]


def merge(chat: list[Action], rules: list[Action], k: int) -> list[Action]:
    """One top-k list from the chat model's and the rules' lists (each best first).

    First the actions both lists propose (two sources agreeing is the best evidence either list
    has), by the sum of their two ranks, the chat model's rank breaking ties; then the rest,
    alternating chat model and rules by rank (chat first), skipping repeats. Actions are the same
    when tool and argument (whitespace-trimmed) are, as the eval's strict match and the graph's
    adoption count them. Ranks only: the two lists carry no comparable scores. With k = 3, when
    the lists share at most one action, each side's first guess is in the top 3. An empty chat
    list gives the rules' list.
    """
    c = _distinct(chat)
    r = _distinct(rules)
    rank_r = {a: i for i, a in enumerate(r)}
    both = sorted((a for a in c if a in rank_r), key=lambda a: (c.index(a) + rank_r[a], c.index(a)))
    out = list(both)
    for i in range(max(len(c), len(r))):
        for side in (c, r):
            if i < len(side) and side[i] not in out:
                out.append(side[i])
    return out[:k]


def _distinct(actions: list[Action]) -> list[Action]:
    out: list[Action] = []
    for tool, arg in actions:
        a = (tool, arg.strip())
        if a not in out:
            out.append(a)
    return out


class CombinedActionSpeculator:
    """Guesses the next action with a chat model and the offline rules, merged (`merge`).

    `chat`: a `ChatActionSpeculator`, or a chat model (string or object) to build one from;
    `rules`: the offline `ActionSpeculator` (the shipped weights when None). One chat call per
    guess. The chat model's failures never reach the caller: the rules' list stands in, and
    `failures`, `errors`, `first_error` keep what failed.
    """

    def __init__(self, chat: Any, rules: ActionSpeculator | None = None, k: int = 3) -> None:
        self.chat = chat if isinstance(chat, ChatActionSpeculator) else ChatActionSpeculator(chat, k)
        self.rules = rules if rules is not None else ActionSpeculator()
        self.k = k
        self.failures = 0
        """How many chat calls failed."""
        self.errors: deque[str] = deque(maxlen=20)
        """The last 20 failures (`Type: message`), oldest first (bounded: a graph may run for long)."""
        self.first_error: str | None = None
        """The first failure, kept for reports."""

    @property
    def latencies(self) -> list[float]:
        """Seconds each chat call that answered took."""
        return self.chat.latencies

    def _failed(self, exc: Exception) -> list[Action]:
        error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        self.failures += 1
        self.errors.append(error)
        self.first_error = self.first_error or error
        return []

    def guess(self, question: str, steps: list[Step], k: int | None = None) -> list[Action]:
        """The k most likely next actions `(tool, arg)`, best first (the rules' alone if the chat
        model fails)."""
        n = k or self.k
        rules = self.rules.guess(question, steps, n)
        try:
            chat = self.chat.guess(question, steps, n)
        except Exception as exc:  # a speculator's failure only loses its guesses
            chat = self._failed(exc)
        return merge(chat, rules, n)

    async def aguess_parts(
        self, question: str, steps: list[Step], k: int | None = None
    ) -> tuple[list[Action], list[Action]]:
        """The chat model's and the rules' own lists (the chat model's empty if it failed); the
        rules rank while the chat call is in flight."""
        n = k or self.k
        call = asyncio.ensure_future(self.chat.aguess(question, steps, n))
        try:
            rules = self.rules.guess(question, steps, n)
        except BaseException:
            call.cancel()
            raise
        try:
            chat = await call
        except Exception as exc:
            chat = self._failed(exc)
        return chat, rules

    async def aguess(self, question: str, steps: list[Step], k: int | None = None) -> list[Action]:
        """`guess`, asynchronously."""
        n = k or self.k
        return merge(*await self.aguess_parts(question, steps, n), n)

    async def aguess_parts_many(
        self, items: list[tuple[str, list[Step]]], k: int | None = None, concurrency: int = 8
    ) -> list[tuple[list[Action], list[Action]]]:
        """`aguess_parts` for many (question, steps), at most `concurrency` chat calls in flight."""
        gate = asyncio.Semaphore(concurrency)

        async def one(question: str, steps: list[Step]) -> tuple[list[Action], list[Action]]:
            async with gate:
                return await self.aguess_parts(question, steps, k)

        return list(await asyncio.gather(*(one(q, s) for q, s in items)))

    async def aguess_many(
        self, items: list[tuple[str, list[Step]]], k: int | None = None, concurrency: int = 8
    ) -> list[list[Action]]:
        """`aguess` for many (question, steps), at most `concurrency` chat calls in flight."""
        n = k or self.k
        return [merge(c, r, n) for c, r in await self.aguess_parts_many(items, n, concurrency)]
