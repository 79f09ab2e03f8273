"""What a speculator and a key function read: a private copy of the call's input (issue 29).

A dict state is copied channel by channel as it is read (`CopyOnRead`), so a speculator that
reads a counter does not pay for copying a long history; whatever it reads, it reads a copy,
and nothing it changes, however deep, reaches the run: the committed run equals the plain one.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import time
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_speculative import speculate
from langgraph_speculative._state import CopyOnRead, private_copy

from . import oracle
from .leftovers import leftover_work

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _source() -> dict[str, Any]:
    return {"a": [1, {"x": [2]}], "n": 3, "b": {"y": {"z": [4]}}}


def test_a_read_copies_only_that_channel_and_never_reaches_the_source() -> None:
    src = _source()
    view = private_copy(src)
    assert isinstance(view, CopyOnRead) and isinstance(view, dict)
    assert len(view) == 3 and "a" in view and "missing" not in view
    assert dict.__len__(view) == 0  # nothing copied yet
    view["a"][1]["x"].append(99)
    assert dict.__len__(view) == 1 and view.get("n") == 3 and view.get("missing", "d") == "d"
    view["b"]["y"]["z"].clear()
    assert src == _source()  # deep changes stayed in the copy
    assert view == {"a": [1, {"x": [2, 99]}], "n": 3, "b": {"y": {"z": []}}}


@pytest.mark.parametrize(
    "whole",
    [
        list,
        dict,
        lambda v: {**v},
        lambda v: json.loads(json.dumps(v)),
        lambda v: copy.deepcopy(v),
        lambda v: copy.copy(v),
        lambda v: pickle.loads(pickle.dumps(v)),
        lambda v: dict(v.items()),
        lambda v: v | {},
        repr,
    ],
    ids=["list", "dict", "unpack", "json", "deepcopy", "copy", "pickle", "items", "or", "repr"],
)
def test_whatever_sees_the_whole_dict_sees_all_of_it_in_order(whole: Any) -> None:
    src = _source()
    view = private_copy(src)
    view["b"]  # one channel read first: the order stays the source's
    got = whole(view)
    if isinstance(got, list):
        assert got == ["a", "n", "b"]
    elif isinstance(got, str):
        assert got == repr(src)
    else:
        assert got == src and list(got) == list(src)


def test_changes_to_the_copy_itself_hold() -> None:
    src = _source()
    view = private_copy(src)
    view["a"] = "new"  # a write before any read: never overwritten by a late copy
    assert view["a"] == "new"
    del view["n"]
    view.setdefault("c", 5)
    assert view.pop("b") == {"y": {"z": [4]}}
    assert dict(view) == {"a": "new", "c": 5}
    view.clear()
    assert len(view) == 0 and "a" not in view and src == _source()


def test_channels_sharing_an_object_still_share_it_in_the_copy() -> None:
    shared = {"k": [1]}
    view = private_copy({"p": shared, "q": shared})
    assert view["p"] is view["q"] and view["p"] is not shared


def test_a_non_dict_state_is_copied_whole() -> None:
    class Box:
        def __init__(self) -> None:
            self.items = [1]

    box = Box()
    copied = private_copy(box)
    assert type(copied) is Box and copied is not box and copied.items is not box.items


# ------------------------------------------------------------------ the committed run


class S(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: dict[str, Any]
    x: int


def _update(x: int) -> dict[str, Any]:
    return {
        "messages": [
            AIMessage(
                content=[{"type": "text", "text": f"step {x}"}],
                additional_kwargs={"meta": {"deep": [x]}},
                id=f"ai{x}",
            )
        ],
        "notes": {"nested": {"list": [x]}},
        "x": x + 1,
    }


def _actor(s: S) -> dict[str, Any]:
    time.sleep(0.05)
    return _update(s["x"])


def _build() -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    for name in "abc":
        b.add_node(name, _actor)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", END)
    return b


def _vandalize(s: Any) -> None:
    """Change everything a node reads, as deep as it goes."""
    for m in s["messages"]:
        if isinstance(m.content, list):
            m.content.append({"type": "text", "text": "MUTATED"})
            m.content[0]["text"] = "MUTATED"
        else:
            m.content = "MUTATED"
        m.additional_kwargs.setdefault("meta", {}).setdefault("deep", []).append("MUTATED")
        m.id = "MUTATED"
    s["notes"].setdefault("nested", {}).setdefault("list", []).append("MUTATED")
    s["messages"].append(HumanMessage(content="MUTATED", id="mutated"))
    s["x"] = -100


def _reader(s: Any) -> Any:
    """A right guess, then every channel changed (read one by one)."""
    guess = _update(s["x"])
    _vandalize(s)
    return [guess]


def _walker(s: Any) -> Any:
    """A right guess, after walking the whole dict (every channel copied at once)."""
    guess = _update(dict(s)["x"])
    for k in list(s):
        _vandalize(s) if k == "x" else None
    return [guess]


def _key(s: Any) -> Any:
    x = s["x"]
    _vandalize(s)
    return x


def _start() -> dict[str, Any]:
    return {
        "messages": [
            HumanMessage(
                content=[{"type": "text", "text": "hi"}],
                additional_kwargs={"meta": {"deep": ["a"]}},
                id="h1",
            )
        ],
        "notes": {"nested": {"list": [0]}},
        "x": 0,
    }


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_speculator_or_key_mutating_its_input_deeply_changes_nothing_committed(
    asynchronous: bool,
) -> None:
    graphs = {
        "plain": _build().compile(checkpointer=InMemorySaver()),
        "spec": speculate(_build(), {"a": _reader, "b": _walker}, keys={"b": _key, "c": _key}).compile(
            checkpointer=InMemorySaver()
        ),
    }
    obs: dict[str, oracle.Observation] = {}
    for name, graph in graphs.items():
        cfg: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
        ob = oracle.Observation()
        if asynchronous:
            ob.turns.append(oracle.result(asyncio.run(graph.ainvoke(_start(), cfg))))
        else:
            ob.turns.append(oracle.result(graph.invoke(_start(), cfg)))
        ob.history = oracle.history(graph.get_state_history(cfg))
        obs[name] = ob
    oracle.assert_same(obs["plain"], obs["spec"], "a vandal speculator and key")
    final = graphs["spec"].get_state(cfg).values
    assert "MUTATED" not in json.dumps(oracle.canon(final))
    report = graphs["spec"].last_report
    assert report is not None and report.adopted >= 1  # the guesses were right: work was adopted
    assert leftover_work() == []


# ------------------------------------------------------------- a branch's fork of the state


class Shaped(TypedDict):
    pair: tuple[int, int]
    n: int
    seen: str


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_branch_sees_the_types_the_main_run_sees(mode: str) -> None:
    """A checkpointer's serializer turns a tuple into a list. A branch forks the run's checkpoint
    into a saver of its own: its nodes (whose early calls the main run adopts) must still see
    the tuple the main run's nodes see, not what a serializer's round trip makes of it."""

    def a(state: Shaped) -> dict[str, Any]:
        time.sleep(0.05)
        return {"n": state["n"] + 1}

    def b(state: Shaped) -> dict[str, Any]:
        time.sleep(0.05)
        return {"seen": type(state["pair"]).__name__}

    def build() -> StateGraph:  # type: ignore[type-arg]
        g = StateGraph(Shaped)
        g.add_node("a", a)
        g.add_node("b", b)
        g.add_edge(START, "a")
        g.add_edge("a", "b")
        g.add_edge("b", END)
        return g

    def run(graph: Any) -> Any:
        cfg = {"configurable": {"thread_id": uuid.uuid4().hex}}
        inp = {"pair": (1, 2), "n": 0, "seen": ""}
        return graph.invoke(inp, cfg) if mode == "sync" else asyncio.run(graph.ainvoke(inp, cfg))

    plain = run(build().compile(checkpointer=InMemorySaver()))
    spec = speculate(build(), {"a": lambda s: [{"n": s["n"] + 1}]}).compile(checkpointer=InMemorySaver())
    for _ in range(3):
        assert run(spec) == plain == {"pair": (1, 2), "n": 1, "seen": "tuple"}
    report = spec.last_report
    assert report is not None and not oracle.report_problems(report)
    assert leftover_work() == []
