"""Handoffs: a node that leaves through `Command(graph=Command.PARENT)` raised from a subgraph.

A multi-agent graph's handoff tool (`langgraph-supervisor`, `langgraph-swarm`) returns
`Command(graph=Command.PARENT, goto=..., update=...)` inside the agent's subgraph; LangGraph
raises it (`ParentCommand`) out of the subgraph, through the node that holds it, to the graph
that runs the node, which applies it as the node's write. For speculation it is the node's
result, not its failure: `own_command` reads it as the `Command` the node returned (an early
call's `Entry.handoff` remembers it was raised), and `reraise` gives an adopted one back to
LangGraph as the main run's node would have raised it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NoReturn

from langchain_core.runnables import RunnableConfig
from langgraph.errors import ParentCommand
from langgraph.types import Command

__all__ = ("own_command", "reraise")


def _bare(ns: str) -> str:
    """A checkpoint namespace without its task ids (`a:1|b:2` -> `a|b`)."""
    return "|".join(part.split(":")[0] for part in ns.split("|"))


def own_command(exc: BaseException, config: RunnableConfig, name: str) -> Command[Any] | None:
    """The `Command` a node's call raised for the graph that runs the node (what LangGraph
    applies as the node's write), or None when `exc` is anything else."""
    if not isinstance(exc, ParentCommand) or not exc.args or not isinstance(exc.args[0], Command):
        return None
    cmd: Command[Any] = exc.args[0]
    ns = str((config.get("configurable") or {}).get("checkpoint_ns") or "")
    if cmd.graph not in (ns, _bare(ns), name):
        return None  # for a graph further up: not this node's result
    return replace(cmd, graph=None)


def reraise(command: Command[Any], config: RunnableConfig) -> NoReturn:
    """Raise an adopted handoff for the graph that runs this node, as the node itself would."""
    ns = str((config.get("configurable") or {}).get("checkpoint_ns") or "")
    raise ParentCommand(replace(command, graph=ns))
