"""The ReAct graph: an agent node that thinks and acts, a tool node that asks the wiki.

Both slow nodes speculate. While the agent thinks, the offline speculator
(merged with a chat model's guesses when one is configured) guesses its next
action from what it has seen so far, and a branch starts the
guessed Search at once; when the agent's action is the guessed one, the main
run adopts the Search, already answered or in flight. While a Search is in
flight, the local index guesses its observation, and a branch runs the agent on
the guess; when the real observation equals it, the main run adopts the
agent's next call.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import NotRequired

from langgraph_speculative import AdaptivePolicy, Guess, SpeculationPolicy, speculate

from .._common import ScriptedChatModel, SpecError, parse_chat_spec, redact
from ._chat import ChatActionSpeculator, chat_model
from ._combined import CombinedActionSpeculator
from ._speculator import ActionSpeculator
from ._wiki import LocalWiki, WikipediaAPI, WikiSession, parse_action

__all__ = ("ReActState", "ReplayReAct", "initial_state", "make_graph")

PROMPT = (
    "Solve a question answering task with interleaving Thought, Action, Observation steps. "
    "Thought can reason about the current situation, and Action can be three types:\n"
    "(1) Search[entity], which searches the exact entity on Wikipedia and returns the first paragraph if it "
    "exists. If not, it will return some similar entities to search.\n"
    "(2) Lookup[keyword], which returns the next sentence containing keyword in the current passage.\n"
    "(3) Finish[answer], which returns the answer and finishes the task.\n"
    "Answer with one line 'Thought: ...' and one line 'Action: ...'.\n"
)


class ReActState(TypedDict):
    """The question, the steps so far, the action in flight and its observation, and the answer."""

    question: str
    steps: Annotated[list[dict[str, str]], operator.add]
    pending: dict[str, str] | None
    observation: NotRequired[str | None]
    answer: str | None
    max_steps: int


def initial_state(question: str, max_steps: int = 8) -> ReActState:
    """The state a ReAct graph starts from: the question, no steps yet, at most `max_steps` steps."""
    return {"question": question, "steps": [], "pending": None, "answer": None, "max_steps": max_steps}


def render(question: str, steps: list[dict[str, str]]) -> str:
    """The ReAct scratchpad the agent reads."""
    lines = [PROMPT, f"Question: {question}"]
    for i, s in enumerate(steps, 1):
        lines += [
            f"Thought {i}: {s['thought']}",
            f"Action {i}: {s['tool']}[{s['arg']}]",
            f"Observation {i}: {s['observation']}",
        ]
    return "\n".join(lines)


class ReplayReAct(ScriptedChatModel):
    """An offline ReAct agent that replays a recorded run's thoughts and actions.

    It reads the step number from the scratchpad, so any call order gives the
    same answers; `delay` seconds per call stand in for a model's latency.
    """

    steps: list[dict[str, Any]]
    delay: float = 0.1

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        done = str(messages[-1].content).count("\nObservation ")
        s = self.steps[min(done, len(self.steps) - 1)]
        return AIMessage(content=f"Thought: {s['thought']}\nAction: {s['tool']}[{s['arg']}]")


def session_after(backend: Any, steps: list[dict[str, str]], latency: float = 0.0) -> WikiSession:
    """The episode's session (open page, Lookup cursor) after `steps`, without calling the backend."""
    session = WikiSession(backend, latency=latency, history=tuple((s["tool"], s["arg"]) for s in steps))
    for s in steps:
        if s["tool"] == "Search":
            found = not s["observation"].startswith("Could not find")
            session.page, session._lookup = (backend.page(s["arg"]) if found else None), None
        elif s["tool"] == "Lookup" and session.page is not None:
            keyword, hits, i = session._lookup or (s["arg"], [], 0)
            if keyword != s["arg"]:
                keyword, i = s["arg"], 0
            hits = [x for x in backend.sentences(session.page) if keyword.lower() in x.lower()]
            session._lookup = (keyword, hits, i + 1)
    return session


def _same_action(guess: dict[str, Any], actual: dict[str, Any]) -> bool:
    """A guessed action hits when tool and argument are the agent's (the thought is not guessed)."""
    g, a = guess.get("pending") or {}, actual.get("pending") or {}
    return (g.get("tool"), g.get("arg")) == (a.get("tool"), a.get("arg"))


def _tool_key(state: ReActState) -> str:
    """What a tool call's observation depends on: the question, the earlier actions and
    observations, and the action; not the thought, which the action speculator cannot guess."""
    p = state.get("pending") or {}
    done = [(s["tool"], s["arg"], s["observation"]) for s in state["steps"]]
    return json.dumps([state["question"], done, p.get("tool"), p.get("arg")])


def _check_chat_form(spec: str, where: str) -> None:
    """`SpecError` (one line naming `where`) unless `spec` reads "provider:model[,key=value...]";
    the model itself is built at run time."""
    model, _ = parse_chat_spec(spec, f"{where} {redact(spec)!r}")
    if ":" not in model:
        hint = " (did you mean 'offline'?)" if difflib.get_close_matches(model, ["offline"], n=1) else ""
        raise SpecError(
            f"{where} {redact(spec)!r}: not a known choice{hint}; use offline, or a chat model "
            "provider:model, e.g. openai:gpt-4o-mini"
        )


def make_graph(
    *,
    agent_model: Any,
    speculator: Any = "offline",
    k: int = 3,
    backend: Any = "local",
    latency: float = 1.0,
    speculative: bool = True,
    guess_actions: bool = True,
    action_speculator: Any = "offline",
    combine_actions: bool = True,
    depth: int = 1,
    adaptive: AdaptivePolicy | bool | None = None,
) -> StateGraph:  # type: ignore[type-arg]
    """A ReAct graph (agent -> tool -> record -> agent ... until Finish or `max_steps`).

    `agent_model`: a chat model or a string (`openai:gpt-4o`, built here by
    LangChain's `init_chat_model`; no request is made until a run);
    `backend`: "local" (offline wiki), "live" (or "wikipedia": the
    MediaWiki API), or a backend object (`RecordedWiki` replays recorded
    runs); `latency`: seconds per Search; `speculator`: "offline" (the local
    index guesses the observation) or a function state -> guesses for the
    tool node; `guess_actions`: also guess the agent's next action so the
    guessed Searches start while the agent thinks, with `action_speculator`:
    "offline" (`ActionSpeculator`), a chat model string such as
    "openai:gpt-4o-mini" or a chat model object (built at run time; merged
    with the offline ranking by `CombinedActionSpeculator`, which falls back
    to the ranking when the model fails; `combine_actions=False` for the chat
    model alone, `ChatActionSpeculator`), or an object with
    `guess(question, steps, k)`; `k`, `depth`: the speculation
    policy; `adaptive`: learn per node which guesses pay (`AdaptivePolicy`, True for its
    defaults; `k`, `depth` become bounds). It pays here where a speculator is often wrong:
    against live or recorded observations the local mirror's guessed observation rarely
    matches, and each wrong one starts an agent call on a branch; adaptive stops that.
    """
    wiki = (
        LocalWiki()
        if backend in ("local", None)
        else WikipediaAPI()
        if backend in ("live", "wikipedia")
        else backend
    )
    if isinstance(action_speculator, str) and action_speculator != "offline":
        _check_chat_form(action_speculator, "action_speculator")
    model = chat_model(agent_model)

    async def agent(state: ReActState) -> dict[str, Any]:
        reply = await model.ainvoke(render(state["question"], state["steps"]))
        text = str(reply.content)
        thought = next(
            (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Thought")), ""
        )
        action = next((ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("Action")), text)
        parsed = parse_action(action) or ("Invalid", action.strip())
        return {"pending": {"thought": thought, "tool": parsed[0], "arg": parsed[1]}}

    async def tool(state: ReActState) -> dict[str, Any]:
        p = state["pending"] or {}
        session = session_after(wiki, state["steps"], latency)
        return {"observation": await asyncio.to_thread(session.step, p["tool"], p["arg"])}

    def record(state: ReActState) -> dict[str, Any]:
        p = state["pending"] or {}
        return {
            "steps": [{**p, "observation": state.get("observation") or ""}],
            "pending": None,
            "observation": None,
            "answer": p["arg"] if p["tool"] == "Finish" else None,
        }

    def after_record(state: ReActState) -> str:
        return END if state["answer"] is not None or len(state["steps"]) >= state["max_steps"] else "agent"

    builder = StateGraph(ReActState)
    builder.add_node("agent", agent)
    builder.add_node("tool", tool)
    builder.add_node("record", record)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tool")
    builder.add_edge("tool", "record")
    builder.add_conditional_edges("record", after_record, ["agent", END])
    if speculative:
        local = wiki if isinstance(wiki, LocalWiki) else LocalWiki()
        mirror = ActionSpeculator(local)

        def guess_observation(state: ReActState) -> list[Guess]:
            p = state["pending"] or {}
            if p.get("tool") != "Search":
                return []  # only Search is a round trip worth hiding
            obs = mirror.observation(p["tool"], p["arg"], session_after(local, state["steps"]))
            return [Guess({"observation": obs})]

        actions: Any = action_speculator
        if action_speculator == "offline":
            actions = mirror
        elif isinstance(action_speculator, (str, BaseChatModel)):
            chat = ChatActionSpeculator(action_speculator, k)
            actions = CombinedActionSpeculator(chat, mirror, k) if combine_actions else chat

        def searches(ranked: list[tuple[str, str]]) -> list[Guess]:
            return [
                Guess({"pending": {"thought": "", "tool": tool, "arg": arg}})
                for tool, arg in ranked
                if tool == "Search"  # a Lookup or Finish costs nothing to redo
            ]

        def guess_action(state: ReActState) -> list[Guess]:
            return searches(actions.guess(state["question"], state["steps"], k))

        async def aguess_action(state: ReActState) -> list[Guess]:
            return searches(await actions.aguess(state["question"], state["steps"], k))

        builder = speculate(
            builder,
            {
                "tool": speculator if callable(speculator) else guess_observation,
                "agent": (
                    (aguess_action if hasattr(actions, "aguess") else guess_action)
                    if guess_actions
                    else (lambda s: [])
                ),
            },
            policy=SpeculationPolicy(k=k, depth=depth, adaptive=adaptive, stream_events=True),
            keys={"tool": _tool_key},
            matches={"agent": _same_action},
        )
    return builder
