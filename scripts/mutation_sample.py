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
    python scripts/mutation_sample.py --only "_keys.py#12,_session.py#40"  # re-run named mutants
    python scripts/mutation_sample.py --sample 30 --seed 1 --show      # the drawn diffs, no tests

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

# The core (the session, its branches and their lifecycle, the guessing loop, the adoption key),
# the agents engine, and the modules around them.
DEFAULT_MODULES = [
    "_session.py",
    "_branches.py",
    "_lifecycle.py",
    "_guessing.py",
    "_keys.py",
    "_guesses.py",
    "_state.py",
    "_plan.py",
    "_compile.py",
    "agents/_engine.py",
    "agents/_runs.py",
    "agents/_calls.py",
    "agents/_patterns.py",
]

# A fast subset per area (one pytest run, `-x`, the quickest killers first), about 40-60 s a
# mutant on the shared 2-core machine. The graph-level core is checked by the differential
# oracle's properties, the API, the adoption key, the no-double-run and tool-gate checks; the
# agents modules by the agents tests. `--tests` replaces both.
CORE_TESTS = (
    "tests/test_mutation_kills.py tests/test_api.py tests/test_no_double_run.py tests/test_tool_gates.py "
    "tests/test_keys.py tests/test_oracle_properties.py tests/test_prefetch.py tests/test_streaming.py "
    "tests/test_shedding.py"
)
AGENTS_TESTS = (
    "tests/test_mutation_kills.py tests/test_agents_patterns.py tests/test_agents_hitl.py "
    "tests/test_agents.py tests/test_agents_graph.py"
)


def tests_for(module: str) -> str:
    """The default test subset a mutant of `module` is run against."""
    return AGENTS_TESTS if module.startswith("agents/") else CORE_TESTS


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


class Module:
    """One module's mutations, as mutmut makes them; a mutant's code is built only when drawn."""

    def __init__(self, module: str) -> None:
        from mutmut.mutation.file_mutation import create_mutations

        self.module = module
        path = os.path.join(ROOT, LIB, module)
        with open(path) as f:
            self.source = f.read()
        self.tree, self.mutations, _, _ = create_mutations(path, self.source)

    def mutant(self, index: int) -> Mutant | None:
        """The mutant `index`, or None when it does not change the source."""
        m = self.mutations[index]
        mutated = self.tree.deep_replace(m.original_node, m.mutated_node).code  # type: ignore[arg-type,attr-defined]
        lines = list(difflib.unified_diff(self.source.splitlines(), mutated.splitlines(), lineterm="", n=0))
        if not lines:
            return None
        hunk = next((ln for ln in lines if ln.startswith("@@")), "@@ -0 @@")
        line = int(hunk.split()[1].lstrip("-").split(",")[0])
        return Mutant(self.module, index, line, "\n".join(lines[2:]), mutated)


def run_tests(workdir: str, tests: str, timeout: float, seed: int) -> tuple[str, float]:
    """'killed', 'timeout' or 'survived', and the seconds it took."""
    start = time.monotonic()
    cmd = f"{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}"
    # One hypothesis seed for the baseline and every mutant: a verdict is reproducible.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LGS_SEED": str(seed)}
    try:
        proc = subprocess.run(
            cmd, shell=True, cwd=workdir, env=env, timeout=timeout, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    return ("survived" if proc.returncode == 0 else "killed"), time.monotonic() - start


def draw(modules: dict[str, Module], sample: int, seed: int) -> list[Mutant]:
    """`sample` mutants drawn with `seed` among every mutant of `modules` (no-op mutants redrawn)."""
    ids = [(name, i) for name, mod in modules.items() for i in range(len(mod.mutations))]
    order = random.Random(seed).sample(ids, len(ids))
    out: list[Mutant] = []
    for name, i in order:
        if len(out) == sample:
            break
        m = modules[name].mutant(i)
        if m is not None:
            out.append(m)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", default=",".join(DEFAULT_MODULES), help="comma-separated, under the library")
    p.add_argument("--sample", type=int, default=30)
    p.add_argument("--seed", type=int, default=1, help="draws the sample and seeds hypothesis (LGS_SEED)")
    p.add_argument("--tests", help="pytest arguments run against every mutant (default: a subset per area)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per mutant (a timeout kills)")
    p.add_argument("--only", help="comma-separated mutant names (module#index) to run instead of a sample")
    p.add_argument("--show", action="store_true", help="print the drawn mutants' diffs and stop")
    p.add_argument("--list", action="store_true", help="count the mutants per module and stop")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    os.chdir(ROOT)  # mutmut reads its configuration ([tool.mutmut] in pyproject.toml) from here
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        names = list(dict.fromkeys(n.split("#")[0] for n in wanted))
    else:
        wanted = []
        names = [m.strip() for m in args.modules.split(",") if m.strip()]
    modules = {name: Module(name) for name in names}
    for name, mod in modules.items():
        print(f"{name}: {len(mod.mutations)} mutants")
    total = sum(len(mod.mutations) for mod in modules.values())
    if args.list:
        print(f"total: {total}")
        return 0
    if wanted:
        sample = [m for n in wanted if (m := modules[n.split("#")[0]].mutant(int(n.split("#")[1])))]
        print(f"running {len(sample)} named mutants", flush=True)
    else:
        sample = draw(modules, args.sample, args.seed)
        print(f"sampled {len(sample)} of {total} (seed {args.seed})", flush=True)
    if args.show:
        for m in sample:
            print(f"\n{m.name} (line {m.line}):\n{m.diff}")
        return 0

    with tempfile.TemporaryDirectory(prefix="lgs-mut-") as tmp:
        work = os.path.join(tmp, "repo")
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "mutants"))
        subsets = sorted({args.tests or tests_for(m.module) for m in sample})
        for tests in subsets:
            verdict, secs = run_tests(work, tests, args.timeout * 2, args.seed)
            print(f"baseline ({tests}): {verdict} in {secs:.0f}s", flush=True)
            if verdict != "survived":
                print("the tests fail without any mutant: fix that first", file=sys.stderr)
                return 2
        results = []
        start = time.monotonic()
        for n, m in enumerate(sample, 1):
            target = os.path.join(work, LIB, m.module)
            with open(target) as f:
                original = f.read()
            with open(target, "w") as f:
                f.write(m.code)
            try:
                verdict, secs = run_tests(work, args.tests or tests_for(m.module), args.timeout, args.seed)
            finally:
                with open(target, "w") as f:
                    f.write(original)
            results.append({"mutant": m.name, "line": m.line, "verdict": verdict, "diff": m.diff})
            print(f"[{n}/{len(sample)}] {m.name} line {m.line}: {verdict} ({secs:.0f}s)", flush=True)
        elapsed = time.monotonic() - start

    killed = sum(r["verdict"] != "survived" for r in results)
    print(
        f"\nmutation score: {killed}/{len(results)} killed ({100 * killed / max(1, len(results)):.0f}%)"
        f" in {elapsed / 60:.1f} min"
    )
    for r in results:
        if r["verdict"] == "survived":
            print(f"\nSURVIVED {r['mutant']} (line {r['line']}):\n{r['diff']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
