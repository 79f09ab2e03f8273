"""How much speculative work a process may have in flight, and when it should shed it.

Every branch and every call launched early takes one slot of its run's budget
(`SpeculationPolicy.max_inflight`) and one of the process's (`set_process_budget`), before it is
created, so both are hard bounds at every instant. When several runs share the process and it is
busy (its Python work uses over 0.6 of a core), new speculation is shed: speculative work would then
be paid for by the other runs' main work, so a busy server is never slower for speculating.
The load is the process's CPU time per wall second (all threads), smoothed over about 50 ms.
A run that starts while the process is busy does not speculate at all (`shed_run`): it runs as
the plain graph, at the plain graph's cost.
"""

from __future__ import annotations

import math
import os
import threading
import time

__all__ = ("ProcessBudget", "process_budget", "set_process_budget")

_MIN_SAMPLE_S = 0.005  # the load is re-read at most this often
_SMOOTHING_S = 0.05  # and averaged over about this long
_BURST_S = 0.01  # a second average, over about this long: a burst of work
_BURST_CORES = 0.9  # at which a run that starts does not speculate


class ProcessBudget:
    """Slots for speculative work across all runs of this process, and the load it sheds at."""

    def __init__(self, limit: int, busy: float) -> None:
        self.limit = limit
        self.busy = busy
        self.inflight = 0
        self.active_runs = 0
        self._lock = threading.Lock()
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._load = 0.0
        self._burst = 0.0

    def acquire(self) -> str | None:
        """Take a slot; None on success, else why not ("budget" or "busy")."""
        with self._lock:
            if self.inflight >= self.limit:
                return "budget"
            if self._busy():
                return "busy"
            self.inflight += 1
            return None

    def shedding(self) -> bool:
        """Is the process busy enough, with other runs, that new speculation should not start?"""
        with self._lock:
            return self._busy()

    def shed_run(self) -> bool:
        """A run starts: count it, and say whether it should run without speculating (True when
        other runs are active and the process is busy, or has been saturated for the last 20 ms
        or so: many runs arriving at once). End it with `run_ended` either way."""
        with self._lock:
            self.active_runs += 1
            return self._busy() or (self.active_runs > 1 and self._burst >= _BURST_CORES)

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.inflight = max(0, self.inflight - 1)

    def run_ended(self) -> None:
        with self._lock:
            self.active_runs = max(0, self.active_runs - 1)

    def _busy(self) -> bool:
        """Other runs are active and the process is busy (the lock held)."""
        return self.active_runs > 1 and self._sample() >= self.busy

    def _sample(self) -> float:
        """The process's CPU use, in cores, averaged exponentially over about the last 50 ms:
        50 ms of a full core after a quiet spell reads as 0.63 of a core, and a window longer
        than that (no run asked in between) as its own average."""
        now, cpu = time.monotonic(), time.process_time()
        elapsed = now - self._wall
        if elapsed >= _MIN_SAMPLE_S:
            load = (cpu - self._cpu) / elapsed
            self._load += (load - self._load) * (1.0 - math.exp(-elapsed / _SMOOTHING_S))
            self._burst += (load - self._burst) * (1.0 - math.exp(-elapsed / _BURST_S))
            self._wall, self._cpu = now, cpu
        return self._load


_BUDGET = ProcessBudget(
    limit=int(os.environ.get("LGS_PROCESS_BUDGET", "256")),
    busy=float(os.environ.get("LGS_BUSY_CORES", "0.6")),
)


def process_budget() -> ProcessBudget:
    """The process-wide budget every speculative run draws from."""
    return _BUDGET


def set_process_budget(limit: int | None = None, *, busy: float | None = None) -> None:
    """Set the process-wide bound on speculative work in flight (default 256, env
    `LGS_PROCESS_BUDGET`) and the load, in cores of Python work, above which concurrent runs
    shed new speculation (default 0.6, env `LGS_BUSY_CORES`; `float("inf")` never sheds).

    Well under one core, because a speculating run can take two to three times a plain run's
    CPU (its branches run the graph ahead; `benchmarks/load.py`, k=1), so a process much above
    half a core would saturate the interpreter the other runs need if it speculated."""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"set_process_budget(limit={limit!r}): use a whole number >= 0")
        _BUDGET.limit = limit
    if busy is not None:
        if not isinstance(busy, (int, float)) or busy <= 0:
            raise ValueError(f"set_process_budget(busy={busy!r}): use a positive number of cores")
        _BUDGET.busy = float(busy)
