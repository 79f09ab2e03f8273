"""`model_speculator`: the paper's speculator, a small chat model asked for the next tool calls."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config

from langgraph_speculative._trace import quiet

__all__ = ("ModelSpeculator", "model_speculator")

_PROMPT = (
    "You predict what an AI assistant will do next; you do not act yourself. The assistant's "
    "conversation so far follows. Call the tools the assistant is most likely to call next: make up "
    "to {k} tool calls, each one a separate guess of its next call (tool and exact arguments), the "
    "most likely first. Call no tool if it will answer in text instead."
)


class ModelSpeculator:
    """Guesses an agent's next tool calls with a (small, fast) chat model.

    The model is built on first use with `langchain.chat_models.init_chat_model`
    (never at import or construction), is given the agent's own tool schemas
    (the model request's tools under the middleware; `tools` at graph level, which
    `model_call_speculator` finds in the graph) and its conversation, and is asked to
    call up to `k` tools: its guesses, best first. Use `model_speculator(...)`.

    Its own model call never reaches the user's streams: it runs without LangGraph's
    stream handlers (and `astream_events`'), tagged `nostream`, named `model_speculator`.
    """

    def __init__(
        self,
        model: str | BaseChatModel,
        *,
        k: int,
        prompt: str,
        model_kwargs: dict[str, Any],
        tools: Sequence[Any] | None = None,
    ) -> None:
        self.model = model
        self.k = k
        self.prompt = prompt
        self.model_kwargs = model_kwargs
        self.tools = list(tools or [])
        self._chat: BaseChatModel | None = model if isinstance(model, BaseChatModel) else None
        self._lock = threading.Lock()

    def chat_model(self) -> BaseChatModel:
        """The chat model (built on first call)."""
        with self._lock:
            if self._chat is None:
                from langchain.chat_models import init_chat_model

                self._chat = init_chat_model(str(self.model), **self.model_kwargs)
            return self._chat

    def _request(
        self, state: Any, request: Any, tools: Sequence[Any] | None
    ) -> tuple[Any, list[BaseMessage]] | None:
        tools = list(getattr(request, "tools", None) or tools or self.tools)
        if not tools:
            return None
        messages = list(getattr(request, "messages", None) or (state or {}).get("messages") or [])
        system = self.prompt.replace("{k}", str(self.k))
        agent_system = getattr(request, "system_message", None)
        if agent_system is not None and agent_system.content:
            system += f"\n\nThe assistant's own instructions:\n{agent_system.content}"
        bound = self.chat_model().bind_tools(tools)
        return bound, [SystemMessage(system), *messages]

    def _guesses(self, reply: Any) -> list[dict[str, Any]]:
        calls = getattr(reply, "tool_calls", None) or []
        return [{"name": c["name"], "args": c.get("args") or {}} for c in calls[: self.k]]

    @staticmethod
    def _config() -> RunnableConfig:
        """The caller's config (traced as its child), minus every stream handler, `nostream`."""
        config = ensure_config()
        config.pop("run_id", None)  # a run id names one run: never the speculator's
        tags = [t for t in config.get("tags") or [] if t != "nostream"]
        return {
            **config,
            "callbacks": quiet(config.get("callbacks")),
            "tags": [*tags, "nostream"],
            "run_name": "model_speculator",
        }

    def invoke(
        self, state: Any, request: Any = None, *, tools: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """The model's guesses for the next tool calls (sync). `tools`: the agent's tools when
        no middleware `request` carries them (default: the ones given at construction)."""
        prepared = self._request(state, request, tools)
        if prepared is None:
            return []
        bound, messages = prepared
        return self._guesses(bound.invoke(messages, self._config()))

    async def ainvoke(
        self, state: Any, request: Any = None, *, tools: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """The model's guesses for the next tool calls (async); see `invoke`."""
        prepared = self._request(state, request, tools)
        if prepared is None:
            return []
        bound, messages = prepared
        return self._guesses(await bound.ainvoke(messages, self._config()))

    def why_no_guess(self, tools: Sequence[Any] | None = None) -> str | None:
        """Why it cannot guess at all (no tool schemas), or None."""
        if self.tools or tools:
            return None
        return (
            "model_speculator has no tool schemas to offer its model (at graph level they come from "
            "the graph's ToolNode, or pass model_speculator(..., tools=[...]))"
        )

    __call__ = invoke

    def __repr__(self) -> str:
        return f"model_speculator({self.model!r}, k={self.k})"


def model_speculator(
    model: str | BaseChatModel,
    *,
    k: int = 3,
    prompt: str | None = None,
    tools: Sequence[Any] | None = None,
    **model_kwargs: Any,
) -> ModelSpeculator:
    """A speculator that asks a small chat model for the agent's next tool calls (the paper's).

    `model`: an `init_chat_model` string such as `"openai:gpt-4.1-mini"` (built
    on first use, so no key is needed until then) or a chat model. `k`: how many
    guesses to ask for. `prompt`: the instruction, with `{k}`. `tools`: the agent's
    tools, for use outside the middleware (the middleware passes the model request's
    tools; `speculate(agent, {"model": model_call_speculator(...)})` finds them in the
    graph). Other keywords go to `init_chat_model` (e.g. `base_url=`, `api_key=`,
    `temperature=0`).

    ```python
    SpeculativeToolCalls(model_speculator("openai:gpt-4.1-mini", k=3), read_only={"search", "get_order"})
    ```
    """
    if not isinstance(model, (str, BaseChatModel)) or (isinstance(model, str) and not model):
        raise TypeError(
            f"model_speculator(model={model!r}): pass a chat model or an init_chat_model string "
            "such as 'openai:gpt-4.1-mini'."
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"model_speculator(k={k!r}) must be a whole number >= 1.")
    if tools is not None and (isinstance(tools, (str, dict)) or not isinstance(tools, Sequence)):
        raise TypeError(
            f"model_speculator(tools={tools!r}) must be a list of tools (BaseTool, functions, schemas)."
        )
    text = _PROMPT if prompt is None else prompt
    if "{k}" not in text and prompt is not None:
        text = prompt + "\n(Make up to {k} guesses.)"
    return ModelSpeculator(model, k=k, prompt=text, model_kwargs=model_kwargs, tools=tools)
