"""Plant deliberate bugs in a copy of the library and check that the test suite catches each.

Each mutation is a small text patch of one core module: the kind of bug a lossless library must
never ship (adopting a call made on other input, running an unsafe node on a branch, losing the
run's context on branches, leaving branch threads behind, ...). For every mutation the script
copies the repository to a temporary directory, applies the patch, and runs the tests that
should catch it (stopping at the first failure). A mutation the tests do not catch is a hole in
the proof: the script exits non-zero and names it.

    python scripts/mutation_check.py            # every mutation (about 10 minutes)
    python scripts/mutation_check.py --list
    python scripts/mutation_check.py --only unsafe-on-branch --only context-dropped
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = "langgraph_speculative"

# The tests a mutation runs against, in order: the conformance suite (in memory), the API and
# lifecycle tests, faults, graph-level agents, and the lossless property (regression seeds and a
# short random run). Each group is one pytest run; the first failure ends the check.
SUITES = [
    ["tests/test_conformance.py", "-k", "memory or concurrent"],
    [
        "tests/test_keys.py",
        "tests/test_api.py",
        "tests/test_faults.py",
        "tests/test_agents_graph.py",
        "tests/test_runtime.py",
        "tests/test_tool_gates.py",
    ],
    [
        "tests/test_lossless.py::test_lossless_regression_seeds",
        "tests/test_lossless.py::test_lossless_random_apps_memory",
    ],
    [
        "tests/test_shedding.py",
        "tests/test_lossless.py::test_lossless_when_a_busy_process_sheds_at_random_points",
    ],
]


@dataclass(frozen=True)
class Mutation:
    name: str
    why: str
    file: str
    old: str
    new: str


MUTATIONS = [
    Mutation(
        "records-read-as-tool-calls",
        "issue 27: any dict with an id and a name counts as a tool call, its id by position, so "
        "{'id': 'u-1', 'name': 'Ann'} and {'id': 'u-2', 'name': 'Ann'} share a key",
        "_keys.py",
        '    kind = items.get("type") if block else None\n',
        '    if "id" in items and "name" in items:\n        return ("id",)\n'
        '    kind = items.get("type") if block else None\n',
    ),
    Mutation(
        "refusal-none-read",
        "issue 25 item 2: a non-streamed reply's refusal: None makes every built guess miss",
        "_keys.py",
        '            if v is not None and not (parsed and k in ("tool_calls", "function_call"))',
        '            if not (parsed and k in ("tool_calls", "function_call"))',
    ),
    Mutation(
        "adopt-on-key-mismatch",
        "the main run adopts any early call of the node, whatever input it was made on",
        "_session.py",
        "        entry = self.cache.get((b.name, key))\n"
        "        if entry is None or entry.cancelled or entry.main:\n            return None",
        "        entry = next((e for (n, _), e in self.cache.items() if n == b.name), None)\n"
        "        if entry is None or entry.cancelled or entry.main:\n            return None",
    ),
    Mutation(
        "adopt-a-wrong-guess",
        "keys ignore the input: calls made on a wrong guess's branch are adopted",
        "_state.py",
        "        if self.key_fn is None:\n            return default_key(state)",
        "        if self.key_fn is None:\n            return default_key(self.name)",
    ),
    Mutation(
        "skip-cancellation",
        "a losing branch's early calls are not cancelled: they run to the end",
        "_lifecycle.py",
        "            if entry.task is not None and not entry.task.done():\n"
        "                entry.task.cancel()\n"
        "                stats.cancelled += 1",
        "            if entry.task is not None and not entry.task.done():\n"
        "                stats.cancelled += 1",
    ),
    Mutation(
        "unsafe-on-branch",
        "nodes marked unsafe run on branches",
        "_branches.py",
        "        if b.unsafe or b.gate or b.name in self.s.run.before or b.name in self.s.plan.gates:\n"
        '            return "stop"',
        "        if b.gate or b.name in self.s.run.before or b.name in self.s.plan.gates:\n"
        '            return "stop"',
    ),
    Mutation(
        "interrupt-before-ignored",
        "a branch runs nodes the run waits for a person before (interrupt_before)",
        "_branches.py",
        "        if b.unsafe or b.gate or b.name in self.s.run.before or b.name in self.s.plan.gates:\n"
        '            return "stop"',
        '        if b.unsafe or b.gate or b.name in self.s.plan.gates:\n            return "stop"',
    ),
    Mutation(
        "context-dropped",
        "branches run without the run's context",
        "_branches.py",
        'await graph.ainvoke(None, run_cfg, context=self.s.run.context, durability="sync")',
        'await graph.ainvoke(None, run_cfg, context=None, durability="sync")',
    ),
    Mutation(
        "configurable-dropped",
        "branches run without the run's configurable values",
        "_branches.py",
        '            conf = {**self.s.run.conf, "checkpoint_ns": ""}',
        '            conf = {"checkpoint_ns": ""}',
    ),
    Mutation(
        "branch-threads-left-in-the-saver",
        "branches fork into the user's checkpointer and stay there",
        "_branches.py",
        "            saver = RecordingSaver(\n"
        "                InMemorySaver(serde=self.s.run.recorder.serde),",
        "            saver = RecordingSaver(\n"
        "                self.s.run.recorder.inner if self.s.run.thread_id else InMemorySaver(),",
    ),
    Mutation(
        "branch-writes-the-store",
        "a branch's store writes reach the user's store",
        "_stores.py",
        "        if writes and entry is None:\n"
        '            raise BranchStop("a branch does not write to the store")',
        "        if writes:\n            return [None] * len(ops), list(range(len(ops))), ops",
    ),
    Mutation(
        "stale-store-adopted",
        "an early call that read the store is adopted after the main run wrote it",
        "_session.py",
        "        if store is None or not (entry.read_store or entry.store_ops):\n            return True",
        "        if True:\n            return True",
    ),
    Mutation(
        "stream-writes-lost",
        "an adopted call's custom-stream writes never reach the run's stream",
        "_futures.py",
        "    if entry.writes:\n        writer = stream_writer()",
        "    if False:\n        writer = stream_writer()",
    ),
    Mutation(
        "tool-call-ids-not-remapped",
        "adopted tool messages keep the ids of the branch's guess",
        "_session.py",
        "                        result = remap(result, entry.remap)\n"
        "                        self._finish(entry, result)",
        "                        self._finish(entry, result)",
    ),
    Mutation(
        "interrupt-after-ignored",
        "a branch runs past a node the run waits for a person after (interrupt_after)",
        "_branches.py",
        '        if b.name in self.s.run.after:\n            return "after"',
        '        if False:\n            return "after"',
    ),
    Mutation(
        "interrupt-in-node-ignored",
        "a node whose code calls interrupt() is speculated and passed by branches",
        "_scan.py",
        '    return "interrupt" in _all_names(code)',
        "    return False",
    ),
    Mutation(
        "write-tool-on-branch",
        "a tool node runs any tool call on a branch, writes included",
        "_branches.py",
        "        if b.read_only_tools is not None and not only_reads(state, self.s.plan.read_only(b)):",
        "        if False:",
    ),
    Mutation(
        "asking-tool-on-branch",
        "a tool that asked a person on the main run still runs on branches (gates per tool forgotten)",
        "_plan.py",
        "        return binding.read_only_tools - gated if gated else binding.read_only_tools",
        "        return binding.read_only_tools",
    ),
    Mutation(
        "sync-run-on-async-path",
        "a sync run calls user code through its async path on the library's loop (a client the user "
        "shares with their own loop breaks)",
        "_session.py",
        '        if (self.mode == "sync" and has_sync_path(runnable)) or sync_only(runnable):',
        "        if sync_only(runnable):",
    ),
    Mutation(
        "early-failure-becomes-the-run's",
        "an adopted early call that failed fails the run, instead of the main run calling the actor",
        "_session.py",
        "                except BaseException as exc:\n"
        "                    if not raised_by(entry, exc):\n"
        "                        raise\n"
        "                    self._adoption_failed(entry, exc)",
        "                except BaseException:\n                    raise",
    ),
    Mutation(
        "budget-slot-leaked",
        "a branch or early call cancelled before its task started keeps its process-budget slot",
        "_session.py",
        "            task.add_done_callback(lambda _: self.release_slot(holder))",
        "            pass",
    ),
    Mutation(
        "shed-run-stays-active",
        "a run that shed speculation is still counted active after it ends",
        "_graph.py",
        "        if shed.shed:\n            process_budget().run_ended()\n",
        "        if shed.shed:\n",
    ),
]


def run_suite(root: str, env: dict[str, str]) -> tuple[bool, str, float]:
    """Run the suites in order; (all passed, what the last run said, seconds)."""
    t0 = time.monotonic()
    tail = ""
    for suite in SUITES:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *suite],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        tail = (failed or lines)[-1] if lines else ""
        if proc.returncode != 0:
            return False, tail, time.monotonic() - t0
    return True, tail, time.monotonic() - t0


def copy_repo(dest: str) -> None:
    for part in (LIB, "langgraph_speculative_graphs", "tests"):
        shutil.copytree(
            os.path.join(ROOT, part), os.path.join(dest, part), ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), dest)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", help="run only this mutation (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = p.parse_args()
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:34} {m.why}")
        return 0
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutation(s) {sorted(unknown)}; --list shows them", file=sys.stderr)
        return 2
    env = {
        **os.environ,
        "LGS_HYPOTHESIS_EXAMPLES": os.environ.get("LGS_HYPOTHESIS_EXAMPLES", "60"),
        "PYTHONPATH": "",
    }
    survivors = []
    with tempfile.TemporaryDirectory(prefix="lgs-mutants-") as tmp:
        if not args.no_baseline:
            base = os.path.join(tmp, "baseline")
            os.makedirs(base)
            copy_repo(base)
            ok, tail, secs = run_suite(base, env)
            print(
                f"{'baseline (no mutation)':34} {'passes' if ok else 'FAILS'} in {secs:.0f}s  {tail}",
                flush=True,
            )
            if not ok:
                print("the unmutated suite fails: fix that first", file=sys.stderr)
                return 1
        for m in chosen:
            root = os.path.join(tmp, m.name)
            os.makedirs(root)
            copy_repo(root)
            path = os.path.join(root, LIB, m.file)
            with open(path) as f:
                text = f.read()
            if text.count(m.old) != 1:
                print(f"{m.name:34} PATCH DOES NOT APPLY ({m.file} changed): update the mutation", flush=True)
                survivors.append(m.name)
                continue
            with open(path, "w") as f:
                f.write(text.replace(m.old, m.new))
            ok, tail, secs = run_suite(root, env)
            verdict = "SURVIVED" if ok else "caught"
            print(f"{m.name:34} {verdict} in {secs:.0f}s  {tail}", flush=True)
            if ok:
                survivors.append(m.name)
            shutil.rmtree(root, ignore_errors=True)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught")
    if survivors:
        print(f"not caught: {', '.join(survivors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
