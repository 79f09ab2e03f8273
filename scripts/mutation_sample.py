"""Sampled mutation testing: mutmut's mutants, a seeded sample, a fast test subset per mutant.

`scripts/mutation_check.py` plants bugs its authors chose; this script lets a standard tool
choose them. It asks mutmut (`mutmut.mutation.file_mutation.create_mutations`, the same
operators `mutmut run` applies: numbers, strings, comparisons, boolean and arithmetic
operators, keywords, arguments dropped, calls replaced by None, ...) for every mutant of the
chosen modules, draws `--sample` of them with `--seed`, and for each one writes the mutated
module into a scratch copy of the repository and runs a fast subset of the tests (`-x`, a
timeout per mutant). A mutant is *killed* when the tests fail or time out, *survives* when they
pass. The score is killed / sampled; every survivor is printed with its diff, for triage in
`docs/mutation_triage.md`.

    python scripts/mutation_sample.py --sample 30 --seed 1
    python scripts/mutation_sample.py --modules _session.py,_branches.py --sample 20 --seed 2
    python scripts/mutation_sample.py --list                     # count the mutants per module
    python scripts/mutation_sample.py --sample 5 --tests "tests/test_api.py"

One worker, sequential: the machine is shared.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = "langgraph_speculative"

# Modules nobody is rewriting right now (see issue #27); pass --modules for the others
# (_session.py, _branches.py, _lifecycle.py, _threads.py, agents/_engine.py, agents/_speculate.py).
DEFAULT_MODULES = [
    "_keys.py",
    "_guesses.py",
    "_state.py",
    "_plan.py",
    "_compile.py",
    "agents/_runs.py",
    "agents/_calls.py",
    "agents/_patterns.py",
]

# A fast, broad subset: API and agents unit tests, the oracle's domain property, the conformance
# cases in memory (sync), the lossless regression seeds. About a minute on an idle machine.
DEFAULT_TESTS = (
    "tests/test_api.py tests/test_agents.py tests/test_agents_patterns.py "
    "tests/test_oracle_properties.py tests/test_lossless.py::test_lossless_regression_seeds "
    "tests/test_conformance.py -k 'not postgres and not async'"
)


@dataclass
class Mutant:
    module: str
    index: int  # among the module's mutants
    line: int
    diff: str
    code: str  # the whole mutated module

    @property
    def name(self) -> str:
        return f"{self.module}#{self.index}"


def mutants_of(module: str) -> list[Mutant]:
    """Every mutant mutmut makes of `module` (a path under the library)."""
    from mutmut.mutation.file_mutation import create_mutations

    path = os.path.join(ROOT, LIB, module)
    with open(path) as f:
        code = f.read()
    tree, mutations, _, _ = create_mutations(path, code)
    out = []
    for i, m in enumerate(mutations):
        mutated = tree.deep_replace(m.original_node, m.mutated_node).code  # type: ignore[arg-type,attr-defined]
        lines = list(difflib.unified_diff(code.splitlines(), mutated.splitlines(), lineterm="", n=0))
        if not lines:
            continue
        hunk = next((ln for ln in lines if ln.startswith("@@")), "@@ -0 @@")
        line = int(hunk.split()[1].lstrip("-").split(",")[0])
        out.append(Mutant(module, i, line, "\n".join(lines[2:]), mutated))
    return out


def run_tests(workdir: str, tests: str, timeout: float) -> tuple[str, float]:
    """'killed', 'timeout' or 'survived', and the seconds it took."""
    start = time.monotonic()
    cmd = f"{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            cmd, shell=True, cwd=workdir, env=env, timeout=timeout, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    return ("survived" if proc.returncode == 0 else "killed"), time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", default=",".join(DEFAULT_MODULES), help="comma-separated, under the library")
    p.add_argument("--sample", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tests", default=DEFAULT_TESTS, help="pytest arguments run against each mutant")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (a timeout kills)")
    p.add_argument("--list", action="store_true", help="count the mutants per module and stop")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    os.chdir(ROOT)  # mutmut reads its configuration ([tool.mutmut] in pyproject.toml) from here
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    everything: list[Mutant] = []
    for module in modules:
        ms = mutants_of(module)
        print(f"{module}: {len(ms)} mutants")
        everything += ms
    if args.list:
        print(f"total: {len(everything)}")
        return 0
    rnd = random.Random(args.seed)
    sample = rnd.sample(everything, min(args.sample, len(everything)))
    print(f"sampled {len(sample)} of {len(everything)} (seed {args.seed}); tests: {args.tests}", flush=True)

    with tempfile.TemporaryDirectory(prefix="lgs-mut-") as tmp:
        work = os.path.join(tmp, "repo")
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "mutants"))
        verdict, secs = run_tests(work, args.tests, args.timeout * 2)
        print(f"baseline: {verdict} in {secs:.0f}s", flush=True)
        if verdict != "survived":
            print("the tests fail without any mutant: fix that first", file=sys.stderr)
            return 2
        results = []
        for n, m in enumerate(sample, 1):
            target = os.path.join(work, LIB, m.module)
            with open(target) as f:
                original = f.read()
            with open(target, "w") as f:
                f.write(m.code)
            try:
                verdict, secs = run_tests(work, args.tests, args.timeout)
            finally:
                with open(target, "w") as f:
                    f.write(original)
            results.append({"mutant": m.name, "line": m.line, "verdict": verdict, "diff": m.diff})
            print(f"[{n}/{len(sample)}] {m.name} line {m.line}: {verdict} ({secs:.0f}s)", flush=True)

    killed = sum(r["verdict"] != "survived" for r in results)
    print(f"\nmutation score: {killed}/{len(results)} killed ({100 * killed / max(1, len(results)):.0f}%)")
    for r in results:
        if r["verdict"] == "survived":
            print(f"\nSURVIVED {r['mutant']} (line {r['line']}):\n{r['diff']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
