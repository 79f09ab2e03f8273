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
