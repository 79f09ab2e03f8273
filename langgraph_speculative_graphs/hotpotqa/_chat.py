"""A chat-model speculator of the ReAct agent's next action (the paper's setting).

The model reads the agent's scratchpad (question, thoughts, actions,
observations so far) and answers with its k likeliest next actions, one per
line. Models come from `init_chat_model`-style strings ("openai:gpt-4o-mini",
options after commas: "openai:gpt-4o-mini,temperature=0,base_url=http://...")
or chat model objects, and are built on first use, never at import.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from .._common import chat_model as _chat_model
from ._wiki import parse_action

__all__ = ("ChatActionSpeculator", "chat_model")

Step = dict[str, Any]

SYSTEM = (
    "You predict what a ReAct agent does next on a HotpotQA question. The agent interleaves Thought, "
    "Action, Observation steps; an Action is Search[entity] (Wikipedia's first paragraph of the exact "
    "title, or similar titles), Lookup[keyword] (the next sentence of the current page with the keyword) "
    "or Finish[answer]. Given its scratchpad so far, write the {k} actions it is most likely to take "
    "next, most likely first, one per line, exactly in the form Search[...], Lookup[...] or Finish[...], "
    "with the argument the agent would write. No other text."
)


def chat_model(spec: Any) -> BaseChatModel:
    """A chat model from an `init_chat_model` string ("provider:model,key=value,...", parsed as every
    ready-made graph parses it: `_common.parse_chat_spec`) or the object itself."""
    return _chat_model(spec)  # type: ignore[no-any-return]


def scratchpad(question: str, steps: list[Step]) -> str:
    """The scratchpad the speculator sees: the question, then each step's thought, action, observation."""
    lines = [f"Question: {question}"]
    for i, s in enumerate(steps, 1):
        lines += [
            f"Thought {i}: {s.get('thought', '')}",
            f"Action {i}: {s.get('tool', '')}[{s.get('arg', '')}]",
            f"Observation {i}: {s.get('observation', '')}",
        ]
    lines.append(f"Predict Action {len(steps) + 1}.")
    return "\n".join(lines)


def parse_guesses(text: str, k: int) -> list[tuple[str, str]]:
    """The first k distinct actions in a reply, one per line (numbering and bullets ignored)."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip().lstrip("-*0123456789.) ").strip()
        if line.lower().startswith("action"):
            line = line.split(":", 1)[-1]
        parsed = parse_action(line)
        if parsed is not None and (parsed[0], parsed[1].strip()) not in out:
            out.append((parsed[0], parsed[1].strip()))
    return out[:k]


class ChatActionSpeculator:
    """Guesses the next action with a chat model; `model` is a string or a chat model, built on first use."""

    def __init__(self, model: Any, k: int = 3) -> None:
        self.spec = model
        self.k = k
        self._model: BaseChatModel | None = None
        self.latencies: list[float] = []
        """Seconds each call took, in the order the calls ended."""

    @property
    def model(self) -> BaseChatModel:
        """The chat model (built from the string on first use)."""
        if self._model is None:
            self._model = chat_model(self.spec)
        return self._model

    def _messages(self, question: str, steps: list[Step], k: int) -> list[Any]:
        return [SystemMessage(content=SYSTEM.format(k=k)), HumanMessage(content=scratchpad(question, steps))]

    def guess(self, question: str, steps: list[Step], k: int | None = None) -> list[tuple[str, str]]:
        """The k most likely next actions `(tool, arg)`, best first."""
        n = k or self.k
        t0 = time.perf_counter()
        reply = self.model.invoke(self._messages(question, steps, n))
        self.latencies.append(time.perf_counter() - t0)
        return parse_guesses(str(reply.content), n)

    async def aguess(self, question: str, steps: list[Step], k: int | None = None) -> list[tuple[str, str]]:
        """`guess`, asynchronously."""
        n = k or self.k
        t0 = time.perf_counter()
        reply = await self.model.ainvoke(self._messages(question, steps, n))
        self.latencies.append(time.perf_counter() - t0)
        return parse_guesses(str(reply.content), n)

    async def aguess_many(
        self, items: list[tuple[str, list[Step]]], k: int | None = None, concurrency: int = 8
    ) -> list[list[tuple[str, str]]]:
        """`aguess` for many (question, steps), at most `concurrency` calls in flight."""
        gate = asyncio.Semaphore(concurrency)

        async def one(question: str, steps: list[Step]) -> list[tuple[str, str]]:
            async with gate:
                return await self.aguess(question, steps, k)

        return list(await asyncio.gather(*(one(q, s) for q, s in items)))
