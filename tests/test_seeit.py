"""Issue 31: a picture of any run, failures that speak, reports that are never empty."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langgraph_speculative import SpeculationPolicy, SpeculationReport, speculate
from langgraph_speculative._cli import main
from langgraph_speculative._timeline import layout


class S(TypedDict, total=False):
    country: str
    fact: str
    answer: str


async def plan(state: S) -> dict[str, Any]:  # slow enough for a branch to start under load
    await asyncio.sleep(0.4)
    return {"country": "japan"}


async def lookup(state: S) -> dict[str, Any]:
    await asyncio.sleep(0.1)
    return {"fact": f"capital of {state['country']}"}


async def answer(state: S) -> dict[str, Any]:
    await asyncio.sleep(0.1)
    return {"answer": state["fact"]}


def sync_plan(state: S) -> dict[str, Any]:
    time.sleep(0.05)
    return {"country": "japan"}


def sync_lookup(state: S) -> dict[str, Any]:
    return {"fact": f"capital of {state['country']}"}


def sync_answer(state: S) -> dict[str, Any]:
    return {"answer": state["fact"]}


def _builder(asynchronous: bool = True) -> StateGraph:  # type: ignore[type-arg]
    b = StateGraph(S)
    if asynchronous:
        b.add_node("plan", plan)
        b.add_node("lookup", lookup)
        b.add_node("answer", answer)
    else:
        b.add_node("plan", sync_plan)
        b.add_node("lookup", sync_lookup)
        b.add_node("answer", sync_answer)
    b.add_edge(START, "plan")
    b.add_edge("plan", "lookup")
    b.add_edge("lookup", "answer")
    b.add_edge("answer", END)
    return b


async def right_and_wrong(state: S) -> list[dict[str, Any]]:
    await asyncio.sleep(0.02)
    return [{"country": "france"}, {"country": "japan"}]


def _cfg() -> Any:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def _run(graph: Any, asynchronous: bool, **kw: Any) -> Any:
    if asynchronous:
        return asyncio.run(graph.ainvoke({}, _cfg(), **kw))
    return graph.invoke({}, _cfg(), **kw)


# ---------------------------------------------------------------------- the timeline


def test_the_timeline_lays_out_main_run_speculator_branches_and_outcomes() -> None:
    graph = speculate(_builder(), {"plan": right_and_wrong}, policy=SpeculationPolicy(k=2)).compile(
        checkpointer=InMemorySaver()
    )
    _run(graph, True)
    report = graph.last_report
    assert report.hits == 1 and report.adopted == 2
    assert [s["node"] for s in report.spans] == ["plan", "lookup", "answer"]  # main-run calls, in order
    assert all(0 <= s["start"] <= s["end"] <= report.wall_time_s + 0.01 for s in report.spans)
    pic = layout(report)
    assert pic.lanes[:2] == ["plan (main run)", "plan: speculator"]
    assert {"lookup (main run)", "answer (main run)"} <= set(pic.lanes)
    assert {"plan: branch of guess #1", "plan: branch of guess #2"} <= set(pic.lanes)
    kinds = {(b.lane, b.kind) for b in pic.bars}
    assert ("plan (main run)", "actor") in kinds
    assert ("lookup (main run)", "served") in kinds  # adopted: no actor call on the main run
    assert ("plan: speculator", "speculator") in kinds
    assert ("plan: branch of guess #2", "branch_hit") in kinds  # japan, the second guess, was right
    assert ("plan: branch of guess #1", "branch_lost") in kinds
    adopted = [b for b in pic.bars if b.kind == "adopted"]
    assert sorted(b.label for b in adopted) == ["answer", "lookup"]
    assert all(b.lane == "plan: branch of guess #2" for b in adopted)
    assert [(lane, kind) for _, lane, kind in pic.marks] == [("plan (main run)", "hit")]
    hit_t = pic.marks[0][0]
    plan_span = report.spans[0]
    assert plan_span["start"] < hit_t <= plan_span["end"] + 0.01  # marked where the actor answered
    # lanes never hold overlapping bars (a branch's early calls sit inside it)
    for lane in pic.lanes:
        tops = sorted((b.start, b.end) for b in pic.bars if b.lane == lane and b.kind.startswith("branch"))
        assert all(a[1] <= b[0] + 1e-6 for a, b in zip(tops, tops[1:]))


def test_a_saved_report_draws_the_same_timeline(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    graph = speculate(_builder(), {"plan": right_and_wrong}).compile(checkpointer=InMemorySaver())
    _run(graph, True)
    report = graph.last_report
    again = SpeculationReport.from_json(report.to_json())
    assert again.summary() == report.summary() and again.events == report.events
    assert again.spans == report.spans and again.branches == report.branches
    assert layout(again) == layout(report)
    out = report.timeline(tmp_path / "run.png", plain_s=0.4)
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = tmp_path / "run.json"
    saved.write_text(report.to_json())
    assert main(["timeline", str(saved), "--plain-s", "0.4"]) == 0
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_the_timeline_command_says_what_is_wrong_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "x.json"
    junk.write_text(json.dumps({"hits": 1}))
    assert main(["timeline", str(junk)]) == 2
    assert main(["timeline", str(tmp_path / "missing.json")]) == 2
    good = tmp_path / "r.json"
    good.write_text(SpeculationReport(runs=1).to_json())
    assert main(["timeline", str(good), "-o", str(tmp_path / "no" / "such" / "dir.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("langgraph-speculative timeline: error: ") for line in err)
    assert "not a speculation report" in err[0] and "no such file" in err[1] and "does not exist" in err[2]


def test_a_merged_report_is_not_drawn_and_matplotlib_missing_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = speculate(_builder(), {"plan": right_and_wrong}).compile(checkpointer=InMemorySaver())
    _run(graph, True)
    _run(graph, True)
    with pytest.raises(ValueError, match="merges 2 runs.*graph.last_report"):
        graph.report.timeline(str(tmp_path / "x.png"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"needs matplotlib: pip install 'langgraph-speculative\[plot\]'"):
        graph.last_report.timeline(str(tmp_path / "x.png"))


def test_the_middleware_report_draws_prefetches_and_the_model_call() -> None:
    report = SpeculationReport(runs=1, wall_time_s=1.0)
    one, two = {"name": "find", "args": {"q": 1}}, {"name": "find", "args": {"q": 2}}
    for ev in [  # a create_agent run's events as SpeculativeToolCalls records them
        {"event": "guesses", "node": "model", "speculator_s": 0.05, "t": 0.06},
        {"event": "launch", "node": "model", "call": one, "rank": 1, "t": 0.07},
        {"event": "launch", "node": "model", "call": two, "rank": 2, "t": 0.07},
        {"event": "cancelled", "node": "model", "call": two, "rank": 2, "reason": "miss", "t": 0.4},
        {"event": "hit", "node": "model", "t": 0.4},
        {"event": "adopted", "node": "model", "call": one, "hidden_s": 0.2, "t": 0.45},
    ]:
        report.add_event({"type": "speculation", **ev})
    pic = layout(report)
    assert pic.lanes == [
        "model (main run)", "model: speculator", "model: prefetch of guess #1", "model: prefetch of guess #2"
    ]  # fmt: skip
    bars = {(b.lane, b.kind): b for b in pic.bars}
    model = bars[("model (main run)", "actor")]
    assert model.start == pytest.approx(0.01) and model.end == pytest.approx(0.4)  # speculator start to reply
    assert bars[("model: prefetch of guess #1", "adopted")].end == pytest.approx(0.27)  # 0.07 + hidden 0.2
    assert bars[("model: prefetch of guess #2", "cancelled")].end == pytest.approx(0.4)


# ---------------------------------------------------------------------- failures that speak


def raises(state: S) -> list[dict[str, Any]]:
    raise RuntimeError("the small model is down")


def text(state: S) -> Any:
    return "japan"


def message(state: S) -> Any:
    return AIMessage(content="japan")


def nothing(state: S) -> Any:
    return []


@pytest.mark.parametrize(
    ("speculator", "says"),
    [
        (raises, "it raised.*the small model is down"),
        (text, "not a guess.*returned str"),
        (message, "not a guess.*AIMessage.*\\[\\{'messages': \\[message\\]\\}\\]"),
        (nothing, "none of its recent answers held a guess"),
    ],
)
@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_speculator_that_gives_nothing_usable_warns_once_at_the_users_call(
    speculator: Any, says: str, asynchronous: bool
) -> None:
    graph = speculate(_builder(asynchronous), {"plan": speculator}).compile(checkpointer=InMemorySaver())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):  # more runs, no second warning (a speculator that abstains: from its 3rd answer)
            _run(graph, asynchronous)
    ours = [w for w in caught if "speculator of node" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert ours[0].category is UserWarning
    assert "node 'plan'" in str(ours[0].message)
    import re

    assert re.search(says, str(ours[0].message)), str(ours[0].message)
    assert ours[0].filename == __file__  # the user's call, not a library file
    assert graph.last_report.summary()["speculator_errors"] == (0 if speculator is nothing else 1)


def test_a_speculator_problem_noted_by_the_session_is_warned_once() -> None:
    from langgraph_speculative._report import warn_problems

    report = SpeculationReport()
    report.speculator_problem("plan", "raised", "RuntimeError: down")
    report.speculator_problem("plan", "raised", "RuntimeError: again")  # the first detail is kept
    warned: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_problems(report, warned)
        warn_problems(report, warned)
    assert len(caught) == 1 and "RuntimeError: down" in str(caught[0].message)
    assert caught[0].filename == __file__ and warned == {"plan:raised"}


# ---------------------------------------------------------------------- reports that are never empty


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"durability": "exit"}, 'durability="exit"'),
        ({"interrupt_before": "*"}, 'interrupt_before="*"'),
    ],
)
@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_refused_run_has_a_report_that_says_why_and_counts_its_calls(
    kwargs: dict[str, Any], reason: str, asynchronous: bool
) -> None:
    graph = speculate(_builder(asynchronous), {"plan": right_and_wrong}).compile(checkpointer=InMemorySaver())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # durability="exit" says it once
        _run(graph, asynchronous, **kwargs)
    report = graph.last_report
    assert isinstance(report, SpeculationReport)
    assert reason in report.refused
    summary = report.summary()
    assert summary["runs"] == 1 and summary["refused_runs"] == 1 and reason in summary["refused"]
    assert [e["event"] for e in report.events] == ["refused"]
    if "durability" in kwargs:  # the run went to its end: plan (the speculative node) was called once
        assert report.calls == 1 and [s["node"] for s in report.spans] == ["plan", "lookup", "answer"]
    assert graph.report.refused_runs == 1
    assert f"this run did not speculate: {report.refused}" == layout(report).note


def test_a_run_without_a_thread_id_has_a_report() -> None:
    graph = speculate(_builder(False), {"plan": right_and_wrong}).compile(checkpointer=InMemorySaver())
    with pytest.raises(ValueError):
        graph.invoke({})  # LangGraph says what is missing
    assert "thread_id" in graph.last_report.refused


def test_a_merged_report_counts_the_calls_of_shed_runs() -> None:
    from langgraph_speculative import _budget, set_process_budget

    graph = speculate(_builder(), {"plan": right_and_wrong}).compile(checkpointer=InMemorySaver())
    _run(graph, True)
    budget = _budget.process_budget()
    limit, busy = budget.limit, budget.busy
    set_process_budget(busy=1e-9)
    budget.shed_run()  # another run is active: the process is busy
    try:
        time.sleep(0.01)
        _run(graph, True)
    finally:
        budget.run_ended()
        set_process_budget(limit, busy=busy)
    shed = graph.last_report
    assert shed.shed_runs == 1 and shed.calls == 1 and shed.shed == 1
    assert [s["node"] for s in shed.spans] == ["plan", "lookup", "answer"]
    assert graph.report.runs == 2 and graph.report.calls == 2  # every actor call of plan made


def test_with_no_user_code_on_the_stack_the_warning_points_at_the_speculator() -> None:
    import threading

    from langgraph_speculative._report import warn_problems

    report = SpeculationReport()
    report.speculator_problem("plan", "raised", "RuntimeError: down")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = threading.Thread(target=warn_problems, args=(report, set(), None, lambda: {"plan": raises}))
        worker.start()
        worker.join()
    assert len(caught) == 1 and caught[0].filename == __file__
    assert caught[0].lineno == raises.__code__.co_firstlineno


def test_a_create_agent_run_with_the_middleware_draws_its_prefetches() -> None:
    pytest.importorskip("langchain.agents")
    from .test_agents import speculative

    _, _, mw = speculative("ainvoke")
    report = mw.last_report
    assert report is not None and report.adopted == 4
    pic = layout(report)
    assert pic.lanes[:2] == ["model (main run)", "model: speculator"]
    adopted = [b for b in pic.bars if b.kind == "adopted"]
    assert len(adopted) == 4 and all(b.lane.startswith("model: prefetch of guess #") for b in adopted)
    assert sorted({b.label for b in adopted}) == ["find_user", "get_order", "get_user"]
    assert [k for _, _, k in pic.marks] == ["hit"] * 4


def test_an_early_call_never_adopted_is_drawn_as_long_as_it_ran() -> None:
    report = SpeculationReport(runs=1, wall_time_s=1.0)
    report.node("lookup").wasted, report.node("lookup").wasted_s = 2, 0.5  # a mean of 0.25 s
    for ev in [
        {"event": "branch", "node": "plan", "thread": "b1", "rank": 1, "t": 0.1},
        {"event": "launch", "node": "lookup", "key": "k1", "branch": "b1", "t": 0.1},
        {"event": "branch", "node": "plan", "thread": "b2", "rank": 2, "t": 0.1},
        {"event": "launch", "node": "lookup", "key": "k2", "branch": "b2", "t": 0.1},
        {"event": "wasted", "node": "lookup", "key": "k2", "branch": "b2", "ran_s": 0.05, "t": 0.9},
        {"event": "cancelled", "node": "plan", "thread": "b1", "reason": "miss", "t": 0.9},
        {"event": "cancelled", "node": "plan", "thread": "b2", "reason": "closed", "t": 0.9},
    ]:
        report.add_event({"type": "speculation", **ev})
    calls = {b.owner: b for b in layout(report).bars if b.label == "lookup"}
    assert calls["b1"].kind == "cancelled" and calls["b1"].end == pytest.approx(0.35)  # the node's mean
    assert calls["b2"].kind == "wasted" and calls["b2"].end == pytest.approx(0.15)  # its own `ran_s`
