"""Speculating an agent's own graph: guesses of its model call, from a tool-call speculator.

`speculate(create_agent(...), {"model": model_call_speculator(ToolPatternSpeculator())},
read_only_tools={...})` speculates the agent at graph level: while the model thinks, each
guessed tool call runs on a branch (if the tool only reads), and the branch goes on to the next
model call with the real tool result, so that call can start before the main run's model has
even answered (what a middleware cannot do). Adopted tool messages carry the main run's
tool-call ids.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage

from langgraph_speculative import Guess

__all__ = ("model_call_speculator",)


def model_call_speculator(speculator: Callable[..., Any], *, k: int | None = None) -> Callable[..., Any]:
    """A speculator for an agent's model node, from one that guesses its next tool calls.

    `speculator(state)` (sync or async; `ToolPatternSpeculator`, `model_speculator(...)`, or
    your own) returns guessed calls best first, as `{"name": ..., "args": {...}}` dicts with an
    optional `"confidence"`. Each becomes one guess of the model's reply: an `AIMessage` that
    makes that call. `k` keeps the first `k` of them (default: all; the policy's `k` applies too).
    """
    if not callable(speculator):
        raise TypeError(
            f"model_call_speculator() takes a tool-call speculator (a function state -> list of "
            f"{{'name', 'args'}} dicts), got {type(speculator).__name__}"
        )
    ainvoke = getattr(speculator, "ainvoke", None)

    async def guess(state: Any) -> list[Guess]:
        if callable(ainvoke):
            raw = await ainvoke(state)
        else:
            raw = speculator(state)
            if inspect.isawaitable(raw):
                raw = await raw
        out = []
        for i, call in enumerate(list(raw or [])[: k or None]):
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                continue
            tool_call = {
                "name": call["name"],
                "args": dict(call.get("args") or {}),
                "id": f"speculative-{i}",
                "type": "tool_call",
            }
            message = AIMessage(content="", tool_calls=[tool_call])
            out.append(Guess({"messages": [message]}, confidence=call.get("confidence")))
        return out

    guess.__name__ = f"model_call_speculator({getattr(speculator, '__name__', type(speculator).__name__)})"
    return guess
