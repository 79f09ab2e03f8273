"""`SpeculativeToolCalls`: run an agent's likely next read-only tool calls while its model thinks."""

from __future__ import annotations

import asyncio
import contextvars
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from langgraph_speculative import SpeculationPolicy, SpeculationReport
from langgraph_speculative._threads import process_pool
from langgraph_speculative._trace import current_run_tree

from ._engine import Engine, tool_config
from ._inspect import agent_being_built, check_agent, gated_tools
from ._runs import Env
from ._speculate import afailed, afinish, aserve, aspeculate, failed, final_reply, finish, serve, speculate

__all__ = ("SpeculativeToolCalls",)


class SpeculativeToolCalls(AgentMiddleware):  # type: ignore[type-arg]
    """Agent middleware: while the model call runs, start the tool calls it will likely make.

    ```python
    agent = create_agent(
        model, tools,
        middleware=[SpeculativeToolCalls(ToolPatternSpeculator(), read_only={"get_order", "search"})],
    )
    ```

    While the model call runs, `speculator(state)` guesses the reply's tool
    calls; the top `policy.k` guesses of tools in `read_only` start at once.
    When the reply arrives, prefetches whose call it makes (same tool name,
    same arguments; ids never count) are kept and the rest cancelled; the tool
    step serves a kept result as the `ToolMessage` of the real call id, exactly
    as the tool node would have built it. Only successful results are served:
    anything else (an error, a `Command`) makes the tool step run the call as
    usual. A reply that also makes a call outside `read_only` (a write) serves
    nothing early, since the real calls run together.

    The speculator is a function `(state) -> guesses`, sync or `async`; one that
    declares a `request` parameter also gets the model call's `ModelRequest`
    (its `tools`, `system_message`, `messages`). An object with `invoke` and
    `ainvoke` is called through them. Guesses, best first, are dicts
    `{"name": ..., "args": {...}, "confidence": 0.8}` (confidence optional,
    compared with `policy.min_confidence`), `Guess(update={"name": ..., "args":
    ...}, confidence=...)` objects, or an `AIMessage` with tool calls. A
    speculator with an `observe(state, key=...)` (or `aobserve`) method is shown
    every finished run, to learn from (`ToolPatternSpeculator` does).

    `read_only` names the tools that may run early (names or the tools themselves).
    Without it, the tools decide: a tool is read-only iff it declares so in its
    metadata, `tool.metadata["readOnlyHint"] is True` (MCP servers declare it in
    their tools' `ToolAnnotations`, which `langchain-mcp-adapters` copies there;
    any LangChain tool may declare it the same way); an explicit `read_only`
    replaces the declarations. (deepagents' file tools declare nothing: pass
    `read_only={"read_file", "ls", "glob", "grep"}`.)

    An early call gets what the agent's tool node would inject into the real one:
    the store, the agent's state (a copy taken at the model call), a `ToolRuntime`
    with that state, the run's context and store and a stream writer whose chunks
    are written to the real call's when it is served; tools that read the state
    through LangGraph's config (deepagents' `StateBackend`) read that copy. Its
    call id is a placeholder. A result that read the messages (the real call
    would have seen the model's reply too), whose state changed before the tool
    step, that shows the placeholder id, or that wrote to the state, is not
    served: the tool step runs the call.

    Safety: a tool not in `read_only` never runs early, and `create_agent`
    refuses this middleware when a read-only tool is gated by
    `HumanInTheLoopMiddleware`, when the agent pauses between the model and
    the tools (`interrupt_before=["tools"]`), or when a tool-call middleware is
    listed after this one. Read-only means: running it earlier, with the same
    arguments, returns what the real call would return, and has no effect.

    Lifecycle: prefetches are cancelled when they lose, when the model call or
    a tool step fails and at the run's end; a resumed run never uses what the
    paused one fetched. Sync tools cannot be interrupted: one still running
    when its run ends finishes in the background on the library's pool, its
    result discarded (nothing waits for it, but a sync run waits for them
    before a `HumanInTheLoopMiddleware` pause). Speculation shares the
    library's one runtime with speculative graphs: the same process budget
    (each prefetch holds a slot; a model call that starts while the process
    is busy with other runs does not speculate) and the same process loop.
    A custom middleware that pauses in `after_model` is not detected: leave
    the tools it guards out of `read_only`.

    Telemetry: every event is a dict `{"type": "speculation", "event": ...,
    "node": "model", ...}` on LangGraph's custom stream (`stream_mode="custom"`),
    in `report` (all runs) and `last_report` (the latest finished run); with
    LangSmith tracing, prefetches are child runs of the model call tagged
    `speculative`, and the model and tool spans carry what happened in their
    metadata. The speculator's and the prefetches' runs never reach the user's
    streams (`messages`, `tools`, `astream_events`): a wrong guess would read
    as the agent's. A served call has no tool run in the tool step, so
    `stream_mode="tools"` does not show it.
    `policy.depth` is not used: speculation looks one model call ahead.
    """

    def __init__(
        self,
        speculator: Callable[..., Any] | Any,
        *,
        read_only: Iterable[str | BaseTool] | None = None,
        policy: SpeculationPolicy | None = None,
    ) -> None:
        if not callable(speculator) and not callable(getattr(speculator, "ainvoke", None)):
            raise TypeError(
                f"SpeculativeToolCalls(speculator={speculator!r}) is not callable: pass a function "
                "(state) -> guesses, sync or async, e.g. ToolPatternSpeculator() or "
                "model_speculator('openai:gpt-4.1-mini')."
            )
        if read_only is None:
            names: set[str] | None = None
        elif isinstance(read_only, (str, BaseTool)) or not isinstance(read_only, Iterable):
            raise TypeError(
                f"SpeculativeToolCalls(read_only={read_only!r}) must be a collection of tool names "
                f"(or tools), e.g. read_only={{{read_only!r}}}."
                if isinstance(read_only, str)
                else f"SpeculativeToolCalls(read_only={read_only!r}) must be a collection of tool names."
            )
        else:
            names = set()
            for item in read_only:
                if isinstance(item, BaseTool):
                    names.add(item.name)
                elif isinstance(item, str) and item:
                    names.add(item)
                else:
                    raise TypeError(
                        f"SpeculativeToolCalls(read_only=...) contains {item!r}: use tool names (str) "
                        "or tools."
                    )
        if names is not None and not names:
            raise ValueError(
                "SpeculativeToolCalls(read_only=...) is empty, so nothing could ever run early: name "
                "the tools that are safe to call ahead of time (reads with no side effects)."
            )
        if policy is None:
            policy = SpeculationPolicy()
        if not isinstance(policy, SpeculationPolicy):
            raise TypeError(
                f"SpeculativeToolCalls(policy={policy!r}) must be a SpeculationPolicy, "
                "e.g. SpeculationPolicy(k=3, speculator_timeout=5.0)."
            )
        self._engine = Engine(speculator, None if names is None else frozenset(names), policy)
        self._warned = False

    # ------------------------------------------------------------------ public

    @property
    def read_only(self) -> frozenset[str]:
        """The tools that may run before the model asks for them: the `read_only` given, or
        (when none was) the agent's tools that declare `readOnlyHint`, once the agent is built."""
        return self._engine.read_only

    @property
    def policy(self) -> SpeculationPolicy:
        """k (prefetches per model call), min_confidence, max_inflight, speculator_timeout, enabled."""
        return self._engine.policy

    @property
    def speculator(self) -> Any:
        """The speculator this middleware calls."""
        return self._engine.speculator

    @property
    def report(self) -> SpeculationReport:
        """Counters (under node "model") and events of every run so far."""
        return self._engine.report

    @property
    def last_report(self) -> SpeculationReport | None:
        """The report of the latest finished (or superseded) run."""
        return self._engine.last_report

    @property
    def tools(self) -> list[BaseTool]:  # type: ignore[override]
        """No tools of its own. Read by `create_agent`, which is when the agent is checked."""
        view = agent_being_built()
        if view is not None:
            engine = self._engine
            engine.gated |= gated_tools(view)
            if engine.derived:
                others = [t for mw in view.middleware if mw is not self for t in _tools_of(mw)]
                engine.declare([*view.tools, *others])
                if not engine.read_only:
                    warnings.warn(
                        "SpeculativeToolCalls(read_only=None): none of the agent's tools declares "
                        "readOnlyHint=True (in tool.metadata, as MCP tools do), so none runs early. "
                        "Name the tools that only read: SpeculativeToolCalls(..., read_only={...}) "
                        '(deepagents: read_only={"read_file", "ls", "glob", "grep"}).',
                        UserWarning,
                        stacklevel=2,
                    )
            if engine.read_only or not engine.derived:
                check_agent(self, engine.read_only, view)
            engine.bound = True
        return []

    def close(self) -> None:
        """Cancel everything still in flight and stop this middleware's threads."""
        self._engine.shutdown()

    async def aclose(self) -> None:
        """Async twin of `close`."""
        await asyncio.get_running_loop().run_in_executor(None, self._engine.shutdown)

    # ------------------------------------------------------------------ model call

    def _start(self, request: ModelRequest, mode: Any) -> Any:
        if not self._engine.bound and not self._warned:
            self._warned = True
            warnings.warn(
                "SpeculativeToolCalls was not built by langchain.agents.create_agent, so the agent's "
                "HumanInTheLoopMiddleware gates and interrupts could not be checked: make sure no tool "
                "in read_only needs a person's approval.",
                UserWarning,
                stacklevel=3,
            )
        from langgraph.config import get_config

        try:
            config = get_config()
        except RuntimeError:
            config = {}
        turn, tools = self._engine.begin(request, mode)
        env = Env(request.runtime, request.state, [t for t in request.tools or [] if isinstance(t, BaseTool)])
        return turn, tools, tool_config(config), env, current_run_tree()

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Run the model call; beside it, the speculator and the prefetches of its guesses."""
        if not self._engine.policy.enabled:
            return handler(request)
        turn, tools, config, env, tree = self._start(request, "sync")
        try:
            if not turn.shed:
                ctx = contextvars.copy_context()
                process_pool().submit(ctx.run, speculate, self._engine, turn, request, tools, env, config)
            try:
                response = handler(request)
            except BaseException:
                self._engine.abort(turn, "model_error")
                failed(self._engine, request.runtime)
                raise
            self._engine.settle(turn, response, tree)
            if final_reply(response):
                finish(self._engine, request, response)
            return response
        finally:
            self._engine.end_turn(turn)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async twin of `wrap_model_call`."""
        if not self._engine.policy.enabled:
            return await handler(request)
        turn, tools, config, env, tree = self._start(request, "async")
        try:
            if not turn.shed:
                task = asyncio.ensure_future(aspeculate(self._engine, turn, request, tools, env, config))
                with turn.run.lock:
                    turn.stopper = task.cancel
            try:
                response = await handler(request)
            except BaseException:
                self._engine.abort(turn, "model_error")
                await afailed(self._engine, request.runtime)
                raise
            self._engine.settle(turn, response, tree)
            if final_reply(response):
                await afinish(self._engine, request, response)
            return response
        finally:
            self._engine.end_turn(turn)

    # ------------------------------------------------------------------ tool step

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]]
    ) -> ToolMessage | Command[Any]:
        """Serve a kept prefetch as this call's ToolMessage, or run the tool."""
        served = serve(self._engine, request)
        if served is None:
            try:
                return handler(request)
            except BaseException:  # the run fails (or pauses): first wait for what it started
                failed(self._engine, request.runtime)
                raise
        _mark_adopted()
        return served

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async twin of `wrap_tool_call`."""
        served = await aserve(self._engine, request)
        if served is None:
            try:
                return await handler(request)
            except BaseException:
                await afailed(self._engine, request.runtime)
                raise
        _mark_adopted()
        return served


def _mark_adopted() -> None:
    tree = current_run_tree()
    if tree is not None:
        try:
            tree.metadata["spec_adopted"] = True
        except Exception:
            pass


def _tools_of(middleware: Any) -> list[Any]:
    try:
        return list(getattr(middleware, "tools", None) or [])
    except Exception:
        return []
