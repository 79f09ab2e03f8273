"""A speculator for multi-agent graphs: guesses of the next agent, as the handoff `Command`s
`langgraph-supervisor`'s and `langgraph-swarm`'s handoff tools send their graph."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

__all__ = ("handoff_speculator",)

_SPACE = re.compile(r"\s+")


def handoff_speculator(
    choose: Callable[[Any], str | Sequence[str] | None], *, agent: str | None = None
) -> Callable[[Any], list[Command]]:
    """A speculator for a node that hands off to another agent: the `supervisor` node of
    `create_supervisor(...)`, or an agent of `create_swarm(...)`.

    `choose(state)` names the agent the node will hand off to next (a name, several best first, or
    None for no guess). Each name becomes the `Command` the packages' default handoff tool
    (`transfer_to_<name>`) sends: the node's tool call, the tool's `Successfully transferred to
    <name>` answer, `goto` the agent, and for a swarm (a state with `active_agent`) the new active
    agent. `agent` names who hands off (the `name` of the guessed tool-calling message): by default
    the swarm's active agent, or `"supervisor"`. Tool-call ids are fresh per guess.

        speculate(create_supervisor(workers, model=model),
                  {"supervisor": handoff_speculator(lambda s: plan_next(s["messages"]))})
    """

    def speculator(state: Any) -> list[Command]:
        chosen = choose(state)
        names = [chosen] if isinstance(chosen, str) else list(chosen or ())
        messages = list(state.get("messages") or [])
        swarm = "active_agent" in state
        by = agent or (state.get("active_agent") if swarm else None) or "supervisor"
        out = []
        for to in names:
            tool = f"transfer_to_{_SPACE.sub('_', to.strip()).lower()}"
            call_id = f"call_guess_{uuid.uuid4().hex[:16]}"
            call = {"name": tool, "args": {}, "id": call_id, "type": "tool_call"}
            said = AIMessage(content="", name=by, tool_calls=[call])
            done = ToolMessage(content=f"Successfully transferred to {to}", name=tool, tool_call_id=call_id)
            update: dict[str, Any] = {"messages": [*messages, said, done]}
            if swarm:
                update["active_agent"] = to
            out.append(Command(goto=to, update=update))
        return out

    return speculator
