"""The default adoption key and match: what they read of a node's input, and what they leave out.

Property: two inputs that differ in anything a node could read (a domain record's id or name, a
message's content, a tool call's name or arguments, which call a tool message answers) never
share a key; two inputs that differ only in provider bookkeeping (message ids, response and usage
metadata, `refusal: None`, the tool-call id strings a provider makes up) always do.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.types import Send

from langgraph_speculative._keys import default_key, default_match, normalize, remap, tool_call_ids

# small pools, so that values (domain ids, tool-call ids, message ids) often coincide
_TEXT = st.sampled_from(["", "a", "b", "Ann", "u-1", "u-2", "c1", "c2", "tc0"])
_CALL_IDS = [f"c{i}" for i in range(12)] + [f"call_{i}" for i in range(12)]
_ARGS = st.dictionaries(st.sampled_from(["q", "id", "n"]), st.one_of(_TEXT, st.integers(0, 3)), max_size=2)


@st.composite
def _readable(draw: Any) -> dict[str, Any]:
    """What a node reads: domain records, and a conversation with tool calls and their answers."""
    records = draw(
        st.lists(
            st.fixed_dictionaries(
                {"id": _TEXT, "name": _TEXT}, optional={"args": _ARGS, "n": st.integers(0, 3)}
            ),
            max_size=3,
        )
    )
    turns = []
    n_calls = 0
    for _ in range(draw(st.integers(0, 3))):
        calls = draw(st.lists(st.tuples(st.sampled_from(["get", "put"]), _ARGS), max_size=2))
        answers = [draw(st.integers(0, n_calls + len(calls) - 1)) for _ in calls] if calls else []
        n_calls += len(calls)
        turns.append({"ask": draw(_TEXT), "say": draw(_TEXT), "calls": calls, "answers": answers})
    # how the conversation is written: LangChain messages, or the content blocks of a provider
    style = draw(st.sampled_from(sorted(_STYLES))) if turns else "messages"  # no message: no style
    return {"records": records, "turns": turns, "style": style}


# (call block, result block) of each way a tool call and its answer can be written in content:
# LangChain's `ToolMessage`, Anthropic's `tool_use`/`tool_result`, the OpenAI Responses API's
# `function_call`/`function_call_output`, LangChain's standard server-side tool blocks.
_STYLES: dict[str, Any] = {
    "messages": None,
    "dicts": "dicts",  # messages written as dicts, their tool calls without a `type`
    "anthropic": (
        lambda cid, name, args: {"type": "tool_use", "id": cid, "name": name, "input": args},
        lambda cid, text: {"type": "tool_result", "tool_use_id": cid, "content": text},
    ),
    "responses": (
        lambda cid, name, args: {"type": "function_call", "call_id": cid, "name": name, "arguments": args},
        lambda cid, text: {"type": "function_call_output", "call_id": cid, "output": text},
    ),
    "server": (
        lambda cid, name, args: {"type": "server_tool_call", "id": cid, "name": name, "args": args},
        lambda cid, text: {"type": "server_tool_result", "tool_call_id": cid, "output": text},
    ),
}


@st.composite
def _noise(draw: Any, n: int = 12) -> dict[str, Any]:
    """Provider bookkeeping: made-up ids, metadata, `refusal: None`."""
    return {
        "call_ids": draw(st.permutations(_CALL_IDS))[:n],
        "msg_ids": draw(st.lists(_TEXT, min_size=2 * n, max_size=2 * n)),
        "refusal": draw(st.booleans()),
        "model": draw(st.sampled_from(["big", "small"])),
    }


def _build(r: dict[str, Any], noise: dict[str, Any]) -> dict[str, Any]:
    messages: list[Any] = []
    k = 0
    ids = noise["call_ids"]
    mid = iter(noise["msg_ids"])
    for turn in r["turns"]:
        messages.append(HumanMessage(turn["ask"], id=next(mid)))
        calls = [
            {"name": name, "args": dict(args), "id": ids[k + i], "type": "tool_call"}
            for i, (name, args) in enumerate(turn["calls"])
        ]
        messages.append(
            AIMessage(
                turn["say"],
                tool_calls=calls,
                id=next(mid),
                additional_kwargs={"refusal": None} if noise["refusal"] else {},
                response_metadata={"model_name": noise["model"], "finish_reason": "stop"},
                usage_metadata={"input_tokens": len(ids), "output_tokens": 1, "total_tokens": 1 + len(ids)},
            )
        )
        k += len(calls)
        blocks = _STYLES[r.get("style", "messages")]
        if blocks == "dicts":
            messages[-2] = {"role": "user", "content": turn["ask"]}
            messages[-1] = {
                "role": "assistant",
                "content": turn["say"],
                "tool_calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in calls],
            }
            for answer in turn["answers"]:
                messages.append({"role": "tool", "content": f"result {answer}", "tool_call_id": ids[answer]})
            continue
        if blocks is not None:  # the calls written in the content too, as the provider does
            make_call, _ = blocks
            messages[-1].content = [{"type": "text", "text": turn["say"]}] + [
                make_call(c["id"], c["name"], c["args"]) for c in calls
            ]
        for answer in turn["answers"]:
            if blocks is None:
                messages.append(ToolMessage(f"result {answer}", tool_call_id=ids[answer]))
            else:
                messages.append(HumanMessage([blocks[1](ids[answer], f"result {answer}")], id=next(mid)))
    return {"records": [dict(x) for x in r["records"]], "messages": messages}


@settings(max_examples=300, deadline=None)
@given(_readable(), _readable(), _noise(), _noise())
def test_inputs_that_read_differently_never_share_a_key(
    a: dict[str, Any], b: dict[str, Any], na: dict[str, Any], nb: dict[str, Any]
) -> None:
    same = default_key(_build(a, na)) == default_key(_build(b, nb))
    assert same == (a == b), (a, b)


@settings(max_examples=100, deadline=None)
@given(_readable(), _noise(), _noise())
def test_tool_call_ids_are_positional_and_remap_restores_them(
    r: dict[str, Any], na: dict[str, Any], nb: dict[str, Any]
) -> None:
    early, main = _build(r, na), _build(r, nb)
    ids_early, ids_main = tool_call_ids(early), tool_call_ids(main)
    assert len(ids_early) == len(ids_main)
    mapping = dict(zip(ids_early, ids_main))
    back = remap(early["messages"], mapping)
    assert [getattr(m, "tool_call_id", None) for m in back] == [
        getattr(m, "tool_call_id", None) for m in main["messages"]
    ]
    assert [getattr(m, "tool_calls", None) for m in back] == [
        getattr(m, "tool_calls", None) for m in main["messages"]
    ]
    # the ids inside content blocks (and messages written as dicts) too: all the main run reads
    assert [getattr(m, "content", m) for m in back] == [getattr(m, "content", m) for m in main["messages"]]


@pytest.mark.parametrize("typed", [True, False])
def test_records_shaped_like_tool_calls_keep_their_ids(typed: bool) -> None:
    """Issue 27: `{"id", "name"}` records are data, not tool calls. A `ToolCall` is one with or
    without its optional `type` (LangChain's `ToolCall` has it `NotRequired`)."""
    ann1, ann2 = {"user": {"id": "u-1", "name": "Ann"}}, {"user": {"id": "u-2", "name": "Ann"}}
    assert default_key(ann1) != default_key(ann2)
    assert default_key({"users": [{"id": "u-1", "name": "Ann"}]}) != default_key(
        {"users": [{"id": "u-2", "name": "Ann"}]}
    )
    call: dict[str, Any] = {"name": "get_user", "args": {"id": "u-1"}, "id": "call_1", "type": "tool_call"}
    if not typed:
        del call["type"]
    other = {**call, "id": "call_2"}
    # a ToolCall sent to a tool node, alone or with its context, is a tool call: its id is positional
    assert default_key(Send("tools", call)) == default_key(Send("tools", other))
    assert default_key([call]) == default_key([other])  # a tool node's whole input
    assert tool_call_ids([call]) == ["call_1"]
    assert remap([call], {"call_1": "call_2"}) == [other]
    ctx = {"__type": "tool_call_with_context", "tool_call": call, "state": {}}
    assert default_key(Send("tools", ctx)) == default_key(Send("tools", {**ctx, "tool_call": other}))
    # but a record holding that shape as data elsewhere keeps it
    assert default_key({"user": {"id": "call_1", "name": "x", "args": {}}}) != default_key(
        {"user": {"id": "call_2", "name": "x", "args": {}}}
    )
    # strings equal to a tool-call id elsewhere are still read as they are
    msg = AIMessage("", tool_calls=[call])  # type: ignore[list-item]
    assert default_key({"m": [msg], "note": "call_1"}) != default_key({"m": [msg], "note": "call_9"})


def test_scalars_of_different_types_never_share_a_key() -> None:
    assert default_key(1.5) != default_key("1.5")
    assert default_key({1: "a"}) != default_key({"1": "a"})
    assert default_key(True) != default_key(1)
    assert default_key(1) != default_key(1.0)


def test_a_model_reply_matches_as_the_next_nodes_read_it() -> None:
    """Item 2 of issue 25: a non-streamed reply (`refusal: None`, ids, metadata), a streamed one
    (merged chunks) and a guess built by hand compare equal; a different argument does not."""
    guess = AIMessage(
        "", tool_calls=[{"name": "get", "args": {"q": "a"}, "id": "speculative-0", "type": "tool_call"}]
    )
    plain = AIMessage(
        "",
        tool_calls=[{"name": "get", "args": {"q": "a"}, "id": "call_Xy", "type": "tool_call"}],
        additional_kwargs={"refusal": None},
        response_metadata={"model_name": "big", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        id="chatcmpl-1",
    )
    streamed = AIMessageChunk(
        "", tool_call_chunks=[{"name": "get", "args": '{"q":', "id": "call_Z", "index": 0}]
    ) + (AIMessageChunk("", tool_call_chunks=[{"name": None, "args": ' "a"}', "id": None, "index": 0}]))
    for actual in (plain, streamed):
        assert default_match({"messages": [guess]}, {"messages": [actual]})
        assert default_key({"messages": [guess]}) == default_key({"messages": [actual]})
    wrong = guess.model_copy(update={"tool_calls": [{**guess.tool_calls[0], "args": {"q": "b"}}]})
    assert not default_match({"messages": [wrong]}, {"messages": [plain]})
    said = guess.model_copy(update={"content": "Let me look."})
    assert not default_match({"messages": [said]}, {"messages": [plain]})
    refused = plain.model_copy(update={"additional_kwargs": {"refusal": "I can't."}})
    assert not default_match({"messages": [guess]}, {"messages": [refused]})


@settings(max_examples=200, deadline=None)
@given(_readable(), _readable(), _noise(), _noise())
def test_the_key_is_equal_exactly_when_the_canonical_forms_are(
    a: dict[str, Any], b: dict[str, Any], na: dict[str, Any], nb: dict[str, Any]
) -> None:
    """Issue 29: `default_key` hashes a message by the digest of its form normalized alone (from
    a memo on its exact fields) and the numbers of its tool-call ids in the whole input: still
    equal exactly when `normalize` says so, computed fresh or remembered."""
    x, y = _build(a, na), _build(b, nb)
    first = default_key(x) == default_key(y)
    again = default_key(x) == default_key(y)  # every message now remembered
    assert first == again == (normalize(x) == normalize(y))


def test_a_message_changed_in_place_gets_a_new_key() -> None:
    """The memo is keyed on a message's exact fields (types too): no stale key after a change."""
    msg = AIMessage(
        "a", tool_calls=[{"name": "f", "args": {"n": 1}, "id": "call_1", "type": "tool_call"}], id="m"
    )
    state = {"messages": [HumanMessage("hi", id="h"), msg]}
    before = default_key(state)
    assert default_key(state) == before
    msg.tool_calls[0]["args"]["n"] = True  # equal to 1 for `==`, not for a node
    assert default_key(state) != before
    msg.tool_calls[0]["args"]["n"] = 1
    assert default_key(state) == before
    msg.content = "b"
    assert default_key(state) != before


def test_tool_call_ids_of_remembered_messages_are_numbered_in_the_whole_input() -> None:
    def call(i: str) -> AIMessage:
        return AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": i, "type": "tool_call"}])

    def answer(i: str) -> ToolMessage:
        return ToolMessage("r", tool_call_id=i)

    # the same messages (remembered after the first key) answering a different call
    right = {"messages": [call("c1"), call("c2"), answer("c1")]}
    wrong = {"messages": [call("c1"), call("c2"), answer("c2")]}
    renamed = {"messages": [call("x1"), call("x2"), answer("x1")]}
    for _ in range(2):
        assert default_key(right) != default_key(wrong)
        assert default_key(right) == default_key(renamed)
        assert default_key({"messages": [answer("c1"), call("c1")]}) != default_key(
            {"messages": [answer("c2"), call("c1")]}
        )


def test_bytes_like_fields_are_never_remembered_for_one_another() -> None:
    """`marshal` writes a `bytearray` as `bytes`: the two messages' fields give equal bytes, but
    a node reads them differently, so they must not share a key (nor take each other's)."""
    as_bytes = HumanMessage("x", additional_kwargs={"blob": b"ab"}, id="m")
    as_array = HumanMessage("x", additional_kwargs={"blob": bytearray(b"ab")}, id="m")
    assert normalize(as_bytes) != normalize(as_array)
    for first, second in ((as_bytes, as_array), (as_array, as_bytes)):
        assert default_key({"m": [first]}) != default_key({"m": [second]})
        assert default_key({"m": [first]}) == default_key({"m": [first]})
