"""HotpotQA next-action speculator: nested CV grouped by question, unseen-style inputs, the chat model.

The chat-model speculator runs through the real `langchain-openai` client
against an OpenAI-compatible stub server on 127.0.0.1 that the test starts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
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
    _cv,
    _ranker,
    initial_state,
    make_graph,
)
from langgraph_speculative_graphs.hotpotqa._chat import ChatActionSpeculator, parse_guesses
from langgraph_speculative_graphs.hotpotqa._cv import (
    group_folds,
    in_sample,
    nested_cv,
    question_key,
    restrict_candidates,
)
from langgraph_speculative_graphs.hotpotqa._ranker import load_model, load_weights
from langgraph_speculative_graphs.hotpotqa._wiki import LocalWiki, RecordedWiki, parse_action

RUNS = "langgraph_speculative_graphs/hotpotqa/data/react_trajectories_dev.json"
with open(RUNS) as f:
    RECORDED: list[dict[str, Any]] = json.load(f)
SPECULATOR = ActionSpeculator()


def _runs_with_a_repeated_question() -> list[dict[str, Any]]:
    """12 recorded runs, and two more runs of two of their questions (spacing and case changed)."""
    runs = copy.deepcopy(RECORDED[:12])
    for r in (runs[2], runs[7]):
        again = copy.deepcopy(r)
        again["question"] = "  " + r["question"].upper().replace(" ", "  ")
        again["steps"] = again["steps"][:-1] or again["steps"]
        runs.append(again)
    return runs


def test_group_folds_keep_each_question_on_one_side_and_are_deterministic_per_seed() -> None:
    runs = _runs_with_a_repeated_question()
    keys = [question_key(r["question"]) for r in runs]
    assert len(set(keys)) == 12 and len(keys) == 14
    folds = group_folds(keys, 4, seed=3)
    assert sorted(i for f in folds for i in f) == list(range(14))  # a partition of the runs
    for fold in folds:
        inside = {keys[i] for i in fold}
        outside = {keys[i] for f in folds if f is not fold for i in f}
        assert not inside & outside  # no question on both sides
    assert group_folds(keys, 4, seed=3) == folds
    assert group_folds(keys, 4, seed=4) != folds
    with pytest.raises(ValueError, match="--cv needs 2 <= folds <= 12"):
        group_folds(keys, 13, seed=0)


def test_nested_cv_never_fits_on_a_held_out_question(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fit made for an outer fold (inner folds, L2 and family choices, the final weights) sees
    only the other folds' questions; the repeated question's two runs are held out together."""
    runs = _runs_with_a_repeated_question()
    keys = [question_key(r["question"]) for r in runs]
    events: list[tuple[str, frozenset[int]]] = []
    real_fit, real_fs = _cv.Design.fit, _cv.fit_speculator

    def spy_fit(self: Any, which: Any, off: Any, l2: Any) -> Any:
        events.append(("fit", frozenset(int(r) for r in self.run[which])))
        return real_fit(self, which, off, l2)

    def spy_fs(design: Any, which: Any, *args: Any, **kwargs: Any) -> Any:
        events.append(("outer", frozenset(int(r) for r in design.run[which])))
        return real_fs(design, which, *args, **kwargs)

    monkeypatch.setattr(_cv.Design, "fit", spy_fit)
    monkeypatch.setattr(_cv, "fit_speculator", spy_fs)
    out = nested_cv(runs, n_folds=3, repeats=2, k=3, seed=5, select=False)
    held = [set(f["runs"]) for f in out["per_fold"]]
    assert len(held) == 6
    for rep in (held[:3], held[3:]):
        assert sorted(r for f in rep for r in f) == list(range(14))
    outer = [seen for kind, seen in events if kind == "outer"]
    assert len(outer) == 6
    fold, fits = -1, 0
    for kind, seen in events:
        if kind == "outer":
            fold += 1
            assert seen == set(range(14)) - held[fold]
            assert not {keys[r] for r in seen} & {keys[r] for r in held[fold]}
        else:
            assert not seen & held[fold], f"a fit for fold {fold} saw its held-out runs"
            fits += 1
    assert fits == 6 * (1 + 4 * len(_ranker.L2_GRID))  # inner L2 choice (4 inner folds) + the final fit
    assert out["steps"] == sum(len(r["steps"]) for r in runs)
    assert out["topk_acc"]["mean"] == pytest.approx(
        statistics.mean(r["topk_acc"] for r in out["per_repeat"]), abs=1e-4
    )
    assert out["topk_acc"]["sd"] == pytest.approx(
        statistics.stdev(r["topk_acc"] for r in out["per_repeat"]), abs=1e-4
    )
    assert nested_cv(runs, n_folds=3, repeats=2, k=3, seed=5, select=False) == out  # deterministic


def test_a_folds_fitted_choices_do_not_change_when_its_held_out_runs_change() -> None:
    """Rule families, L2 strengths and weights of a fold are fitted without its held-out questions:
    rewriting those runs changes none of them (and does change the folds that train on them)."""
    runs = copy.deepcopy(RECORDED[:12])
    first = nested_cv(runs, n_folds=3, repeats=1, k=3, seed=2, select=True)
    fold0 = first["per_fold"][0]
    altered = copy.deepcopy(runs)
    for r in fold0["runs"]:
        for step in altered[r]["steps"]:
            step["thought"] = "I need to search Quellmark Industries next."
            step["tool"], step["arg"] = "Search", "Quellmark Industries"
            step["action"] = "Search[Quellmark Industries]"
            step["observation"] = "Quellmark Industries is a Norwegian shipbuilding company founded in 1952."
    second = nested_cv(altered, n_folds=3, repeats=1, k=3, seed=2, select=True)
    assert second["per_fold"][0]["runs"] == fold0["runs"]
    for key in ("digest", "l2", "off"):
        assert second["per_fold"][0][key] == fold0[key]
    assert any(a["digest"] != b["digest"] for a, b in zip(first["per_fold"][1:], second["per_fold"][1:]))


def test_switching_a_family_off_drops_its_candidates_and_features_only() -> None:
    q = "Which band was formed first, Zorvath Kell or The Minnow Parade?"
    steps = [
        _step(
            "I need to search Zorvath Kell and The Minnow Parade.",
            "Search",
            "Zorvath Kel",
            "Could not find [Zorvath Kel]. Similar: ['Zorvath Kell', 'Kell (band)']",
        )
    ]
    tools, options = _ranker.candidates(q, steps)
    assert ("Search", "Kell (band)") in options and ("Search", "Zorvath Kell") in options
    kept_tools, kept = restrict_candidates(list(tools.items()), list(options.items()), ["search.similar"])
    kept_actions = dict(kept)
    assert ("Search", "Kell (band)") not in kept_actions  # only "Similar" proposed it
    assert ("Search", "Zorvath Kell") in kept_actions  # the question proposes it too
    assert not any(n.startswith(("S.sim.", "S.src.sim")) for f in kept_actions.values() for n in f)
    assert {t for t, _ in kept_tools} <= {a[0] for a in kept_actions}
    with pytest.raises(ValueError, match="unknown rule families"):
        ActionSpeculator(weights={}, off=("search.nothing",))
    spec = ActionSpeculator(weights=load_weights(), off=("search.similar",))
    assert ("Search", "Kell (band)") not in spec.guess(q, steps, k=50)


def test_eval_cv_command_reports_the_nested_estimate_beside_in_sample(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(RECORDED[:10]))
    args = ["eval", "hotpotqa", "--trajectories", str(path), "--cv", "3", "--repeat", "2", "--no-select"]
    assert cli([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folds"] == 3 and out["repeats"] == 2 and out["runs"] == 10 and out["questions"] == 10
    assert [r["seed"] for r in out["per_repeat"]] == [0, 1]
    assert out["topk_acc"]["mean"] == pytest.approx(
        statistics.mean(r["topk_acc"] for r in out["per_repeat"]), abs=1e-4
    )
    assert 0 <= out["in_sample"]["topk_acc"] <= 1 and 0 <= out["shipped_weights"]["topk_acc"] <= 1
    assert all(v in _ranker.L2_GRID for f in out["per_fold"] for v in f["l2"].values())
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "nested 3-fold CV grouped by question, 2 repeats: top-3" in text and "in-sample" in text


def test_shipped_weights_are_what_the_fit_script_produces() -> None:
    shipped = json.loads(Path("langgraph_speculative_graphs/hotpotqa/data/action_weights.json").read_text())
    _, fitted = in_sample(RECORDED, shipped["k"], shipped["seed"])
    assert fitted.l2 == shipped["l2"] and list(fitted.off) == shipped["off"]
    assert set(fitted.weights) == set(shipped["weights"])
    assert all(abs(fitted.weights[n] - w) < 1e-3 for n, w in shipped["weights"].items())
    assert load_model() == (pytest.approx(shipped["weights"]), tuple(shipped["off"]))
    assert SPECULATOR.off == tuple(shipped["off"])


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


def test_a_comparison_question_is_finished_only_in_its_own_form() -> None:
    """A yes/no question is answered yes or no, an either/or question by one of its sides: the other
    Finish candidates (names and dates of the page) are not proposed for them."""
    page = "Hadley Crane (born 4 May 1961) is an English novelist from Leeds."
    steps = [_step("I need to search Hadley Crane.", "Search", "Hadley Crane", page)]
    _, options = _ranker.candidates("Are Lirien Vosk and Hadley Crane both painters?", steps)
    assert {a for a in options if a[0] == "Finish"} == {("Finish", "yes"), ("Finish", "no")}
    _, options = _ranker.candidates("Who was born first, Lirien Vosk or Hadley Crane?", steps)
    finish = {a[1] for a in options if a[0] == "Finish"}
    assert {"Lirien Vosk", "Hadley Crane"} <= finish <= {"Lirien Vosk", "Hadley Crane", "yes", "no"}
    _, options = _ranker.candidates("Where was Hadley Crane born?", steps)
    assert ("Finish", "Leeds") in options  # an open question keeps the page's names


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
    assert out["steps"] == len(_ChatStub.run["steps"]) and out["rows"]["chat"]["top1_acc"] == 1.0
    assert out["top1_acc"] == out["rows"]["combined"]["top1_acc"] == 1.0  # the chat model's first guess leads
    assert "chat model openai:gpt-4o-mini" in out["speculator"]
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
