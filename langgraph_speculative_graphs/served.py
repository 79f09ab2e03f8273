"""The ready-made graphs as LangGraph Server serves them (`langgraph.json` at the repository root).

Each name here is a graph factory: the server calls it with the run's config, on its event loop,
for every run and every read of a thread. Everything that reads a file or builds an index runs
in a worker thread (`asyncio.to_thread`), so nothing trips the server's blocking-call guard;
nothing is built at import; a model named by a string ("openai:gpt-4o") is built only when a
run asks for it. Each returns the uncompiled builder: the server compiles it and lends its own
checkpointer and store. The assistant's `configurable` chooses what `make_graph` would take;
`"speculative": false` serves the plain graph (for comparisons). Chess is
`langgraph_speculative_graphs.chess:served_graph`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph

__all__ = ("hotpotqa", "tau_retail")


def _conf(config: RunnableConfig) -> dict[str, Any]:
    return dict(config.get("configurable") or {})


def _flag(conf: dict[str, Any], key: str, default: bool) -> bool:
    value = conf.get(key, default)
    return value.lower() not in ("0", "false", "no", "") if isinstance(value, str) else bool(value)


@functools.cache
def _tau_tasks(name: str) -> list[dict[str, Any]]:
    from .tau_retail._db import TASK_FILES, load_tasks

    if name not in TASK_FILES and name not in TASK_FILES.values():  # packaged data only, never a path
        raise ValueError(f"tau_retail: tasks {name!r} is none of {', '.join(TASK_FILES)}")
    return load_tasks(name)


def _tau_builder(conf: dict[str, Any]) -> StateGraph:  # type: ignore[type-arg]
    from .tau_retail import make_graph

    tasks = _tau_tasks(str(conf.get("tasks", "test")))
    index = int(conf.get("task", 0))
    if not 0 <= index < len(tasks):
        raise ValueError(f"tau_retail: task {index} is not in 0..{len(tasks) - 1}")
    wpm = conf.get("typing_wpm")
    return make_graph(
        task=tasks[index],
        agent_model=conf.get("agent_model", "replay"),
        user_model=conf.get("user_model", "replay"),
        speculator=conf.get("speculator", "offline"),
        k=int(conf.get("k", 3)),
        tool_latency=float(conf.get("tool_latency", 0.5)),
        typing_wpm=float(wpm) if wpm else None,
        replay_delay=float(conf.get("replay_delay", 1.0)),
        user_delay=float(conf.get("user_delay", 0.0)),
        user_turns=_flag(conf, "user_turns", True),
        speculative=_flag(conf, "speculative", True),
    )


async def tau_retail(config: RunnableConfig) -> StateGraph:  # type: ignore[type-arg]
    """tau-bench retail, one task per run (a fresh copy of the database each time).

    Input: `{"messages": [], "db_version": 0}`; the customer opens the conversation and the run
    goes on until they say `###STOP###`. `configurable`: `task` (index, default 0) into `tasks`
    ("test": the 15-task test sample, default; "dev"), `agent_model` / `user_model` ("replay":
    offline, default; or a chat-model string), `speculator` ("offline"), `k` (3),
    `tool_latency` (0.5 s), `replay_delay` (1.0 s per agent turn), `user_delay`, `typing_wpm`,
    `user_turns` (true), `speculative` (true).
    """
    return await asyncio.to_thread(_tau_builder, _conf(config))


@functools.cache
def _react_runs() -> list[dict[str, Any]]:
    from .hotpotqa._wiki import data_text

    return list(json.loads(data_text("react_trajectories_dev.json")))


@functools.cache
def _wiki(name: str) -> Any:
    from .hotpotqa import LocalWiki, RecordedWiki, WikipediaAPI

    if name == "local":
        return LocalWiki()
    if name in ("live", "wikipedia"):
        return WikipediaAPI()
    if name == "recorded":
        return RecordedWiki(_react_runs(), _wiki("local"))
    raise ValueError(f"hotpotqa: backend {name!r} is none of recorded, local, live")


def _react_builder(conf: dict[str, Any]) -> StateGraph:  # type: ignore[type-arg]
    from .hotpotqa import ReplayReAct, make_graph

    runs = _react_runs()
    index = int(conf.get("run", 0))
    if not 0 <= index < len(runs):
        raise ValueError(f"hotpotqa: run {index} is not in 0..{len(runs) - 1}")
    agent = conf.get("agent_model", "replay")
    if agent == "replay":
        agent = ReplayReAct(steps=runs[index]["steps"], delay=float(conf.get("agent_delay", 1.0)))
    return make_graph(
        agent_model=agent,
        backend=_wiki(str(conf.get("backend", "recorded"))),
        latency=float(conf.get("latency", 0.5)),
        k=int(conf.get("k", 3)),
        depth=int(conf.get("depth", 1)),
        guess_actions=_flag(conf, "guess_actions", True),
        action_speculator=conf.get("action_speculator", "offline"),
        combine_actions=_flag(conf, "combine_actions", True),
        speculative=_flag(conf, "speculative", True),
    )


async def hotpotqa(config: RunnableConfig) -> StateGraph:  # type: ignore[type-arg]
    """ReAct on HotpotQA, replaying a recorded run by default.

    Input: `langgraph_speculative_graphs.hotpotqa.initial_state(question)`, i.e. `{"question": ...,
    "steps": [], "pending": null, "answer": null, "max_steps": 8}`. `configurable`: `run` (index into the
    50 recorded dev runs, default 0: the replayed agent makes that run's moves, so ask its
    question), `agent_model` ("replay", or a chat-model string), `agent_delay` (1.0 s per
    replayed step), `backend` ("recorded": the runs' own observations, default; "local";
    "live"), `latency` (0.5 s per Search), `k` (3), `depth` (1), `guess_actions` (true),
    `action_speculator` ("offline", or a chat-model string: merged with the offline ranking unless
    `combine_actions` is false), `speculative` (true).
    """
    return await asyncio.to_thread(_react_builder, _conf(config))
