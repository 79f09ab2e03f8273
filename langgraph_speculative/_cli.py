"""The `langgraph-speculative` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `langgraph-speculative` console script."""
    parser = argparse.ArgumentParser(
        prog="langgraph-speculative",
        description="Speculative actions for LangGraph: the ready-made graphs and their evaluations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    try:
        from graphs.chess._run import add_parser as add_chess
    except ImportError as exc:  # the chess extra is missing
        print(f"chess needs its extra: pip install 'langgraph-speculative[chess]' ({exc})", file=sys.stderr)
    else:
        add_chess(sub)
    from graphs.cfs._run import add_parser as add_cfs

    add_cfs(sub)
    evaluate = sub.add_parser("eval", help="evaluate a speculator on recorded runs").add_subparsers(
        dest="benchmark", required=True
    )
    from graphs.tau_retail._eval import add_parser as add_tau

    add_tau(evaluate)
    from graphs.hotpotqa._eval import add_parser as add_hotpotqa

    add_hotpotqa(evaluate)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
