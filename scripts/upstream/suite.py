"""Run LangGraph's own test suite plain and with every graph speculative; report the differences.

    python scripts/upstream/suite.py                 # every mode, fails on a difference
    python scripts/upstream/suite.py --modes none right -k interrupt

It downloads the source distribution of exactly the installed LangGraph version from PyPI
(`pip download --no-deps --no-binary :all: langgraph==X`), unpacks its `tests/` into a cache
directory (`$LGS_UPSTREAM_CACHE`, default `~/.cache/lgs-upstream`), and runs it with the pytest
plugin next to this file: first plain (the reference; it also finds the tests that build a
graph), then in each speculative mode on those tests only (see `lgs_upstream_plugin.py` for the
modes). A test that passes in the reference and fails in a mode is a difference. Differences are
re-run once (alone, plain and speculative) before they count: the machine may be loaded.

A difference fails the run unless `allowed.toml` lists it (each entry says why the difference is
inherent to a speculating library) or `known_being_fixed.toml` does (real bugs someone is fixing
now; printed loudly, they do not fail the run). Unraisable exceptions (pytest's warnings about
them) that a mode shows and the reference does not count as differences too.

Services: LangGraph's fixtures also run on PostgreSQL and Redis in Docker; without `--postgres`
they are left out (`NO_DOCKER=true`, identically in every mode). `--postgres` points the
PostgreSQL fixtures at `$LGS_PG_URI` (default the CI server, 127.0.0.1:54329) and leaves out the
Redis cache tests.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SPECULATIVE = ("none", "wrong", "right", "slow")
# What a difference is checked against when it is re-run: slowing nodes alone makes some of
# LangGraph's timing tests fail, so a test that fails `slow` counts only if it passes `plain-slow`
# (the plain graph, slowed the same way). The first pass compares every mode with `plain`.
RERUN_BASELINE = {"none": "plain", "wrong": "plain", "right": "plain", "slow": "plain-slow"}
PASSING = ("passed",)


def fetch(version: str, cache: Path) -> Path:
    """The unpacked tests of LangGraph `version` (downloaded once into `cache`)."""
    root = cache / f"langgraph-{version}"
    if (root / "tests" / "conftest.py").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
        cmd += ["--no-deps", "--no-binary", ":all:", f"langgraph=={version}", "-d", tmp]
        subprocess.run(cmd, check=True)
        sdists = list(Path(tmp).glob("langgraph-*.tar.gz"))
        if not sdists:
            sys.exit(f"pip download gave no source distribution of langgraph=={version} in {tmp}")
        staging = Path(tmp) / "unpacked"
        with tarfile.open(sdists[0]) as tar:
            members = [m for m in tar.getmembers() if "/tests/" in m.name]
            if not any(m.name.endswith("/tests/conftest.py") for m in members):
                sys.exit(
                    f"the source distribution of langgraph=={version} holds no tests/ directory; "
                    "get the tests from the GitHub tag instead (libs/langgraph/tests)"
                )
            tar.extractall(staging, members=members, filter="data")
        top = next(staging.iterdir())
        if root.exists():
            shutil.rmtree(root)
        shutil.move(str(top), root)
    # Our own ini: LangGraph's pyproject asks for plugins (--snapshot-warn-unused) and strictness
    # we do not need; its tests import `tests.*` from this directory (rootdir on sys.path).
    (root / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
    return root


def load_lists() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    with open(HERE / "allowed.toml", "rb") as f:
        allowed = tomllib.load(f)
    with open(HERE / "known_being_fixed.toml", "rb") as f:
        known = tomllib.load(f)
    for entry in allowed.get("allowed", []) + allowed.get("refusal", []):
        if not entry.get("reason"):
            sys.exit(f"allowed.toml: entry {entry} has no reason")
    return allowed.get("allowed", []), allowed.get("refusal", []), known.get("known", [])


def matches(entry: dict[str, Any], test: str, mode: str, kind: str) -> bool:
    if entry.get("kind", "fails") != kind:
        return False
    if mode not in entry.get("modes", SPECULATIVE):
        return False
    return any(fnmatch.fnmatchcase(test, pat) for pat in _as_list(entry["test"]))


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def run_mode(
    root: Path, mode: str, out_dir: Path, extra: list[str], select: dict[str, Any] | None, tag: str = ""
) -> dict[str, Any]:
    out = out_dir / f"{mode}{tag}.json"
    # --tb=native: pytest's own traceback rendering re-parses source files and has crashed the
    # whole session (CPython 3.11 "AST constructor recursion depth mismatch") after a test failed.
    cmd = [sys.executable, "-m", "pytest", "-q", "--tb=native", "-p", "lgs_upstream_plugin"]
    cmd += [f"--lgs-mode={mode}"]
    cmd += [
        f"--lgs-out={out}",
        f"--lgs-refusals={out_dir / 'refusals.json'}",
        "-W",
        "ignore::DeprecationWarning",
    ]
    if select is not None:
        path = out_dir / f"select-{mode}{tag}.json"
        path.write_text(json.dumps(select))
        cmd.append(f"--lgs-select={path}")
    paths = [a for a in extra if a.startswith("tests")]
    cmd += [*extra] if paths else ["tests", *extra]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("NO_DOCKER", "true")
    started = time.monotonic()
    log = out_dir / f"{mode}{tag}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT)
    if not out.exists():
        sys.exit(f"{mode}: pytest wrote no results (exit {proc.returncode}); see {log}")
    data: dict[str, Any] = json.loads(out.read_text())
    data["wall_s"] = round(time.monotonic() - started, 1)
    return data


def differences(ref: dict[str, Any], got: dict[str, Any], selected: set[str] | None) -> dict[str, str]:
    """Tests that pass in `ref` and not in `got` (or show an unraisable exception `ref` does not).
    A `selected` test that `got` never ran (pytest stopped) counts as failing."""
    out: dict[str, str] = {}
    for test, r in ref["results"].items():
        g = got["results"].get(test)
        if r["outcome"] not in PASSING:
            continue
        if g is None:
            if selected is not None and test in selected:
                out[test] = "fails: did not run (the pytest session stopped before it)"
            continue
        if g["outcome"] not in PASSING and g["outcome"] not in ("skipped", "xfailed"):
            out[test] = f"fails: {g['outcome']}: {g.get('message', '')}"
        elif g["unraisable"] and not r["unraisable"]:
            out[test] = "unraisable: " + g["unraisable"][0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", nargs="+", default=list(SPECULATIVE), choices=SPECULATIVE)
    parser.add_argument("--cache", default=os.environ.get("LGS_UPSTREAM_CACHE", "~/.cache/lgs-upstream"))
    parser.add_argument("--out", default=None, help="where logs and results go (default: a temp dir)")
    parser.add_argument("--postgres", action="store_true", help="also run LangGraph's PostgreSQL fixtures")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (e.g. -k interrupt, a file)")
    args = parser.parse_args(argv)

    version = importlib.metadata.version("langgraph")
    root = fetch(version, Path(os.path.expanduser(args.cache)))
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="lgs-upstream-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    allowed, refusals, known = load_lists()
    (out_dir / "refusals.json").write_text(json.dumps([r["pattern"] for r in refusals]))
    extra = list(args.pytest_args)
    if args.postgres:
        os.environ["NO_DOCKER"] = "false"
        os.environ.setdefault("LGS_PG_URI", "postgres://postgres@127.0.0.1:54329/")
        extra += ["-k", "not redis"]
    print(f"LangGraph {version}: tests in {root}; logs in {out_dir}", flush=True)

    ref = run_mode(root, "plain", out_dir, extra, None)
    graphs = {"tests": ref["compiled_tests"], "files": ref["compile_files"]}
    passed = sum(r["outcome"] == "passed" for r in ref["results"].values())
    print(
        f"plain: {len(ref['results'])} tests, {passed} pass, {len(graphs['tests'])} build a graph "
        f"(+ every test of {len(graphs['files'])} files that build one at import); {ref['wall_s']} s",
        flush=True,
    )
    failed = False
    summary: list[str] = []
    for mode in args.modes:
        base = RERUN_BASELINE[mode]
        got = run_mode(root, mode, out_dir, extra, graphs)
        selected = set(got["selected"])
        diff = differences(ref, got, selected)
        if diff:  # once more, alone, before believing it (the machine may be loaded)
            again = {"tests": sorted(diff), "files": []}
            ref2 = run_mode(root, base, out_dir, extra, again, tag=f"-rerun-{mode}")
            got2 = run_mode(root, mode, out_dir, extra, again, tag="-rerun")
            confirmed = differences(ref2, got2, set(diff))
            diff = {t: d for t, d in diff.items() if t in confirmed}
        refused = sorted(t for t, r in got["results"].items() if r.get("refused"))
        kinds = {t: ("unraisable" if d.startswith("unraisable") else "fails") for t, d in diff.items()}
        bad = {t: d for t, d in diff.items() if not any(matches(e, t, mode, kinds[t]) for e in allowed)}
        being_fixed = {t: d for t, d in bad.items() if any(matches(e, t, mode, kinds[t]) for e in known)}
        new = {t: d for t, d in bad.items() if t not in being_fixed}
        ran = sum(1 for r in got["results"].values() if r["outcome"] == "passed")
        line = (
            f"{mode}: {len(got['results'])} tests run ({ran} pass), {len(diff)} differ (confirmed against "
            f"{base}): "
            f"{len(diff) - len(bad)} allowed, {len(being_fixed)} known and being fixed, {len(new)} new; "
            f"{len(refused)} ran plain after a documented refusal; {got['wall_s']} s"
        )
        print(line, flush=True)
        summary.append(line)
        for t, d in sorted(being_fixed.items()):
            item = next(e["item"] for e in known if matches(e, t, mode, kinds[t]))
            label = item if isinstance(item, str) else f"issue 26 item {item}"
            print(f"  KNOWN, BEING FIXED ({label}) {t}\n      {d[:300]}", flush=True)
        for t, d in sorted(new.items()):
            print(f"  DIFFERENCE {t}\n      {d[:600]}", flush=True)
        failed = failed or bool(new)
    (out_dir / "summary.txt").write_text("\n".join(summary) + "\n")
    print("upstream suite:", "DIFFERENCES (see above)" if failed else "no difference outside the lists")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
