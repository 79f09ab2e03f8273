"""The `langgraph-speculative` command: the ready-made graphs and their evaluations.

The top layer of the distribution: importing `langgraph_speculative` never
imports this module, and this module imports the ready-made graphs
(`langgraph_speculative_graphs`) only when a subcommand is registered. A
subcommand whose extra is missing still shows in `--help` and, whatever its
flags, exits 2 with one line naming the extra to install (httpx's guarded
`main`). `python -m langgraph_speculative` is the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

__all__ = ("main",)

PROG = "langgraph-speculative"
PROVIDER_SDKS = ("openai", "anthropic", "google", "groq", "mistralai", "httpx", "ollama", "langchain_openai")
"""Packages whose exceptions mean a model provider refused or failed a call (a key, a model name, the
network), not a bug here: reported in one line."""


def _version() -> str:
    try:
        return metadata.version("langgraph-speculative")
    except metadata.PackageNotFoundError:  # run from a clone that was never installed
        return "unknown (not installed; pip install -e .)"


class _Missing:
    """The `func` of a subcommand whose extra is not installed: one line naming the extra, exit 2."""

    def __init__(self, name: str, extra: str, exc: ImportError) -> None:
        self.name, self.extra, self.exc = name, extra, exc

    def __call__(self, args: argparse.Namespace) -> int:
        print(f"{PROG} {self.name}: needs the {self.extra} extra: "
              f"pip install 'langgraph-speculative[{self.extra}]' ({self.exc})", file=sys.stderr)  # fmt: skip
        return 2


def _add(
    sub: Any, name: str, extra: str, load: Callable[[], Callable[[Any], None]], help: str, under: str = ""
) -> None:
    """Register a subcommand; if its dependencies are missing it still shows in --help and says what
    to install when run."""
    try:
        add_parser = load()
    except ImportError as exc:
        p = sub.add_parser(name, help=f"{help} (needs the {extra} extra)", add_help=False)
        p.set_defaults(func=_Missing(f"{under} {name}".strip(), extra, exc))  # any flags: see main
    else:
        add_parser(sub)


def _chess() -> Callable[[Any], None]:
    from langgraph_speculative_graphs.chess._run import add_parser

    return add_parser


def _cfs() -> Callable[[Any], None]:
    from langgraph_speculative_graphs.cfs._run import add_parser

    return add_parser


def _tau() -> Callable[[Any], None]:
    from langgraph_speculative_graphs.tau_retail._eval import add_parser

    return add_parser


def _hotpotqa() -> Callable[[Any], None]:
    from langgraph_speculative_graphs.hotpotqa._eval import add_parser

    return add_parser


def _branches() -> Callable[[Any], None]:
    from ._cli_branches import add_parser

    return add_parser


def _timeline() -> Callable[[Any], None]:
    from ._cli_timeline import add_parser

    return add_parser


def parser() -> argparse.ArgumentParser:
    """The command's argument parser (every subcommand registered)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Speculative actions for LangGraph: the ready-made graphs and their evaluations. "
        "Everything runs offline by default; chat models (openai:gpt-5, ...) only when you name them.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{chess,cfs,eval,branches,timeline}")
    _add(sub, "chess", "chess", _chess, "speculative chess self-play")
    _add(sub, "cfs", "dev", _cfs, "lossy speculation: live scheduler-slice tuning")
    evaluate = sub.add_parser("eval", help="evaluate a speculator on recorded runs").add_subparsers(
        dest="benchmark", required=True
    )
    _add(evaluate, "tau-retail", "dev", _tau, "next-call accuracy on tau-bench retail", "eval")
    _add(evaluate, "hotpotqa", "hotpotqa", _hotpotqa, "next-action accuracy on recorded ReAct runs", "eval")
    _branches()(sub)
    _timeline()(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `langgraph-speculative` console script.

    Exit status: what the subcommand returns (0 ok, 1 a failed check such as
    different games), 2 for a usage error or a spec that cannot work here
    (one line on stderr naming the fix), 130 on Ctrl-C.
    """
    p = parser()
    args, unknown = p.parse_known_args(argv)
    if isinstance(args.func, _Missing):  # whatever flags were given: say what to install
        return args.func(args)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    from langgraph_speculative_graphs._common import SpecError

    started = time.monotonic()
    command = f"eval {args.benchmark}" if args.command == "eval" else args.command
    try:
        if getattr(args, "check", None) is not None:
            args.check(args)  # the subcommand's own checks, before anything is said or started
        if args.command == "eval":  # no per-item progress in the evals (they take seconds): say what runs
            print(f"{PROG} {command}: running...", file=sys.stderr)
        status = int(args.func(args))
    except SpecError as exc:
        print(f"{PROG} {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (`... | head`): nothing to report
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in PROVIDER_SDKS:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"{PROG} {command}: error: the model provider refused a call "
            f"({type(exc).__name__}: {first}); check the model name and its key",
            file=sys.stderr,
        )
        return 2
    if args.command == "eval":
        print(f"{PROG} {command}: done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
