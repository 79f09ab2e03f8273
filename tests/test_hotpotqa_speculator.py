"""HotpotQA next-action speculator: cross-validation without leaks, unseen-style inputs, the chat model.

The chat-model speculator runs through the real `langchain-openai` client
against an OpenAI-compatible stub server on 127.0.0.1 that the test starts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_speculative._cli import main as cli
from langgraph_speculative_graphs.hotpotqa import (
    ActionSpeculator,
    ReplayReAct,
    _ranker,
    initial_state,
    make_graph,
)
from langgraph_speculative_graphs.hotpotqa._chat import ChatActionSpeculator, parse_guesses
from langgraph_speculative_graphs.hotpotqa._ranker import (
    choose_l2,
    cross_validate,
    featurize,
    fit,
    load_weights,
)
from langgraph_speculative_graphs.hotpotqa._wiki import LocalWiki, RecordedWiki, parse_action

RUNS = "langgraph_speculative_graphs/hotpotqa/data/react_trajectories_dev.json"
with open(RUNS) as f:
    RECORDED: list[dict[str, Any]] = json.load(f)
SPECULATOR = ActionSpeculator()


def test_cv_folds_partition_the_runs_and_no_fit_sees_its_held_out_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = RECORDED[:20]
    events: list[tuple[str, frozenset[int]]] = []
    real_fit, real_score = _ranker.fit, _ranker.score_steps

    def spy_fit(steps: Any, l2: float = 1.0) -> dict[str, float]:
        events.append(("fit", frozenset(s.run for s in steps)))
        return real_fit(steps, l2)

    def spy_score(steps: Any, ranker: Any, k: int) -> dict[str, Any]:
        events.append(("score", frozenset(s.run for s in steps)))
        return real_score(steps, ranker, k)

    monkeypatch.setattr(_ranker, "fit", spy_fit)
    monkeypatch.setattr(_ranker, "score_steps", spy_score)
    out = cross_validate(runs, n_folds=4, k=3, seed=7)
    folds = [set(f["runs"]) for f in out["per_fold"]]
    assert sorted(r for f in folds for r in f) == list(range(20))  # a partition of the runs
    assert all(len(f) == 5 for f in folds)
    fold, fits = 0, 0
    for kind, seen in events:
        if kind == "fit":
            assert not seen & folds[fold], f"a fit for fold {fold} saw its held-out runs"
            fits += 1
        elif seen == folds[fold]:
            fold += 1  # the outer score of this fold: the next fits belong to the next fold
    assert fold == 4 and fits == 4 * (1 + 4 * len(_ranker.L2_GRID))
    assert out["steps"] == sum(len(r["steps"]) for r in runs)
    assert 0 <= out["top1_acc"] <= out["topk_acc"] <= 1


def test_cv_scores_a_fold_with_a_model_that_never_saw_it() -> None:
    """A run whose steps are memorised in-sample is not memorised when held out."""
    steps = featurize(RECORDED)
    inside = _ranker.score_steps(steps, _ranker.Ranker(fit(steps, 0.1)), 3)["topk"]
    outside = 0
    for fold in _ranker._folds(len(RECORDED), 5, 0):
        held = set(fold)
        ranker = _ranker.Ranker(fit([s for s in steps if s.run not in held], 0.1))
        outside += _ranker.score_steps([s for s in steps if s.run in held], ranker, 3)["topk"]
    assert outside < inside  # the gap in-sample fitting hides


def test_eval_cv_command_reports_the_fold_mean_beside_the_shipped_weights(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["eval", "hotpotqa", "--trajectories", RUNS, "--cv", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folds"] == 5 and out["runs"] == 50 and out["steps"] == 184
    means = [f["topk_acc"] for f in out["per_fold"]]
    assert out["topk_acc"] == pytest.approx(sum(means) / 5, abs=1e-4)
    assert out["topk_acc"] < out["shipped_weights"]["topk_acc"]  # in-sample is optimistic
    assert set(out["per_tool"]) == {"Search", "Lookup", "Finish"}
    assert all(v in _ranker.L2_GRID for f in out["per_fold"] for v in f["l2"].values())
    assert cli(["eval", "hotpotqa", "--trajectories", RUNS, "--cv", "5", "--repeat", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["topk_acc"] == out["topk_acc"]  # the same seed gives the same folds and figures
    spread = again["repeats"]["topk_acc"]
    assert again["repeats"]["seeds"] == [0, 1] and spread["min"] <= out["topk_acc"] <= spread["max"]


def test_shipped_weights_are_what_the_fit_script_produces() -> None:
    shipped = json.loads(Path("langgraph_speculative_graphs/hotpotqa/data/action_weights.json").read_text())
    steps = featurize(RECORDED)
    assert shipped["l2"] == choose_l2(steps, 3)
    refit = fit(steps, shipped["l2"])
    assert set(refit) == set(shipped["weights"])
    assert all(abs(refit[n] - w) < 1e-3 for n, w in shipped["weights"].items())
    assert load_weights() == pytest.approx(shipped["weights"])


def test_guesses_read_only_what_the_agent_saw() -> None:
    """Ids, answers and labels are not inputs: changing them changes no guess."""
    run = RECORDED[3]
    other = copy.deepcopy(run)
    other["id"], other["answer"] = "000", "something else"
    for i in range(len(run["steps"]) + 1):
        assert SPECULATOR.guess(run["question"], run["steps"][:i]) == SPECULATOR.guess(
            other["question"], other["steps"][:i]
        )


def _step(thought: str, tool: str, arg: str, observation: str) -> dict[str, str]:
    return {"thought": thought, "tool": tool, "arg": arg, "observation": observation}


def test_speculator_on_an_unseen_comparison_question() -> None:
    q = "Which band was formed first, Zorvath Kell or The Minnow Parade?"  # invented names
    assert ("Search", "Zorvath Kell") in SPECULATOR.guess(q, [])
    steps = [
        _step(
            "I need to search Zorvath Kell and The Minnow Parade, find when they were formed, then find "
            "which was formed first.",
            "Search",
            "Zorvath Kell",
            "Zorvath Kell is an American rock band formed in Duluth, Minnesota, in 1994.",
        )
    ]
    assert ("Search", "The Minnow Parade") in SPECULATOR.guess(q, steps)
    steps.append(
        _step(
            "Zorvath Kell was formed in 1994. I need to search The Minnow Parade next.",
            "Search",
            "The Minnow Parade",
            "The Minnow Parade is a Welsh indie band formed in Cardiff in 2003.",
        )
    )
    guesses = SPECULATOR.guess(q, steps)
    assert {("Finish", "Zorvath Kell"), ("Finish", "The Minnow Parade")} & set(guesses)


def test_speculator_on_an_unseen_bridge_question() -> None:
    q = "In what year was the founder of Quellmark Industries born?"
    assert SPECULATOR.guess(q, [])[0] == ("Search", "Quellmark Industries")
    steps = [
        _step(
            "I need to search Quellmark Industries, find its founder, then find the year he was born.",
            "Search",
            "Quellmark Industries",
            "Quellmark Industries is a Norwegian shipbuilding company founded by Arvid Penhallow in 1952.",
        )
    ]
    assert ("Search", "Arvid Penhallow") in SPECULATOR.guess(q, steps)
    steps.append(
        _step(
            "Quellmark Industries was founded by Arvid Penhallow. I need to search Arvid Penhallow and find "
            "the year he was born.",
            "Search",
            "Arvid Penhallow",
            "Arvid Penhallow (3 May 1921 – 8 June 1990) was a Norwegian engineer and industrialist.",
        )
    )
    assert ("Finish", "1921") in SPECULATOR.guess(q, steps)


def test_speculator_after_a_failed_search_and_on_yes_no() -> None:
    q = "Are Lirien Vosk and Hadley Crane both painters?"
    steps = [
        _step(
            "I need to search Lirien Vosk and Hadley Crane, find their professions, then find if they are "
            "both painters.",
            "Search",
            "Lirien Vosk",
            "Could not find [Lirien Vosk]. Similar: ['Lirien Vosk (painter)', 'Vosk', 'Lirien']",
        )
    ]
    assert ("Search", "Lirien Vosk (painter)") in SPECULATOR.guess(q, steps)
    steps += [
        _step(
            "To find it, I can search Lirien Vosk (painter).",
            "Search",
            "Lirien Vosk (painter)",
            "Lirien Vosk is a Czech painter.",
        ),
        _step(
            "Lirien Vosk is a painter. I need to search Hadley Crane next.",
            "Search",
            "Hadley Crane",
            "Hadley Crane is an English novelist.",
        ),
    ]
    assert {("Finish", "no"), ("Finish", "yes")} & set(SPECULATOR.guess(q, steps))


def test_lookup_guesses_question_keywords_missing_from_the_page() -> None:
    q = "What is the name of the mascot of Tarrow College?"
    steps = [
        _step(
            "I need to search Tarrow College and find its mascot.",
            "Search",
            "Tarrow College",
            "Tarrow College is a private college in Ohio.",
        )
    ]
    tools, options = _ranker.candidates(q, steps)
    assert ("Lookup", "mascot") in options and options[("Lookup", "mascot")].get("L.q.missing")
    assert "Lookup" in tools


# --- the chat-model speculator against an OpenAI-compatible loopback stub ---------------------------


class _ChatStub(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with the recorded run's next action first, then two wrong ones."""

    run: dict[str, Any] = RECORDED[0]
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        prompt = str(body["messages"][-1]["content"])
        done = prompt.count("\nObservation ")
        steps = self.run["steps"]
        actual = steps[min(done, len(steps) - 1)]
        content = f"1. {actual['tool']}[{actual['arg']}]\nSearch[Nowhere Land]\nFinish[maybe]"
        data = json.dumps(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_stub() -> Any:
    server = HTTPServer(("127.0.0.1", 0), _ChatStub)
    _ChatStub.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"openai:gpt-4o-mini,base_url=http://127.0.0.1:{server.server_port}/v1,api_key=stub,max_retries=0"
    finally:
        server.shutdown()
        thread.join()


def test_parse_guesses_ignores_numbering_and_other_text() -> None:
    text = (
        "Here you go:\n1. Search[Pete Doherty]\n- Action 2: Finish[yes]\nSearch[Pete Doherty]\nLookup[bands]"
    )
    assert parse_guesses(text, 3) == [("Search", "Pete Doherty"), ("Finish", "yes"), ("Lookup", "bands")]
    assert parse_action("Finish[]") == ("Finish", "")


def test_chat_speculator_through_langchain_openai_against_a_loopback_stub(chat_stub: str) -> None:
    spec = ChatActionSpeculator(chat_stub)
    assert spec._model is None  # built on first use, not before
    run = _ChatStub.run
    guesses = spec.guess(run["question"], run["steps"][:1], 3)
    assert guesses == [
        (run["steps"][1]["tool"], run["steps"][1]["arg"]),
        ("Search", "Nowhere Land"),
        ("Finish", "maybe"),
    ]
    request = _ChatStub.requests[-1]
    assert request["model"] == "gpt-4o-mini"
    prompt = request["messages"][-1]["content"]
    assert run["question"] in prompt and run["steps"][0]["observation"] in prompt
    assert "Predict Action 2." in prompt and run["steps"][1]["thought"] not in prompt
    assert asyncio.run(spec.aguess(run["question"], [], 2)) == [
        (run["steps"][0]["tool"], run["steps"][0]["arg"]),
        ("Search", "Nowhere Land"),
    ]


def test_eval_command_with_a_chat_model_speculator(chat_stub: str, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([_ChatStub.run]))
    assert cli(["eval", "hotpotqa", "--trajectories", str(path), "--speculator", chat_stub, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == len(_ChatStub.run["steps"]) and out["top1_acc"] == 1.0
    assert out["speculator"].startswith("chat model openai:gpt-4o-mini")
    assert out["speculator_median_s"] is not None and out["speculator_median_s"] >= 0


def test_react_graph_with_a_chat_model_action_speculator_is_lossless(chat_stub: str) -> None:
    run = _ChatStub.run
    wiki = RecordedWiki(RECORDED, LocalWiki())

    def play(speculative: bool) -> tuple[Any, Any, Any]:
        builder = make_graph(
            agent_model=ReplayReAct(steps=run["steps"], delay=0.2),
            backend=wiki,
            latency=0.05,
            speculative=speculative,
            action_speculator=chat_stub,
        )
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "q"}}
        final = asyncio.run(graph.ainvoke(initial_state(run["question"]), config))
        return final, [s.values for s in graph.get_state_history(config)], getattr(graph, "last_report", None)

    final, history, report = play(True)
    plain_final, plain_history, _ = play(False)
    assert final == plain_final and history == plain_history
    assert report.node("agent").hits >= 1  # the stub's first guess is the agent's action


def test_eval_backend_flag_scores_guessed_observations(capsys: Any, tmp_path: Path) -> None:
    assert cli(["eval", "hotpotqa", "--trajectories", RUNS, "--backend", "local", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)["observations"]
    assert local["backend"] == "local" and local["acc"] == 1.0  # the mirror is the local wiki
    assert cli(["eval", "hotpotqa", "--trajectories", RUNS, "--backend", "recorded", "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)["observations"]
    assert recorded["searches"] == local["searches"] and recorded["hits"] < recorded["searches"]
