"""The README's runnable examples: they run offline, commit the plain result, and adopt."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_runs_and_adopts_what_a_guess_started() -> None:
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "The capital of Japan is Tokyo." in out.stdout
    assert "same result: True" in out.stdout
    adopted = re.search(r"calls adopted (\d+)", out.stdout)
    assert adopted and int(adopted.group(1)) == 2, out.stdout  # lookup and answer, from the branch


def test_readme_quickstart_snippet_runs_as_pasted(tmp_path: object) -> None:
    """The README's Quickstart code block, pasted into a file, answers and adopts."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Quickstart", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    path = os.path.join(str(tmp_path), "quickstart.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(code)
    out = subprocess.run(
        [sys.executable, path], capture_output=True, text=True, timeout=60, cwd=str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The capital of Japan is Tokyo."), out.stdout
    adopted = re.search(r"calls adopted (\d+)", out.stdout)
    assert adopted and int(adopted.group(1)) == 2, out.stdout  # lookup and answer, from the branch
