"""`langgraph-speculative branches`: list or delete the branch threads earlier versions left in a
SQLite or PostgreSQL checkpointer."""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph_speculative_graphs._common import SpecError

__all__ = ("add_parser",)


def add_parser(sub: Any) -> None:
    """Register the `branches` subcommand."""
    p = sub.add_parser(
        "branches",
        help="list (or --delete) the branch threads (<thread>:spec:<hex>) that earlier versions left "
        "in a checkpointer",
        description="Earlier versions of langgraph-speculative forked branches into your checkpointer "
        "as threads named <thread>:spec:<hex>, and kept the adopted ones. The current version never "
        "writes them. This lists them (one per line) and, with --delete, deletes them; main threads "
        "are never touched.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH", help="a SqliteSaver / AsyncSqliteSaver database file")
    where.add_argument("--postgres", metavar="URI", help="a PostgresSaver database (postgresql://...)")
    p.add_argument("--thread", metavar="T", help="only the branches of main thread T (T:spec:*)")
    p.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    p.add_argument("--json", action="store_true", help="print {found, deleted, threads} as JSON")
    p.set_defaults(func=run)


@contextlib.contextmanager
def _saver(args: argparse.Namespace) -> Iterator[Any]:
    if args.sqlite:
        try:
            from langgraph.checkpoint.sqlite import SqliteSaver
        except ImportError as exc:
            raise SpecError(
                "--sqlite needs the sqlite extra: pip install 'langgraph-speculative[sqlite]'"
            ) from exc
        path = Path(args.sqlite)
        if not path.is_file():
            raise SpecError(f"--sqlite {args.sqlite}: no such file")
        try:  # open the file as it is: never create one, never set tables up
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SpecError(f"--sqlite {args.sqlite}: {exc}") from exc
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
        return
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise SpecError(
            "--postgres needs the postgres extra: pip install 'langgraph-speculative[postgres]'"
        ) from exc
    try:
        pg = psycopg.connect(args.postgres, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.Error as exc:
        raise SpecError(f"--postgres: cannot connect: {str(exc).strip().splitlines()[0]}") from exc
    with pg:
        yield PostgresSaver(pg)


def run(args: argparse.Namespace) -> int:
    """List (and with --delete, delete) the branch threads; exit 0."""
    from ._maintenance import delete_branch_threads

    with _saver(args) as saver:
        try:
            found = delete_branch_threads(saver, args.thread, dry_run=not args.delete)
        except (sqlite3.DatabaseError, _pg_error()) as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise SpecError(f"not a LangGraph checkpoint database? {type(exc).__name__}: {first}") from exc
    if args.json:
        deleted = len(found) if args.delete else 0
        print(json.dumps({"found": len(found), "deleted": deleted, "threads": found}))
    else:
        for name in found:
            print(name)
        verb = "deleted" if args.delete else "found (use --delete to delete them)" if found else "found"
        print(f"{len(found)} branch thread{'' if len(found) == 1 else 's'} {verb}", file=sys.stderr)
    return 0


def _pg_error() -> type[Exception]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on extras
        return sqlite3.DatabaseError
    return psycopg.Error
