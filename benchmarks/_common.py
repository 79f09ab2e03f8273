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
