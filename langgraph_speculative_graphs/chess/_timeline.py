"""A PNG timeline of a speculative game: the library's run timeline (`SpeculationReport.timeline`)
of the game's report, titled for chess, with the sequential game's length when it was played."""

from __future__ import annotations

from typing import Any

from .._common import SpecError


def draw(result: dict[str, Any], path: str, sequential_s: float | None = None) -> None:
    """Write the timeline of the speculative game `result` (from the chess command) to `path`;
    `sequential_s`, the sequential game's wall clock (`--compare`), is drawn for comparison."""
    report = result.get("report")
    if report is None:
        raise SpecError("--timeline: the speculative game has no report to draw (was it speculative?)")
    plies = len(result["moves"]) - len(result["opening"])
    report.timeline(
        path,
        plain_s=sequential_s,
        title=f"Speculative chess, {plies} plies (a move adopted from a branch has no actor bar: "
        "its search ran early, on the branch's lane)",
    )
