"""Pieces the ready-made graphs share: scripted offline chat models, JSON record
files, and checking chat-model specs ("openai:gpt-5") before anything starts."""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = ("PROVIDERS", "ScriptedChatModel", "SpecError", "check_chat_spec", "chat_model", "load_records")


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


class SpecError(ValueError):
    """A spec (player, speculator, tuner, backend) that cannot work here.

    Its message is one line: what is wrong, the fix, and the valid choices.
    The command line prints it and exits with status 2.
    """


PROVIDERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "openai": ("langchain_openai", "pip install 'langgraph-speculative[openai]'", ("OPENAI_API_KEY",)),
    "google_genai": (
        "langchain_google_genai",
        "pip install 'langgraph-speculative[google]'",
        ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    ),
    "anthropic": ("langchain_anthropic", "pip install langchain langchain-anthropic", ("ANTHROPIC_API_KEY",)),
    "mistralai": ("langchain_mistralai", "pip install langchain langchain-mistralai", ("MISTRAL_API_KEY",)),
    "groq": ("langchain_groq", "pip install langchain langchain-groq", ("GROQ_API_KEY",)),
    "deepseek": ("langchain_deepseek", "pip install langchain langchain-deepseek", ("DEEPSEEK_API_KEY",)),
    "xai": ("langchain_xai", "pip install langchain langchain-xai", ("XAI_API_KEY",)),
    "ollama": ("langchain_ollama", "pip install langchain langchain-ollama", ()),
}
"""Chat-model providers a spec may name: (module, how to install it, API key variables, any one enough)."""


def _options(parts: Sequence[str], where: str) -> dict[str, str]:
    out = {}
    for part in parts:
        if "=" not in part:
            raise SpecError(f"{where}: option {part.strip()!r} is not key=value")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def check_chat_spec(spec: str, flag: str, offline: Sequence[str]) -> None:
    """Raise `SpecError` unless `spec` ("provider:model[,key=value...]") can build a chat model here.

    Checks the form, the provider, that its LangChain package is installed and
    that its API key is set, without building anything. `flag` names the
    culprit in the message ("--white"); `offline` lists the choices that need
    no model, for the message.
    """
    model, *rest = spec.split(",")
    where = f"{flag} {spec!r}"
    _options(rest, where)
    choices = f"use {' or '.join(offline)} (offline), or a chat model provider:model, e.g. openai:gpt-5"
    provider, _, name = model.partition(":")
    if not name:
        near = difflib.get_close_matches(model, [o.split(":")[0] for o in offline], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise SpecError(f"{where}: not a known choice{hint}; {choices}")
    if provider not in PROVIDERS:
        near = difflib.get_close_matches(provider, [*(o.split(":")[0] for o in offline), *PROVIDERS], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise SpecError(
            f"{where}: unknown engine or provider {provider!r}{hint}; {choices} "
            f"(providers: {', '.join(PROVIDERS)})"
        )
    module, install, keys = PROVIDERS[provider]
    for needed in ("langchain", module):
        if importlib.util.find_spec(needed) is None:
            raise SpecError(f"{where} needs the {needed.replace('_', '-')} package: {install}")
    if keys and not any(os.environ.get(k) for k in keys):
        raise SpecError(
            f"{where} needs an API key: export {keys[0]}=...; or stay offline: {' or '.join(offline)}"
        )


def chat_model(spec: Any) -> Any:
    """A chat model from "provider:model[,key=value...]" (LangChain's `init_chat_model`), or `spec` itself
    if it is already a model object. Options are passed as strings, e.g. `reasoning_effort=high`."""
    if not isinstance(spec, str):
        return spec
    model, *rest = spec.split(",")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise SpecError(f"{spec!r} needs LangChain: pip install 'langgraph-speculative[openai]'") from None
    options: dict[str, Any] = _options(rest, repr(spec))
    return init_chat_model(model, **options)
