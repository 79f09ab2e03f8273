"""A run's `max_concurrency`, shared by its main run and its speculation.

A user who sets `max_concurrency` (often to respect a provider's rate limit) gets at most that many
calls at once, speculative ones included. The main run comes first: speculative work starts only
in room the main run leaves, and when the main run needs room that speculation holds, the newest
speculative calls are cancelled to make it.
"""

from __future__ import annotations

import threading

__all__ = ("SharedLimit",)


class SharedLimit:
    """Calls in flight against a run's `max_concurrency` (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.main = 0
        self.speculative = 0
        self.peak = 0
        self._lock = threading.Lock()

    def main_started(self) -> int:
        """A main-run call starts (it always may); how many speculative calls must stop to
        make room for it."""
        with self._lock:
            self.main += 1
            self.peak = max(self.peak, self.main + self.speculative)
            if self.limit is None:
                return 0
            return max(0, self.main + self.speculative - self.limit)

    def main_ended(self) -> None:
        with self._lock:
            self.main -= 1

    def try_speculative(self) -> bool:
        """Take room for one speculative call, if the main run leaves some."""
        with self._lock:
            if self.limit is not None and self.main + self.speculative >= self.limit:
                return False
            self.speculative += 1
            self.peak = max(self.peak, self.main + self.speculative)
            return True

    def speculative_ended(self) -> None:
        with self._lock:
            self.speculative -= 1
