"""Pieces the ready-made graphs share: scripted offline chat models and JSON record files."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = ("ScriptedChatModel", "load_records")


class ScriptedChatModel(BaseChatModel):
    """A deterministic offline chat model with real latency (`delay` seconds per call).

    Subclasses answer from the messages alone in `_reply`, so any call order
    (main run or branch) gives the same answers.
    """

    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return type(self).__name__.lower()

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        raise NotImplementedError

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])


def load_records(path: str, what: str, example: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """A JSON list of objects that all have `keys`; errors name the file and the fix."""
    try:
        with open(path) as f:
            records = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {path!r} not found; e.g. {example}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} file {path!r} is not JSON ({exc})") from None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and all(k in r for k in keys) for r in records
    ):
        raise ValueError(
            f"{what} file {path!r}: expected a JSON list of objects with {', '.join(map(repr, keys))}"
        )
    return records
