"""Graphs `tests/test_server.py` serves beside `examples/quickstart.py`'s (loaded by path by the
server): the quickstart graph as an uncompiled builder, as factories, at depth 1, and a variant
whose nodes use the server's store.

Module-level compiled graphs carry no checkpointer or store, as LangGraph Server's docs write
them: the server refuses a graph that brings its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, speculate


def _quickstart() -> Any:
    name = "lgs_server_quickstart"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


qs = _quickstart()
POLICY = SpeculationPolicy(k=2, depth=2, stream_events=True)


def _speculative() -> Any:
    return speculate(qs.builder(), qs.SPECULATORS, policy=POLICY)


builder = _speculative()
"""An uncompiled speculative builder: the server compiles it."""

depth1 = speculate(qs.builder(), qs.SPECULATORS, policy=SpeculationPolicy(k=2, stream_events=True)).compile()
"""The quickstart's own policy (k=2, depth 1), for the timing report."""


def make_graph(config: RunnableConfig) -> Any:
    """A factory taking the run's config and returning a compiled graph."""
    return _speculative().compile()


@contextlib.asynccontextmanager
async def graph_context(config: RunnableConfig) -> AsyncIterator[Any]:
    """An async context-manager factory yielding an uncompiled builder (as chess's served_graph)."""
    await asyncio.sleep(0)
    yield _speculative()


# ---------------------------------------------------------------- a graph that uses the store


def _namespace(config: RunnableConfig) -> tuple[str, ...]:
    conf = config.get("configurable") or {}  # the server puts the graph id in it
    return ("facts", str(conf.get("graph_id", "any")), str(conf.get("thread_id", "any")))


async def lookup_cached(state: Any, config: RunnableConfig) -> dict[str, Any]:
    """The lookup, through the store: a fact found there costs nothing."""
    store = get_store()
    country = state["country"]
    item = await store.aget(_namespace(config), country)
    if item is not None:
        return {"fact": item.value["fact"]}
    await asyncio.sleep(0.3)
    return {"fact": f"The capital of {country.title()} is {qs.CAPITALS[country]}."}


async def answer_and_remember(state: Any, config: RunnableConfig) -> dict[str, Any]:
    """The answer, which also keeps the fact in the store (a write: branches stop before it)."""
    await asyncio.sleep(0.4)
    await get_store().aput(_namespace(config), state["country"], {"fact": state["fact"]})
    return {"messages": [AIMessage(content=state["fact"])]}


def store_builder() -> StateGraph:  # type: ignore[type-arg]
    """plan -> lookup (reads the store) -> answer (writes it); the namespace is
    `("facts", graph id, thread id)`, so that each graph compared has its own."""
    b = StateGraph(qs.State)
    b.add_node("plan", qs.plan)
    b.add_node("lookup", lookup_cached)
    b.add_node("answer", answer_and_remember)
    b.add_edge(START, "plan")
    b.add_edge("plan", "lookup")
    b.add_edge("lookup", "answer")
    b.add_edge("answer", END)
    return b


store_plain = store_builder().compile()
store_spec = speculate(store_builder(), qs.SPECULATORS, policy=POLICY).compile()
