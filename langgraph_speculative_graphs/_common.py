"""Pieces the ready-made graphs share: scripted offline chat models, packaged data and JSON record
files found by name from any directory, and the one parser of chat-model specs
("openai:gpt-5,base_url=...,temperature=0") that every graph and the command line use."""

from __future__ import annotations

import ast
import asyncio
import difflib
import importlib.util
import json
import os
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = (
    "PROVIDERS",
    "ScriptedChatModel",
    "SpecError",
    "check_chat_spec",
    "chat_model",
    "data_text",
    "load_records",
    "parse_chat_spec",
    "redact",
    "run_async",
)

T = TypeVar("T")


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


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _process_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="langgraph-speculative-graphs", daemon=True
            ).start()
            _loop = loop
        return _loop


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on the commands' event loop: one loop thread that lives as long as the
    process and is never closed.

    A chat model's client (LangChain's OpenAI client shares one per process) keeps its pooled
    connections on the loop that opened them; after `asyncio.run` closes its loop, the next run that
    reuses one fails with "Event loop is closed". On this loop every game and evaluation of a process
    (both games of `chess --compare`, the configurations of `cfs`, a second command run from the same
    Python) shares the client safely. Ctrl-C cancels `coro`, waits for its cleanup (engines stopped,
    the knob restored) and raises `KeyboardInterrupt`.
    """
    started = threading.Event()
    ended = threading.Event()

    async def run() -> T:
        started.set()
        try:
            return await coro
        finally:
            ended.set()

    future = asyncio.run_coroutine_threadsafe(run(), _process_loop())
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        if started.is_set():
            ended.wait(30)
        else:
            coro.close()
        raise


def data_text(package: str, name: str) -> str:
    """The text of `<package>/data/<name>`, a ready-made graph's packaged data (`importlib.resources`:
    found from any directory, installed or not)."""
    return resources.files(package).joinpath(f"data/{name}").read_text()


def load_records(
    path: str,
    what: str,
    keys: Sequence[str],
    *,
    package: str,
    packaged: Mapping[str, str],
) -> list[dict[str, Any]]:
    """A JSON list of objects that all have `keys`, from a file or from the packaged data.

    `path` is a file; or the name of a packaged file (`packaged` maps short names such as "dev" to
    file names in `<package>/data/`: the short name, the file name, or any path ending in it, e.g. a
    repository path that does not exist from the current directory). Errors name the file and the fix.
    """
    if os.path.isfile(path):
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise FileNotFoundError(f"{what} file {path!r} cannot be read ({exc})") from None
    else:
        base = os.path.basename(path)
        files = set(packaged.values())
        name = packaged.get(path) or next((n for n in (base, base + ".json") if n in files), None)
        if name is None:
            choices = ", ".join(f"{short} ({file})" for short, file in packaged.items())
            raise FileNotFoundError(
                f"{what} file {path!r} not found; give a path, or a packaged one by name: {choices}"
            )
        path, text = name, data_text(package, name)
    try:
        records = json.loads(text)
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


STRING_OPTIONS = frozenset(
    {"api_key", "base_url", "model_provider", "organization", "project", "location", "reasoning_effort"}
)
"""Spec options always passed as strings (a numeric-looking key stays a string); keys ending in
`api_key`, `_base` or `_url` too."""


def _split(text: str) -> list[str]:
    """`text` split on the commas outside brackets and quotes (so `model_kwargs={"a": 1, "b": 2}` stays
    one option)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth <= 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _value(key: str, raw: str) -> Any:
    """An option's value: a Python literal or JSON where it looks like one (`0`, `0.2`, `True`,
    `true`, `None`, `{}`, `["x"]`, `"quoted"`), else the string itself."""
    text = raw.strip()
    as_string = key in STRING_OPTIONS or key.endswith(("api_key", "_base", "_url"))
    for parse in (ast.literal_eval, json.loads):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if not as_string or isinstance(value, str):
            return value
    return text


def parse_chat_spec(spec: str, where: str | None = None) -> tuple[str, dict[str, Any]]:
    """Split "provider:model[,key=value...]" into the model string and its options.

    The one parser of chat-model specs: every ready-made graph and the command line use it, so an
    option works everywhere or nowhere. Values are Python literals or JSON where they look like one
    (`temperature=0`, `max_retries=0`, `model_kwargs={}`, `stop=["\\n"]`, `streaming=true`),
    else strings (`reasoning_effort=high`, `base_url=http://127.0.0.1:8000/v1`, `api_key=sk-...`: keys
    in `STRING_OPTIONS` always stay strings). Commas inside brackets or quotes do not split options.
    `SpecError` (one line, naming `where`) for an option that is not `key=value` or is given twice.
    """
    where = where or repr(redact(spec))
    model, *rest = _split(spec)
    options: dict[str, Any] = {}
    for part in rest:
        if not part.strip():
            continue
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise SpecError(f"{where}: option {part.strip()!r} is not key=value, e.g. temperature=0")
        if key in options:
            raise SpecError(f"{where}: option {key}= is given twice")
        options[key] = _value(key, raw)
    return model.strip(), options


def redact(spec: Any) -> Any:
    """`spec` with the values of its key options (`api_key=`, `openai_api_key=`) hidden, for messages,
    progress lines and reports; anything that is not a string is returned as it is."""
    if not isinstance(spec, str):
        return spec
    model, *rest = _split(spec)
    parts = [model]
    for part in rest:
        key, eq, _ = part.partition("=")
        parts.append(f"{key}=***" if eq and key.strip().endswith("api_key") else part)
    return ",".join(parts)


def _has_key(options: Mapping[str, Any]) -> bool:
    """Whether the spec's options carry an API key (`api_key=`, `openai_api_key=`, ...)."""
    return any(k.endswith("api_key") and v for k, v in options.items())


def check_chat_spec(spec: str, flag: str, offline: Sequence[str]) -> None:
    """Raise `SpecError` unless `spec` ("provider:model[,key=value...]") can build a chat model here.

    Checks the form and options (`parse_chat_spec`), the provider, that its
    LangChain package is installed and that an API key is set (in the
    provider's variable or as an `api_key=` option), without building
    anything. `flag` names the culprit in the message ("--white"); `offline`
    lists the choices that need no model, for the message.
    """
    where = f"{flag} {redact(spec)!r}"
    model, options = parse_chat_spec(spec, where)
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
    if keys and not _has_key(options) and not any(os.environ.get(k) for k in keys):
        raise SpecError(
            f"{where} needs an API key: export {keys[0]}=... or add ,api_key=...; "
            f"or stay offline: {' or '.join(offline)}"
        )


def chat_model(spec: Any, where: str | None = None) -> Any:
    """A chat model from "provider:model[,key=value...]" (`parse_chat_spec`, then LangChain's
    `init_chat_model`), or `spec` itself if it is already a model object.

    `SpecError` (one line, naming `where`) if LangChain is missing or refuses the options.
    """
    if not isinstance(spec, str):
        return spec
    where = where or repr(redact(spec))
    model, options = parse_chat_spec(spec, where)
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise SpecError(f"{where} needs LangChain: pip install 'langgraph-speculative[openai]'") from None
    try:
        return init_chat_model(model, **options)
    except ImportError as exc:
        raise SpecError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise SpecError(f"{where}: the model refused its options: {' '.join(lines[:3])}") from None
