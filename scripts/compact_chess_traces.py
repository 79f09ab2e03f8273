"""Compact the paper's recorded GPT-5 chess games into
langgraph_speculative_graphs/chess/data/paper_games.json.

Source: the Speculative Actions paper's repository (Apache-2.0, see
langgraph_speculative_graphs/chess/data/LICENSE), as shipped in ../shared/data/chess_traces/. Only
the fields the replay uses are kept (moves, latencies, guesses, replies, the
paper's accounted totals); the prompts are dropped.

    python scripts/compact_chess_traces.py ../shared/data/chess_traces
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _uci(text: str) -> str:
    return text.strip().strip("[]").strip()


def _game(folder: Path) -> dict:
    steps = json.loads((folder / "stepsinfo.json").read_text())
    by_k = {
        k: json.loads((folder / f"steps_info_gpt_5_2025_08_07_guess_{k}.json").read_text()) for k in (1, 2, 3)
    }
    n = len(by_k[3])
    plies = [by_k[3][str(i)] for i in range(n)]
    replies: list[dict[str, list]] = []
    for i in range(n):
        s = steps[str(i)]
        known = {}
        # Only the paper's own speculative run ties each guess to its reply and reply time.
        for guess, reply, t in zip(
            s.get("current_pred") or [], s.get("current_spec") or [], s.get("time_taken_speculation") or []
        ):
            known[_uci(guess)] = [_uci(reply), t]
        replies.append(known)
    totals = {}
    for name in ("regular", "speculate"):
        value = json.loads((folder / f"time_checker_{name}.json").read_text())
        # One file in some games holds the steps dict instead of a total: sum its actor times.
        if isinstance(value, dict):
            totals[name] = sum(v["time_taken_current_agent"] for v in value.values())
            totals[f"{name}_note"] = "file holds the steps, not a total; summed time_taken_current_agent"
        else:
            totals[name] = value
    return {
        "id": folder.name,
        "moves": [_uci(p["current_move"]) for p in plies],
        "actor_s": [p["time_taken_current_agent"] for p in plies],
        "guesses": {
            str(k): [[_uci(m) for m in by_k[k][str(i)]["guessed_moves"]] for i in range(n)] for k in (1, 2, 3)
        },
        "guess_s": {str(k): [by_k[k][str(i)]["guess_prediction_time"] for i in range(n)] for k in (1, 2, 3)},
        "replies": replies,
        "paper_regular_s": totals["regular"],
        "paper_speculate_s": totals["speculate"],
        "paper_notes": [v for k, v in totals.items() if k.endswith("_note")],
    }


def main(src: str) -> None:
    root = Path(src)
    games = [_game(d) for d in sorted(root.iterdir()) if (d / "stepsinfo.json").exists()]
    out = Path(__file__).resolve().parent.parent / "graphs" / "chess" / "data" / "paper_games.json"
    out.write_text(
        json.dumps(
            {
                "source": "Speculative Actions (arXiv 2510.04371) repository, GPT-5 self-play; Apache-2.0",
                "games": games,
            },
            indent=1,
        )
    )
    print(f"wrote {len(games)} games to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/chess_traces")
