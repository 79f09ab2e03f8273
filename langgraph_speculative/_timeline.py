"""A picture of one run: what the main run did, what the speculators guessed, what branches ran.

Everything is read from a `SpeculationReport` (its main-run `spans` and its events), so a report
saved as JSON draws the same picture later (`langgraph-speculative timeline REPORT.json`). Spans
the events do not give are derived from event pairs: a speculator call ends at its `guesses` event
and began `speculator_s` before; a branch lives from its `branch` event to its `cancelled` one (or
to its last adoption); an early call runs from its `launch` to its adoption (`hidden_s` after the
launch when it had finished) or to its branch's end. matplotlib is imported only here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ("ReportView", "draw", "layout")


class ReportView(Protocol):
    """What a picture reads of a `SpeculationReport` (this module is below `_report`, which
    imports it lazily to draw)."""

    @property
    def events(self) -> list[dict[str, Any]]: ...

    @property
    def spans(self) -> list[dict[str, Any]]: ...

    @property
    def runs(self) -> int: ...

    @property
    def wall_time_s(self) -> float: ...

    @property
    def nodes(self) -> dict[str, Any]: ...

    @property
    def branches(self) -> list[tuple[str, str]]: ...

    @property
    def refused(self) -> str | None: ...

    @property
    def shed_runs(self) -> int: ...

    @property
    def calls(self) -> int: ...

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    @property
    def adopted(self) -> int: ...

    @property
    def wasted(self) -> int: ...

    @property
    def speculator_errors(self) -> int: ...


PLOT_EXTRA = "pip install 'langgraph-speculative[plot]'"

COLORS = {
    "actor": "#1565c0",  # a main-run actor call
    "served": "#a5d6a7",  # a main-run call served by an early call (no actor call)
    "speculator": "#9e9e9e",
    "speculator_failed": "#e53935",
    "branch_hit": "#e8f5e9",
    "branch_lost": "#fdecea",
    "adopted": "#2e7d32",
    "cancelled": "#c62828",
    "wasted": "#ef6c00",
    "hit": "#2e7d32",
    "miss": "#c62828",
}
LABELS = {
    "actor": "actor call on the main run",
    "served": "main run served by an early call (no actor call)",
    "speculator": "speculator call",
    "speculator_failed": "speculator failed (raised, timed out, or junk)",
    "branch_hit": "branch of a right guess",
    "branch_lost": "branch of a wrong guess (cancelled)",
    "adopted": "early call adopted by the main run",
    "cancelled": "early call of a wrong guess (never adopted)",
    "wasted": "early call never adopted (the run ended or moved on)",
}


@dataclass
class Bar:
    """One bar of the picture."""

    lane: str
    start: float
    end: float
    kind: str
    label: str = ""
    owner: str = ""
    """The branch that launched it (an early call), or the branch's own id (a branch)."""
    children: list[Bar] = field(default_factory=list)
    """The early calls a branch's bar holds (drawn on its lane)."""


@dataclass
class Picture:
    """What `draw` draws: lanes top to bottom, bars, markers (t, lane, "hit"/"miss"), lines."""

    lanes: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    marks: list[tuple[float, str, str]] = field(default_factory=list)
    end: float = 0.0
    note: str = ""

    def lane(self, name: str) -> str:
        if name not in self.lanes:
            self.lanes.append(name)
        return name


def _call_key(ev: dict[str, Any]) -> str:
    """What identifies an early call across its events: the node's adoption key (graph path)
    or the guessed tool call (middleware)."""
    if ev.get("key") is not None:
        return f"{ev.get('node')}|{ev['key']}"
    return f"{ev.get('node')}|{json.dumps(ev.get('call'), sort_keys=True, default=str)}"


def layout(report: ReportView) -> Picture:
    """The lanes and bars of `report`'s run (no drawing: testable without matplotlib)."""
    if report.runs > 1:
        raise ValueError(
            f"this report merges {report.runs} runs, whose times overlap: draw one run's report "
            "(graph.last_report, or graph.report_for(run_id))"
        )
    events = [e for e in report.events if isinstance(e.get("t"), (int, float))]
    spans = list(report.spans)
    pic = Picture()
    pic.end = max(
        [report.wall_time_s, *(float(e["t"]) for e in events), *(float(s["end"]) for s in spans)], default=0.0
    )
    why = report.refused or ("the process was busy with other runs (shed)" if report.shed_runs else "")
    if why:
        pic.note = f"this run did not speculate: {why}"
    events = [e for e in events if e.get("event") not in ("refused", "shed_run")]
    if not events and not spans:
        pic.note = pic.note or "nothing was recorded for this run"
        return pic

    # Lanes of the main run, one per node in the order the run reached them, each followed by
    # its speculator's lane.
    order: list[str] = []
    for node in [s["node"] for s in spans] + [str(e.get("node") or "") for e in events]:
        if node and node not in order:
            order.append(node)
    speculated = {str(e.get("node")) for e in events if e.get("event") in _SPECULATOR_EVENTS}
    main_spans: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        main_spans.setdefault(s["node"], []).append(s)
    adopted_at = [(float(e["t"]), str(e.get("node"))) for e in events if e.get("event") == "adopted"]

    def main_lane(node: str) -> str:
        return f"{node} (main run)"

    for node in order:
        on_main = node in main_spans or node in speculated or any(n == node for _, n in adopted_at)
        if on_main:
            pic.lane(main_lane(node))
        if node in speculated:
            pic.lane(f"{node}: speculator")
    for node, node_spans in main_spans.items():
        for s in node_spans:
            start, end = float(s["start"]), float(s["end"])
            served = any(n == node and start - 1e-3 <= t <= end + 1e-3 for t, n in adopted_at)
            pic.bars.append(Bar(main_lane(node), start, end, "served" if served else "actor", node))

    # Speculator calls; without main-run spans (the middleware's report), the actor's call is
    # taken to start with its speculator and end where it answered (the hit or miss).
    open_call: dict[str, float] = {}
    for e in events:
        kind, node, t = e.get("event"), str(e.get("node") or ""), float(e["t"])
        if kind == "guesses":
            start = max(0.0, t - float(e.get("speculator_s") or 0.0))
            pic.bars.append(Bar(f"{node}: speculator", start, t, "speculator"))
            open_call.setdefault(node, start)
        elif kind in ("speculator_error", "speculator_timeout", "invalid_guess"):
            lasted = float(e.get("timeout_s") or 0.0) if "timeout" in str(e.get("reason", kind)) else 0.0
            pic.bars.append(Bar(f"{node}: speculator", max(0.0, t - lasted), t, "speculator_failed"))
        elif kind in ("hit", "miss"):
            pic.marks.append((t, main_lane(node), str(kind)))
            began = open_call.pop(node) if node in open_call else None
            if node not in main_spans and began is not None:
                pic.bars.append(Bar(main_lane(node), began, t, "actor", node))

    # Branches (graph path) and the early calls they launched.
    branches: dict[str, dict[str, Any]] = {}
    outcome = dict(report.branches)
    for e in events:
        kind, t = e.get("event"), float(e["t"])
        if kind == "branch":
            bid = str(e.get("thread"))
            branches[bid] = {"node": str(e.get("node")), "rank": e.get("rank"), "start": t, "end": None}
        elif kind == "cancelled" and str(e.get("thread")) in branches:
            b = branches[str(e.get("thread"))]
            b["end"], b["reason"] = t, str(e.get("reason"))

    adoptions: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("event") == "adopted":
            adoptions.setdefault(_call_key(e), []).append(e)
    wasted: dict[str, list[dict[str, Any]]] = {}  # early calls given up, with how long they ran
    for e in events:
        if e.get("event") == "wasted":
            wasted.setdefault(_call_key(e), []).append(e)
    ended: dict[str, dict[str, Any]] = {}  # middleware: prefetch key -> its cancelled event
    for e in events:
        if e.get("event") == "cancelled" and e.get("thread") is None and e.get("call") is not None:
            ended.setdefault(_call_key(e), e)

    calls: list[tuple[str, Bar]] = []  # (group, bar)
    for e in events:
        if e.get("event") != "launch":
            continue
        t, node, key = float(e["t"]), str(e.get("node")), _call_key(e)
        adoption = next((a for a in adoptions.get(key, []) if float(a["t"]) >= t - 1e-6), None)
        launcher = e.get("branch")
        branch = branches.get(str(launcher)) if launcher is not None else None
        if adoption is not None:
            adoptions[key].remove(adoption)
            at = float(adoption["t"])
            if adoption.get("done", True) and adoption.get("hidden_s") is not None:
                end = min(at, t + float(adoption["hidden_s"]))
            else:  # still running when the main run asked: it ran until the main run's call ended
                end = next(
                    (
                        float(s["end"])
                        for s in main_spans.get(node, [])
                        if s["start"] - 1e-3 <= at <= s["end"]
                    ),
                    at,
                )
            kind = "adopted"
            if branch is not None:
                branch["last"] = max(branch.get("last", 0.0), end)
        else:
            stop = ended.get(key)
            if branch is not None and branch["end"] is not None:
                end = float(branch["end"])
                kind = "cancelled" if branch.get("reason") == "miss" else "wasted"
            elif stop is not None:
                end = float(stop["t"])
                kind = "cancelled" if stop.get("reason") == "miss" and stop.get("running", True) else "wasted"
            else:
                end, kind = pic.end, "wasted"
            # It may have finished long before it was given up: a `wasted` event says how long it
            # ran (`ran_s`); else the node's wasted seconds do (exact for a node with one wasted
            # call, their mean otherwise).
            ran = next((w for w in wasted.get(key, []) if float(w["t"]) >= t - 1e-6), None)
            stats = report.nodes.get(node)
            if ran is not None and ran.get("ran_s") is not None:
                wasted[key].remove(ran)
                end = min(end, t + float(ran["ran_s"]))
            elif stats is not None and stats.wasted and stats.wasted_s > 0:
                end = min(end, t + stats.wasted_s / stats.wasted)
        if branch is not None:
            group = f"{branch['node']}: branch of guess #{branch['rank']}"
        else:  # the middleware: a prefetch is its own branch
            group = f"{node}: prefetch of guess #{e.get('rank', '?')}"
        label = node if launcher is not None else str((e.get("call") or {}).get("name", node))
        calls.append(
            (
                group,
                Bar(group, t, max(end, t), kind, label, owner=str(launcher) if launcher is not None else ""),
            )
        )

    # Pack each group's bars into as few lanes as never overlap.
    groups: dict[str, list[Bar]] = {}
    for bid, b in sorted(branches.items(), key=lambda kv: kv[1]["start"]):
        end = b["end"] if b["end"] is not None else b.get("last", pic.end)
        state = outcome.get(bid, "miss" if b.get("reason") == "miss" else "committed")
        kind = "branch_hit" if state in ("committed", "hit", "late") else "branch_lost"
        group = f"{b['node']}: branch of guess #{b['rank']}"
        bar = Bar(group, b["start"], max(end, b["start"]), kind, owner=bid)
        bar.children = [c for _, c in calls if c.owner == bid]
        groups.setdefault(group, []).append(bar)
    for group, bar in calls:
        if bar.owner not in branches:  # the middleware's prefetches, or a branch whose event was dropped
            groups.setdefault(group, []).append(bar)
    for group in sorted(groups, key=lambda g: min(b.start for b in groups[g])):
        lanes: list[tuple[str, float]] = []
        for bar in sorted(groups[group], key=lambda b: b.start):
            i = next((j for j, (_, busy_until) in enumerate(lanes) if bar.start >= busy_until), len(lanes))
            if i == len(lanes):
                lanes.append((group if i == 0 else f"{group} ({i + 1})", 0.0))
            name = lanes[i][0]
            lanes[i] = (name, max([bar.end, *(c.end for c in bar.children)]) + 1e-9)
            pic.lane(name)
            for one in (bar, *bar.children):
                one.lane = name
                pic.bars.append(one)
    return pic


_SPECULATOR_EVENTS = ("guesses", "speculator_error", "speculator_timeout", "invalid_guess", "hit", "miss")


def draw(
    report: ReportView,
    path: str | os.PathLike[str],
    *,
    plain_s: float | None = None,
    title: str | None = None,
) -> str:
    """Write `report`'s timeline to `path` (the format is its suffix: .png, .svg, .pdf) and return it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"drawing a timeline needs matplotlib: {PLOT_EXTRA}") from None
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write the timeline to {path}: directory {folder} does not exist")
    pic = layout(report)
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lanes = pic.lanes or ["(no lanes)"]
    fig = Figure(figsize=(11, 2.2 + 0.42 * len(lanes)))
    ax = fig.subplots()
    seen: list[str] = []
    span = max(pic.end, plain_s or 0.0, 1e-3)
    for bar in pic.bars:
        y = lanes.index(bar.lane)
        height = 0.8 if bar.kind.startswith("branch") else 0.56
        edge = {"served": "#1565c0", "branch_hit": "#66bb6a", "branch_lost": "#e57373"}.get(bar.kind, "none")
        ax.broken_barh(
            [(bar.start, max(bar.end - bar.start, span * 0.002))],
            (y - height / 2, height),
            facecolors=COLORS[bar.kind],
            edgecolors=edge,
            linewidth=0.8,
            hatch="//" if bar.kind == "speculator_failed" else None,
            zorder=1 if bar.kind.startswith("branch") else 2,
        )
        if bar.kind not in seen:
            seen.append(bar.kind)
        if bar.label and (bar.end - bar.start) > span * 0.06 and not bar.kind.startswith("branch"):
            dark = bar.kind in ("actor", "adopted", "cancelled")
            ax.text(
                bar.start + span * 0.004, y, bar.label, va="center", ha="left", fontsize=7,
                color="white" if dark else "black", clip_on=True, zorder=3,
            )  # fmt: skip
    handles: list[Any] = [
        Patch(
            facecolor=COLORS[k],
            label=LABELS[k],
            edgecolor={"served": "#1565c0", "branch_hit": "#66bb6a", "branch_lost": "#e57373"}.get(k, "none"),
            hatch="//" if k == "speculator_failed" else None,
        )
        for k in LABELS
        if k in seen
    ]
    for kind, marker in (("hit", "v"), ("miss", "X")):
        points = [(t, lanes.index(lane)) for t, lane, k in pic.marks if k == kind and lane in lanes]
        if points:
            ax.scatter([p[0] for p in points], [p[1] - 0.42 for p in points], marker=marker, s=46,
                       color=COLORS[kind], zorder=4, clip_on=False)  # fmt: skip
            text = "hit: the actor answered as a guess did" if kind == "hit" else "miss: no guess matched"
            handles.append(Line2D([], [], marker=marker, linestyle="none", color=COLORS[kind], label=text))
    if report.wall_time_s > 0:
        ax.axvline(report.wall_time_s, color="#212121", linestyle="-", linewidth=1.2, zorder=5)
        handles.append(Line2D([], [], color="#212121", label=f"this run ends: {report.wall_time_s:.2f} s"))
    if plain_s is not None:
        ax.axvline(plain_s, color="#6a1b9a", linestyle="--", linewidth=1.4, zorder=5)
        handles.append(Line2D([], [], color="#6a1b9a", linestyle="--", label=f"plain run: {plain_s:.2f} s"))
    if pic.note:
        ax.text(0.5, 0.5, pic.note, transform=ax.transAxes, ha="center", va="center", fontsize=10,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#bdbdbd"}, zorder=6)  # fmt: skip
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_ylim(len(lanes) - 0.4, -0.75)
    ax.set_xlim(0, span * 1.03)
    ax.set_xlabel("seconds since the run started")
    ax.grid(axis="x", alpha=0.3)
    stats = (
        f"{report.wall_time_s:.2f} s; calls {report.calls}, hits {report.hits}, misses {report.misses}, "
        f"adopted {report.adopted}, wasted {report.wasted}, speculator errors {report.speculator_errors}"
    )
    ax.set_title(f"{title or 'Speculation timeline'}\n{stats}", fontsize=9, loc="left")
    if handles:  # beside the lanes, whatever their number
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=True,
                  title="legend", title_fontsize=8, borderaxespad=0.0)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
