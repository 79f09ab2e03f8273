"""Tests added for mutants that survived `scripts/mutation_sample.py` (see docs/mutation_triage.md)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import speculate


class S(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


def _builder() -> Any:
    b = StateGraph(S)
    b.add_node("a", lambda s: {"x": s["x"] + 1})
    b.add_node("b", lambda s: {"log": [str(s["x"])]})
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b


@pytest.mark.parametrize("where", ["interrupt_before", "interrupt_after"])
def test_gating_every_node_warns_at_compile(where: str) -> None:
    """`_compile.py`: `interrupt_after='*'` (as much as `interrupt_before`) means no branch can run."""
    graph = speculate(_builder(), {"a": lambda s: [{"x": s["x"] + 1}]})
    with pytest.warns(UserWarning, match="never speculates"):
        graph.compile(**{where: "*"})
