"""A PNG timeline of a speculative game: one lane per player and per branch rank."""

from __future__ import annotations

from typing import Any

import chess


def draw(result: dict[str, Any], path: str) -> None:
    """Write the timeline of `result` (from the chess command) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result["t0"]
    board = chess.Board(result["start_fen"])
    committed = set()
    for m in result["moves"][len(result["opening"]) :]:
        committed.add(board.fen())
        board.push_uci(m)
    lanes = ["white", "black", "speculator"]
    ranks = sorted({r["rank"] for r in result["players"].timeline if r.get("speculative") and r.get("rank")})
    lanes += [f"branch #{r}" for r in ranks]
    fig, ax = plt.subplots(figsize=(12, 1.0 + 0.55 * len(lanes)))
    for r in result["players"].timeline:
        if r["end"] is None or r["start"] < t0 or not r.get("ran", True):
            continue
        if r["kind"] == "speculator":
            lane, color = "speculator", "#9e9e9e"
        elif r["speculative"]:
            lane = f"branch #{r['rank']}"
            color = "#2e7d32" if r["fen"] in committed else "#c62828"
        else:
            lane, color = r["player"], "#1565c0" if r["player"] == "white" else "#37474f"
        y = lanes.index(lane)
        ax.broken_barh([(r["start"] - t0, r["end"] - r["start"])], (y - 0.35, 0.7), color=color)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock time (s)")
    ax.set_title(
        f"Speculative chess: {len(result['moves'])} plies in {result['elapsed']:.1f}s — "
        "blue/grey: actor on the main run, green: branch search adopted (hit), "
        "red: cancelled or unused (miss)",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
