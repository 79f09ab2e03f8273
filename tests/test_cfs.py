"""Lossy mode (LossyNode) and the scheduler-tuning graph: parsing, last write wins, restore, backends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_speculative._cli import main as cli
from langgraph_speculative.lossy import LossyNode
from langgraph_speculative_graphs.cfs._backends import SimBackend, SliceBackend, fit_event_ms, make_backend
from langgraph_speculative_graphs.cfs._sched import get_slice_ns, supported
from langgraph_speculative_graphs.cfs._tuners import CarefulSearch, LocalStep, parse_config


def test_parse_config_clamps_and_rejects_junk() -> None:
    assert parse_config('Config: {"slice_ms": 2.5}', 0.1, 30) == 2.5
    assert parse_config('thinking...\nConfig: {"slice_ms": 500}', 0.1, 30) == 30
    assert parse_config('Config: {"min_granularity_ms": -3}', 0.1, 30) == 0.1
    for junk in (
        "",
        "Config: 3",
        'Config: {"slice_ms": "fast"}',
        'Config: {"other": 1}',
        'Config: {"slice_ms": NaN}',
    ):
        assert parse_config(junk, 0.1, 30) is None


def test_offline_tuners_stay_in_range() -> None:
    step, careful = LocalStep(0.1, 30), CarefulSearch(0.1, 30, deliberation_s=0)
    assert step({"history": [{"setting": 0.1, "p95": 50.0}]})["setting"] == 0.1
    hist = [{"setting": s, "p95": p} for s, p in [(30, 100.0), (15, 60.0), (7.5, 40.0), (3.75, 29.0)]]
    assert step({"history": hist})["setting"] == pytest.approx(1.875)
    assert careful.decide(hist) == 3.75
    assert careful.decide(hist[:1]) == pytest.approx((0.1 * 30) ** 0.5)  # too little to compare: probe


class S(TypedDict):
    value: int
    by: str
    window: int


def _loop(node: LossyNode, windows: int) -> Any:
    b = StateGraph(S)
    b.add_node("tune", node)

    async def tick(state: S) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"window": state["window"] + 1}

    b.add_node("tick", tick)
    b.add_edge(START, "tune")
    b.add_edge("tune", "tick")
    b.add_conditional_edges("tick", lambda s: "tune" if s["window"] < windows else END, ["tune", END])
    return b.compile()


def test_last_write_wins_and_every_write_is_an_event() -> None:
    async def actor(state: S) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"value": 1000 + state["window"], "by": "actor"}

    def speculator(state: S) -> dict[str, Any]:
        return {"value": state["value"] + 1, "by": "speculator"}

    async def go() -> tuple[list[Any], LossyNode]:
        node = LossyNode(actor, speculator=speculator)
        seen = []
        async with node:
            async for mode, chunk in _loop(node, 12).astream(
                {"value": 0, "by": "-", "window": 0}, stream_mode=["updates", "custom"]
            ):
                seen.append((mode, chunk))
        return seen, node

    seen, node = asyncio.run(go())
    updates = [c["tune"] for m, c in seen if m == "updates" and "tune" in c]
    assert updates[0] == {"value": 1, "by": "speculator"}  # the speculator acts at once
    actor_windows = [u for u in updates if u.get("by") == "actor"]
    assert actor_windows, "the actor's decision arrived"
    for u in actor_windows:  # same window as a speculator write: the actor's overwrites it
        assert u["value"] >= 1000
    applied = [e for e in node.report.events if e["event"] == "lossy_applied"]
    assert [e["source"] for e in applied].count("actor") == len(actor_windows)
    assert any(m == "custom" and c.get("event") == "lossy_applied" for m, c in seen)
    assert sum(e["event"] == "lossy_actor_cancelled" for e in node.report.events) <= 1
    assert node._task is None  # closed: nothing left running


def test_bad_speculators_cost_an_event_not_an_error() -> None:
    def junk(state: S) -> Any:
        return [1, 2]

    def boom(state: S) -> Any:
        raise RuntimeError("boom")

    for spec, kind in ((junk, "lossy_junk"), (boom, "lossy_speculator_error")):
        node = LossyNode(None, speculator=spec)
        out = asyncio.run(_loop(node, 3).ainvoke({"value": 5, "by": "-", "window": 0}))
        assert out["value"] == 5
        assert any(e["event"] == kind for e in node.report.events)
    with pytest.raises(ValueError, match="needs an actor, a speculator, or both"):
        LossyNode()
    with pytest.raises(TypeError, match="must be a function .sync or async. or a Runnable"):
        LossyNode(3)


def test_sync_twin_and_close_leave_no_thread() -> None:
    import threading

    def actor(state: S) -> dict[str, Any]:
        time.sleep(0.03)
        return {"value": -1, "by": "actor"}

    with LossyNode(actor, speculator=lambda s: {"value": s["value"] + 1, "by": "speculator"}) as node:
        state: dict[str, Any] = {"value": 0, "by": "-", "window": 0}
        for _ in range(6):
            state.update(node.invoke(state))
            time.sleep(0.02)
    assert any(e["event"] == "lossy_applied" and e["source"] == "actor" for e in node.report.events)
    assert not [t for t in threading.enumerate() if t.name.startswith("langgraph-speculative-lossy")]


def test_sim_backend_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    png = tmp_path / "cfs.png"
    args = [
        "cfs",
        "--backend",
        "sim",
        "--duration",
        "24",
        "--perturb",
        "--speed",
        "20",
        "--json",
        "--plot",
        str(png),
    ]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("actor_only", "speculator_only", "actor_speculator"):
        for key in ("mean_p95_ms", "final_p95_ms", "final_setting", "convergence_s"):
            assert out[name][key] is not None
        assert 0.1 <= out[name]["final_setting"] <= 30
    assert out["ratio_spec_vs_actor"] == pytest.approx(
        out["actor_speculator"]["mean_p95_ms"] / out["actor_only"]["mean_p95_ms"], abs=1e-3
    )
    assert png.stat().st_size > 10_000
    assert SimBackend().setting == 3.0


def test_unusable_backend_says_why_in_one_line() -> None:
    with pytest.raises(ValueError, match="unknown backend 'nope'; use one of slice, debugfs, sim"):
        make_backend("nope")
    if not os.path.exists("/sys/kernel/debug/sched/base_slice_ns"):
        with pytest.raises(ValueError, match="use --backend slice"):
            make_backend("debugfs")


needs_slice = pytest.mark.skipif(supported() is not None, reason=f"per-task slices unusable: {supported()}")

RESTORE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from langgraph_speculative_graphs.cfs._backends import SliceBackend
    pid, mode = int(sys.argv[1]), sys.argv[2]
    with SliceBackend(pids=[pid]) as knob:
        knob.apply(17.0)
        print("applied", flush=True)
        if mode == "raise":
            raise RuntimeError("boom")
        time.sleep(30)
    """
)


@needs_slice
@pytest.mark.parametrize("mode", ["raise", "sigint"])
def test_slice_knob_restored_after_error_and_sigint(mode: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        before = get_slice_ns(child.pid)
        tuner = subprocess.Popen(
            [sys.executable, "-c", RESTORE_SCRIPT, str(child.pid), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=os.getcwd(),
        )
        assert tuner.stdout is not None
        assert tuner.stdout.readline().strip() == "applied"
        if mode == "sigint":
            assert get_slice_ns(child.pid) == 17_000_000
            tuner.send_signal(signal.SIGINT)
        tuner.wait(10)
        assert tuner.returncode != 0
        assert get_slice_ns(child.pid) == before  # restored on the way out
    finally:
        child.kill()
        child.wait()


@needs_slice
@pytest.mark.skipif(SliceBackend.unusable() is not None, reason=str(SliceBackend.unusable()))
def test_slice_backend_on_a_real_short_sysbench_run(record_property: Any) -> None:
    """The knob sets the real threads' slice and the real p95 is measured at each setting. How
    far the p95 moves is reported, not asserted (timing on a shared machine): `benchmarks/`."""

    async def go() -> list[float | None]:
        with SliceBackend() as knob:
            tids = knob.workload.threads() if knob.workload else []
            assert len(tids) >= 4
            knob.apply(30.0)
            assert all(get_slice_ns(t) == 30_000_000 for t in tids)
            slow = await knob.measure(1.2)
            knob.apply(1.0)
            await knob.measure(1.0)
            fast = await knob.measure(1.2)
            return [slow, fast]

    slow, fast = asyncio.run(go())
    assert slow is not None and fast is not None and slow > 0 and fast > 0
    record_property("p95_ms_slice_30ms_vs_1ms", (slow, fast))


def test_a_speculator_past_its_timeout_is_skipped_with_an_event() -> None:
    from langgraph_speculative import SpeculationPolicy

    async def slow(state: S) -> dict[str, Any]:
        await asyncio.sleep(1.0)
        return {"value": 99, "by": "speculator"}

    node = LossyNode(None, speculator=slow, policy=SpeculationPolicy(speculator_timeout=0.05))
    out = asyncio.run(_loop(node, 2).ainvoke({"value": 5, "by": "-", "window": 0}))
    assert out["value"] == 5 and out["by"] != "speculator"  # the window did not wait for it
    assert sum(e["event"] == "lossy_speculator_timeout" for e in node.report.events) == 2


def _cfs_args(*extra: str) -> Any:
    import argparse

    from langgraph_speculative_graphs.cfs._run import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["cfs", "--backend", "sim", "--duration", "4", "--speed", "50", *extra])


def test_cfs_writes_no_plot_unless_asked(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(["cfs", "--backend", "sim", "--duration", "3", "--speed", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "plot" not in out and list(tmp_path.iterdir()) == []


def test_cfs_starts_from_a_bad_setting_by_default() -> None:
    from langgraph_speculative_graphs.cfs._run import compare

    out, histories = compare(_cfs_args(), lambda line: None)
    assert [h["history"][0]["setting"] for h in histories.values()] == [30.0, 30.0, 30.0]
    assert out["start"] == "the range's top (30 ms)" and out["sim_event_ms"] == 3.7
    out, histories = compare(_cfs_args("--no-perturb"), lambda line: None)
    assert [h["history"][0]["setting"] for h in histories.values()] == [3.0, 3.0, 3.0]
    assert out["start"] == "3 ms (near the optimum)"


def test_the_plot_says_where_it_started_and_labels_the_log_axis_plainly() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from langgraph_speculative_graphs.cfs._run import slice_axis, title

    assert "from a bad setting (30 ms)" in title("slice", True, 0.6)
    unperturbed = title("sim", False, None)
    assert "from 3 ms (near the optimum)" in unperturbed and "SIMULATED" in unperturbed
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.1, 30])
    slice_axis(ax, 0.1, 30)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert shown == ["0.1", "0.3", "1", "3", "10", "30"]
    plt.close(fig)


def test_the_sim_is_fitted_to_the_measured_plant() -> None:
    """The slice backend's p95 (sysbench cpu, 4 threads, max-prime 60000) on this repository's
    machine at four slices, and the sim's p95 there (noise off): within 6%."""
    sim = SimBackend(noise=0)
    for slice_ms, real_p95 in ((1.875, 14.73), (7.5, 26.68), (15.0, 51.02), (30.0, 99.33)):
        assert sim.p95(slice_ms) == pytest.approx(real_p95, rel=0.06)

    async def fit() -> float | None:
        with SimBackend(noise=0, speed=100) as knob:
            return await fit_event_ms(knob, windows=3)

    assert asyncio.run(fit()) == pytest.approx(3.7, rel=0.05)  # what the fit recovers from a plant
