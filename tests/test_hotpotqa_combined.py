"""HotpotQA: a chat model's next-action guesses combined with the rules' ranking.

The chat model is the real `langchain-openai` client (through `init_chat_model`) talking HTTP to
`tests/openai_server.OpenAIServer` on 127.0.0.1, which answers from a script: no network, no key.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_speculative._cli import main as cli
from langgraph_speculative_graphs._common import SpecError, run_async
from langgraph_speculative_graphs.hotpotqa import (
    ActionSpeculator,
    CombinedActionSpeculator,
    ReplayReAct,
    initial_state,
    make_graph,
)
from langgraph_speculative_graphs.hotpotqa._combined import merge
from langgraph_speculative_graphs.hotpotqa._eval import load_runs
from langgraph_speculative_graphs.hotpotqa._wiki import LocalWiki, RecordedWiki

from .openai_server import OpenAIServer, Request

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

RUNS = load_runs("dev")
PICKED = [RUNS[1], RUNS[3], RUNS[5]]  # 12 steps: the rules miss 4 of them (top-3)
RULES = ActionSpeculator()
WRONG = ["Search[Nowhere Land]", "Lookup[nothing here]", "Finish[maybe]"]


def _spec(server: OpenAIServer, **extra: str) -> str:
    options = ",".join(f"{k}={v}" for k, v in extra.items())
    return f"openai:small,base_url={server.base_url},api_key=test,max_retries=0" + (
        f",{options}" if options else ""
    )


def _where(request: Request, runs: list[dict[str, Any]]) -> tuple[int, int]:
    """Which run (by its question) and which step the request's scratchpad is at."""
    prompt = request.last_user
    run = next(i for i, r in enumerate(runs) if f"Question: {r['question']}\n" in prompt)
    return run, prompt.count("\nObservation ")


def _text(action: tuple[str, str]) -> str:
    return f"{action[0]}[{action[1]}]"


def _fused(chat: list[tuple[str, str]], rules: list[tuple[str, str]], k: int) -> list[tuple[str, str]]:
    """The merge rule written another way: one sort key per action (agreed ones by rank sum, then
    the others by rank, the chat model's first on a tie)."""
    rc = {a: i for i, a in reversed(list(enumerate(chat)))}
    rr = {a: i for i, a in reversed(list(enumerate(rules)))}

    def key(a: tuple[str, str]) -> tuple[int, int, int]:
        if a in rc and a in rr:
            return (0, rc[a] + rr[a], rc[a])
        return (1, rc[a], 0) if a in rc else (1, rr[a], 1)

    return sorted(set(rc) | set(rr), key=key)[:k]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(latency={"small": 0.0}) as s:
        yield s


def test_merge_puts_agreed_actions_first_then_alternates_chat_and_rules() -> None:
    a, b, c, d, e = (("Search", x) for x in "ABCDE")
    assert merge([a, b, c], [d, c, a], 5) == [a, c, d, b]  # a: ranks 0+2, c: 2+1; then d (0), b (1)
    assert merge([a, b, c], [d, c, a], 3) == [a, c, d]
    assert merge([a, b], [c, b], 3) == [b, a, c]  # b agreed (rank sum 2) outranks both firsts
    assert merge([a, b], [c, d], 4) == [a, c, b, d]  # nothing agreed: chat, rules, chat, rules
    assert merge([b, a], [a, b], 2) == [b, a]  # equal rank sums: the chat model's order
    assert merge([], [c, d, e], 3) == [c, d, e]  # no chat guesses: the rules' list
    assert merge([("Search", " A ")], [("Search", "A"), d], 3) == [a, d]  # arguments trimmed
    for chat, rules in (([a, b, c], [d, c, a]), ([e, a], [a, e, b]), ([a, b, c], [c, d, e])):
        assert merge(chat, rules, 5) == _fused(chat, rules, 5)


def test_combined_guess_order_through_a_real_openai_server(server: OpenAIServer) -> None:
    run = RUNS[3]
    q, steps = run["question"], run["steps"][:1]
    r = RULES.guess(q, steps, 5)
    assert len(r) == 5 and not {_text(x) for x in r} & set(WRONG)
    # the chat model's 2nd guess is the rules' 2nd, written with spaces around its argument
    server.script = lambda req: f"1. {WRONG[0]}\n2. {r[1][0]}[ {r[1][1]} ]\n3. {WRONG[2]}"
    spec = CombinedActionSpeculator(_spec(server), RULES)
    chat = [("Search", "Nowhere Land"), r[1], ("Finish", "maybe")]
    assert spec.guess(q, steps) == [r[1], chat[0], r[0]]
    assert spec.guess(q, steps, 5) == [r[1], chat[0], r[0], chat[2], r[2]]
    assert run_async(spec.aguess(q, steps, 5)) == [r[1], chat[0], r[0], chat[2], r[2]]
    assert server.count("small") == 3 and spec.failures == 0  # one chat call per guess
    assert "write the 5 actions" in server.requests[-1].system and q in server.requests[-1].last_user
    many = run_async(spec.aguess_many([(q, steps), (q, steps)], 3))
    assert many == [[r[1], chat[0], r[0]]] * 2 and server.count("small") == 5


def test_a_failing_or_unparseable_chat_model_falls_back_to_the_rules(server: OpenAIServer) -> None:
    run = RUNS[1]
    q, steps = run["question"], run["steps"][:2]
    rules = RULES.guess(q, steps, 3)

    def broken(request: Request) -> str:
        raise RuntimeError("the model is down")

    server.script = broken
    spec = CombinedActionSpeculator(_spec(server), RULES)
    assert spec.guess(q, steps) == rules
    assert run_async(spec.aguess(q, steps)) == rules
    assert spec.failures == 2 and "the model is down" in spec.errors[0]  # the server's 500, reported
    assert spec.first_error == spec.errors[0]
    assert server.count("small") == 2 and len(server.errors) == 2

    server.script = lambda req: "I cannot tell what the agent does next."
    assert spec.guess(q, steps) == rules and run_async(spec.aguess(q, steps)) == rules
    assert spec.failures == 2  # a reply without an action is no error, just no guesses

    with socket.socket() as free:  # a port nothing listens on: the client's connection error
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    gone = CombinedActionSpeculator(
        f"openai:small,base_url=http://127.0.0.1:{port}/v1,api_key=t,max_retries=0"
    )
    assert run_async(gone.aguess(q, steps)) == rules and "Connection" in str(gone.first_error)


def _mode(run: int, step: int) -> int:
    """What the script does at a step: 0 the truth first, 1 the truth third, 2 only wrong actions,
    3 a server error, 4 a reply with no action (on PICKED it covers every case of what each adds)."""
    return (run + 2 * step) % 5


def _script_for(runs: list[dict[str, Any]]) -> tuple[Any, dict[tuple[int, int], list[tuple[str, str]]]]:
    """A script whose reply depends on the step: the truth first, the truth third, only wrong
    actions, a server error, or no action at all; and the chat list each step should give."""
    expected: dict[tuple[int, int], list[tuple[str, str]]] = {}
    replies: dict[tuple[int, int], str | None] = {}
    wrong = [("Search", "Nowhere Land"), ("Lookup", "nothing here"), ("Finish", "maybe")]
    for i, run in enumerate(runs):
        for j, step in enumerate(run["steps"]):
            truth = (str(step["tool"]).strip(), str(step["arg"]).strip())
            mode = _mode(i, j)
            chat = [truth, *wrong[:2]] if mode == 0 else [*wrong[:2], truth] if mode == 1 else wrong
            chat = [] if mode in (3, 4) else chat
            expected[i, j] = chat
            replies[i, j] = None if mode == 3 else "Not sure." if mode == 4 else "\n".join(map(_text, chat))

    def script(request: Request) -> str:
        reply = replies[_where(request, runs)]
        if reply is None:
            raise RuntimeError("overloaded")
        return reply

    return script, expected


def test_eval_reports_three_rows_and_what_each_adds_on_recorded_runs(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(PICKED))
    runs = load_runs(str(path))
    server.script, chat_lists = _script_for(runs)
    n_steps = sum(len(r["steps"]) for r in runs)

    # what the rows and counts must be, computed here step by step
    adds = {"chat_only": 0, "rules_only": 0, "both": 0, "neither": 0}
    hits: dict[str, list[int]] = {"rules": [0, 0], "chat": [0, 0], "combined": [0, 0]}
    for i, run in enumerate(runs):
        for j, step in enumerate(run["steps"]):
            truth = (str(step["tool"]).strip(), str(step["arg"]).strip())
            rules = RULES.guess(run["question"], run["steps"][:j], 3)
            chat = chat_lists[i, j]
            lists = {"rules": rules, "chat": chat, "combined": _fused(chat, rules, 3)}
            for name, g in lists.items():
                hits[name][0] += bool(g) and g[0] == truth
                hits[name][1] += truth in g[:3]
            in_c, in_r = truth in chat, truth in rules
            adds[
                "both" if in_c and in_r else "chat_only" if in_c else "rules_only" if in_r else "neither"
            ] += 1
    assert adds["chat_only"] and adds["rules_only"] and adds["both"] and adds["neither"]  # a real test

    assert (
        cli(["eval", "hotpotqa", "--trajectories", str(path), "--speculator", _spec(server), "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert server.count("small") == n_steps  # one chat call per step serves both chat rows
    assert out["runs"] == 3 and out["steps"] == n_steps and out["k"] == 3
    assert out["adds"] == adds
    for name, (top1, top3) in hits.items():
        assert out["rows"][name]["top1_acc"] == round(top1 / n_steps, 4), name
        assert out["rows"][name]["topk_acc"] == round(top3 / n_steps, 4), name
    assert out["rows"]["rules"]["topk_acc"] == round((adds["both"] + adds["rules_only"]) / n_steps, 4)
    assert (out["top1_acc"], out["topk_acc"]) == (
        out["rows"]["combined"]["top1_acc"],
        out["rows"]["combined"]["topk_acc"],
    )
    assert sum(v["steps"] for v in out["per_tool"].values()) == n_steps
    errors = sum(_mode(i, j) == 3 for i, r in enumerate(runs) for j in range(len(r["steps"])))
    assert out["chat_errors"] == errors and out["chat_empty"] == sum(not c for c in chat_lists.values())
    assert "overloaded" in out["first_chat_error"]
    assert "api_key=***" in out["speculator"] and "test" not in out["speculator"].split("api_key")[1]

    server.reset()
    assert cli(["eval", "hotpotqa", "--trajectories", str(path), "--speculator", _spec(server)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith(f"3 runs, {n_steps} steps: rules, chat model openai:small")
    for name, label in (("rules", "rules alone"), ("chat", "chat alone"), ("combined", "combined")):
        row = next(ln for ln in lines if ln.strip().startswith(label))
        assert row.split()[len(label.split()) :][:2] == [
            f"{out['rows'][name]['top1_acc']:.2f}",
            f"{out['rows'][name]['topk_acc']:.2f}",
        ]
    assert (
        f"truth in the top-3 of the chat model only: {adds['chat_only']} steps, of the rules only: "
        f"{adds['rules_only']}, of both: {adds['both']}, of neither: {adds['neither']}"
    ) in text
    assert f"the chat model gave no action on {out['chat_empty']} steps ({errors} errors" in text


def test_eval_offline_output_is_unchanged_by_the_combination(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["eval", "hotpotqa", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "runs",
        "steps",
        "k",
        "top1_acc",
        "topk_acc",
        "per_tool",
        "speculator_median_s",
        "speculator",
    }
    assert out["speculator"].startswith("offline") and out["steps"] == 184


def test_bad_chat_specs_are_one_line_errors_naming_the_culprit(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = ReplayReAct(steps=RUNS[0]["steps"], delay=0.0)
    with pytest.raises(SpecError, match=r"action_speculator 'openai:small,temperature'.*key=value"):
        make_graph(agent_model=agent, action_speculator="openai:small,temperature")
    with pytest.raises(
        SpecError, match=r"action_speculator 'ofline': not a known choice \(did you mean 'offline'"
    ):
        make_graph(agent_model=agent, action_speculator="ofline")

    assert cli(["eval", "hotpotqa", "--speculator", "openai:small,temperature"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "--speculator 'openai:small,temperature': option 'temperature' is not key=value" in err[0]
    )

    def broken(request: Request) -> str:
        raise RuntimeError("no such model")

    server.script = broken
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(PICKED[:1]))
    assert cli(["eval", "hotpotqa", "--trajectories", str(path), "--speculator", _spec(server)]) == 2
    out, err = capsys.readouterr()
    assert (
        out == ""
        and f"the chat model failed on all {len(PICKED[0]['steps'])} steps" in err
        and "no such model" in err
    )
    assert "check the model name, its key and base_url" in err


def test_graph_combines_a_chat_spec_with_the_rules_and_survives_a_failing_model(server: OpenAIServer) -> None:
    """A chat-model spec gives the combination: with the model down, the rules' guesses still hit and
    the run is the plain run; `combine_actions=False` (the model alone) then hits nothing."""

    def broken(request: Request) -> str:
        raise RuntimeError("the model is down")

    server.script = broken
    run = RUNS[0]
    wiki = RecordedWiki(RUNS, LocalWiki())

    def play(speculative: bool, combine: bool = True) -> tuple[Any, Any, Any]:
        builder = make_graph(
            agent_model=ReplayReAct(steps=run["steps"], delay=0.2),
            backend=wiki,
            latency=0.05,
            speculative=speculative,
            action_speculator=_spec(server),
            combine_actions=combine,
        )
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "q"}}
        final = run_async(graph.ainvoke(initial_state(run["question"]), config))
        return final, [s.values for s in graph.get_state_history(config)], getattr(graph, "last_report", None)

    plain_final, plain_history, _ = play(False)
    final, history, report = play(True)
    assert final == plain_final and history == plain_history
    assert report.node("agent").hits >= 1 and report.node("agent").speculator_errors == 0
    assert server.count("small") >= 1  # the model was asked, and failed
    final, history, report = play(True, combine=False)
    assert final == plain_final and history == plain_history
    assert report.node("agent").hits == 0 and report.node("agent").speculator_errors >= 1
