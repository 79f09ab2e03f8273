"""What speculation costs: LLM tokens of speculative calls, and the report's cost summary.

Tokens are read from LangChain's usage metadata: a `TokenCounter` on a speculative call's
callbacks adds up every chat model or LLM result it sees (`usage_metadata`, or an LLM output's
`token_usage`); a call whose callbacks saw none is counted from the chat-model messages in its
update (their `usage_metadata`), when there are any.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.messages import BaseMessage

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig


__all__ = ("TokenCounter", "cost_summary", "output_tokens", "result_tokens", "with_handler")

_DEPTH = 6  # how deep `output_tokens` looks into an update for messages


class TokenCounter(BaseCallbackHandler):
    """Adds up the LLM tokens of one speculative call (and tells `on_tokens` as they arrive)."""

    def __init__(self, on_tokens: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.tokens = 0
        self._lock = threading.Lock()
        self._on_tokens = on_tokens

    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        pass  # only results count

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        n = result_tokens(response)
        if n:
            with self._lock:
                self.tokens += n
            if self._on_tokens is not None:
                self._on_tokens(n)


def result_tokens(response: Any) -> int:
    """Tokens of an `LLMResult`: its messages' `usage_metadata`, else its `token_usage`."""
    total = 0
    for gens in getattr(response, "generations", None) or []:
        for gen in gens or []:
            total += _message_tokens(getattr(gen, "message", None))
    if total:
        return total
    out = getattr(response, "llm_output", None)
    usage = (out.get("token_usage") or out.get("usage")) if isinstance(out, dict) else None
    if isinstance(usage, dict):
        n = usage.get("total_tokens")
        if not isinstance(n, int):
            n = _int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens"))
        return max(0, int(n))
    return 0


def output_tokens(update: Any, depth: int = _DEPTH) -> int:
    """Tokens of the chat-model messages in a node's update (dicts, lists, `Command`s)."""
    if depth <= 0:
        return 0
    if isinstance(update, BaseMessage):
        return _message_tokens(update)
    if isinstance(update, dict):
        return sum(output_tokens(v, depth - 1) for v in update.values())
    if isinstance(update, (list, tuple)):
        return sum(output_tokens(v, depth - 1) for v in update)
    inner = getattr(update, "update", None)  # a Command
    if inner is not None and not callable(inner):
        return output_tokens(inner, depth - 1)
    return 0


def _message_tokens(message: Any) -> int:
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return 0
    n = usage.get("total_tokens")
    if not isinstance(n, int):
        n = _int(usage.get("input_tokens")) + _int(usage.get("output_tokens"))
    return max(0, int(n))


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def with_handler(config: RunnableConfig, handler: BaseCallbackHandler) -> RunnableConfig:
    """`config` with `handler` added to its callbacks (inherited by everything it runs)."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        callbacks.add_handler(handler, inherit=True)
    else:
        callbacks = [*(callbacks or []), handler]
    return {**config, "callbacks": callbacks}


def cost_summary(stats: Iterable[Any]) -> dict[str, Any]:
    """The cost of speculation over a report's per-node stats, as `summary()` shows it:
    speculator calls, tokens, and what each second saved cost (None while nothing was saved)."""
    stats = list(stats)

    def total(attr: str) -> Any:
        return sum(getattr(s, attr) for s in stats)

    saved = float(total("time_saved_s"))
    tokens = int(total("tokens_wasted")) + int(total("speculator_tokens"))

    def per_saved(x: float) -> float | None:
        return round(x / saved, 6) if saved > 0 else None

    return {
        "speculator_calls": int(total("speculator_calls")),
        "speculator_s": round(float(total("speculator_s")), 6),
        "tokens_adopted": int(total("tokens_adopted")),
        "tokens_wasted": int(total("tokens_wasted")),
        "speculator_tokens": int(total("speculator_tokens")),
        "cost_per_saved_s": {
            "wasted_calls": per_saved(float(total("wasted"))),
            "wasted_s": per_saved(float(total("wasted_s"))),
            "speculator_s": per_saved(float(total("speculator_s"))),
            "tokens": per_saved(float(tokens)),
        },
    }
