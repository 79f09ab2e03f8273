"""deepagents fakes for tests/test_stacks.py and benchmarks/stacks.py: its state backend with a
disk's latency, recording what ran early."""

from __future__ import annotations

import time
from typing import Any

from deepagents.backends import StateBackend
from langgraph.config import get_config


class SlowState(StateBackend):
    """deepagents' state backend (the agent's files live in its `files` state) with a disk's
    latency, recording every read and write and whether it ran early (in a prefetch)."""

    def __init__(self, latency: float = 0.3) -> None:
        super().__init__()
        self.latency = latency
        self.log: list[tuple[str, bool]] = []

    def _note(self, op: str) -> None:
        early = bool((get_config().get("metadata") or {}).get("speculative"))
        self.log.append((op, early))
        time.sleep(self.latency)

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> Any:
        self._note("read")
        return super().read(file_path, offset, limit)

    def ls(self, path: str) -> Any:
        self._note("ls")
        return super().ls(path)

    def grep(self, *a: Any, **k: Any) -> Any:
        self._note("grep")
        return super().grep(*a, **k)

    def glob(self, pattern: str, path: str | None = None) -> Any:
        self._note("glob")
        return super().glob(pattern, path)

    def write(self, *a: Any, **k: Any) -> Any:
        self._note("write")
        return super().write(*a, **k)

    def edit(self, *a: Any, **k: Any) -> Any:
        self._note("edit")
        return super().edit(*a, **k)
