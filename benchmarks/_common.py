"""Shared helpers for benchmarks: argument parsing and table printing."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small grid, under a minute")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--seed", type=int, default=0)
    return p


def bar_plot(path: str, title: str, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    """A grouped bar chart (one group per x label, one bar per series) written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 4))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Summed `sequential_s` and `speculative_s` of per-run rows, and the share of time saved."""
    seq = sum(r["sequential_s"] for r in rows)
    spec = sum(r["speculative_s"] for r in rows)
    saved = round(100 * (1 - spec / seq), 1)
    return {"sequential_s": round(seq, 3), "speculative_s": round(spec, 3), "saved_pct": saved}


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def emit(rows: list[dict[str, Any]], columns: list[str], as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        print(json.dumps({**extra, "rows": rows}))
        return
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r[c]).rjust(w) for c, w in zip(columns, widths)))
    for k, v in extra.items():
        print(f"{k}: {v}")


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
