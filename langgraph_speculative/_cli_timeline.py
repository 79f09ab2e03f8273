"""`langgraph-speculative timeline REPORT.json`: draw a run's timeline from a saved report."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from langgraph_speculative_graphs._common import SpecError

__all__ = ("add_parser",)


def add_parser(sub: Any) -> None:
    """Register the `timeline` subcommand."""
    p = sub.add_parser(
        "timeline",
        help="draw the timeline of a run from its report saved as JSON (report.to_json())",
        description="Draw one run's timeline (a lane per node and its speculator, lanes of branches with "
        "their early calls adopted, cancelled or wasted, hits and misses) from a SpeculationReport saved "
        "with `open('run.json', 'w').write(graph.last_report.to_json())`. Needs matplotlib "
        "(the plot extra).",
    )
    p.add_argument("report", metavar="REPORT.json", help="a report saved with SpeculationReport.to_json()")
    p.add_argument("-o", "--output", metavar="FILE", help="the picture to write (.png, .svg, .pdf; "
                   "default: REPORT.png beside the report)")  # fmt: skip
    p.add_argument("--plain-s", type=float, metavar="S", help="the plain graph's time for the same input, "
                   "in seconds: drawn as a reference line")  # fmt: skip
    p.add_argument("--title", help="the picture's title (default: Speculation timeline)")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Everything that can be told before drawing: the report exists, the output's folder exists,
    matplotlib is installed, `--plain-s` is a time."""
    if not os.path.isfile(args.report):
        raise SpecError(f"{args.report}: no such file (save one with report.to_json())")
    if args.output is None:
        args.output = os.path.splitext(args.report)[0] + ".png"
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise SpecError(f"--output {args.output}: directory {folder} does not exist")
    if args.plain_s is not None and not args.plain_s > 0:
        raise SpecError(f"--plain-s {args.plain_s}: give the plain run's time in seconds (> 0)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SpecError("timeline needs matplotlib: pip install 'langgraph-speculative[plot]'") from None


def run(args: argparse.Namespace) -> int:
    """Draw the timeline; print where it went; exit 0."""
    from ._report import SpeculationReport

    with open(args.report, "rb") as f:
        text = f.read()
    try:
        report = SpeculationReport.from_json(text)
        path = report.timeline(args.output, plain_s=args.plain_s, title=args.title)
    except ValueError as exc:
        raise SpecError(f"{args.report}: {exc}") from None
    print(path)
    print(f"timeline of a {report.wall_time_s:.2f} s run written to {path}", file=sys.stderr)
    return 0
