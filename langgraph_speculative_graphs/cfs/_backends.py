"""Knob backends for the scheduler-tuning loop, each with its own measurement.

- `SliceBackend`: the per-thread time slice (`sched_runtime` of SCHED_OTHER
  threads on EEVDF kernels >= 6.12, via sched_setattr) applied to a real
  `sysbench cpu` workload pinned to few cores; p95 from sysbench's per-second
  reports.
- `DebugfsBackend`: the global knob in debugfs (`base_slice_ns` on EEVDF,
  `min_granularity_ns` on CFS), root only, same workload.
- `SimBackend`: a SIMULATED plant for tests and machines without the knob
  (no kernel involved): the p95 of N CPU-bound threads of event time d
  sharing one core with slice s, fitted to what the slice backend measured
  here, plus noise.

Every backend restores the original value on exit: normal, error, or Ctrl-C
(use it as a context manager).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from typing import Any

from ._sched import SLICE_MAX_MS, SLICE_MIN_MS, get_slice_ns, set_slice_ns, supported

__all__ = (
    "BACKENDS",
    "DebugfsBackend",
    "SimBackend",
    "SliceBackend",
    "SysbenchWorkload",
    "fit_event_ms",
    "make_backend",
)

P95 = re.compile(r"lat \(ms,95%\): ([\d.]+)")
REPORT_S = 1.0
"""sysbench's report interval (`--report-interval=1`): each report covers the second before it."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The workload ends with the tuner, even if the tuner is killed (Linux: PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class SysbenchWorkload:
    """`sysbench cpu` with `threads` threads pinned to `cpus`, reporting every second."""

    def __init__(
        self, threads: int = 4, cpus: str = "0", max_prime: int = 60000, duration_s: int = 3600
    ) -> None:
        self.nthreads = threads
        self.cmd = [
            "taskset", "-c", cpus, "sysbench", "cpu", f"--threads={threads}", f"--cpu-max-prime={max_prime}",
            f"--time={duration_s}", "--report-interval=1", "run",
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.reports: list[tuple[float, float]] = []  # (monotonic time, p95 ms)
        self._reader: threading.Thread | None = None

    @staticmethod
    def missing() -> str | None:
        """None if sysbench and taskset are installed, else what to install."""
        for exe, pkg in (("sysbench", "sysbench"), ("taskset", "util-linux")):
            if shutil.which(exe) is None:
                return f"{exe} not found: apt-get install {pkg}"
        return None

    def start(self) -> None:
        """Start the workload and wait for its first report, so that a setting applied now is
        measured by whole report intervals from the next one on (the first second, sysbench's
        start-up at the default slice, is never a window's measurement)."""
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, name="sysbench-reader", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 5
        while (len(self.threads()) < 2 or not self.reports) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            m = P95.search(line)
            if m:
                self.reports.append((time.monotonic(), float(m.group(1))))

    def threads(self) -> list[int]:
        """Thread ids of the running workload."""
        if self.proc is None:
            return []
        try:
            return sorted(int(t) for t in os.listdir(f"/proc/{self.proc.pid}/task"))
        except FileNotFoundError:
            return []

    async def p95_after(self, since: float, timeout: float = 3.0) -> float | None:
        """The latest per-second p95 reported after `since` (monotonic), waiting for one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [p for t, p in self.reports if t > since]
            if fresh:
                return fresh[-1]
            await asyncio.sleep(0.05)
        return None

    async def measure(self, window_s: float) -> float | None:
        """p95 over a window that starts now: a report whose one-second interval began at most
        0.1 s before now (`REPORT_S`), so at most a tenth of it saw the previous setting. In a loop
        that applies its setting right after a measurement that is the next report; otherwise
        the one after."""
        since = time.monotonic()
        await asyncio.sleep(window_s)
        return await self.p95_after(since + 0.9 * REPORT_S)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(2)


class _Backend:
    name = ""
    low, high = SLICE_MIN_MS, SLICE_MAX_MS
    """Allowed range of the setting (ms)."""

    def clamp(self, value: float) -> float:
        return min(self.high, max(self.low, float(value)))

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None: ...
    def apply(self, setting_ms: float) -> None: ...
    async def measure(self, window_s: float) -> float | None: ...
    def close(self) -> None: ...


class SliceBackend(_Backend):
    """Per-thread slices of a real sysbench workload (or of given `pids`' threads)."""

    name = "slice"

    def __init__(self, workload: SysbenchWorkload | None = None, pids: list[int] | None = None,
                 high_ms: float = 30.0) -> None:  # fmt: skip
        self.workload = workload if workload is not None or pids else SysbenchWorkload()
        self.pids = pids
        self.high = high_ms
        self.original: dict[int, int] = {}

    @staticmethod
    def unusable() -> str | None:
        why = supported()
        if why:
            return f"slice backend: {why}; use --backend sim"
        missing = SysbenchWorkload.missing()
        return f"slice backend: {missing}, or use --backend sim" if missing else None

    def _tids(self) -> list[int]:
        if self.pids:
            return [int(t) for p in self.pids for t in os.listdir(f"/proc/{p}/task")]
        return self.workload.threads() if self.workload else []

    def start(self) -> None:
        if self.workload is not None and self.workload.proc is None:
            self.workload.start()
        self.original = {tid: get_slice_ns(tid) for tid in self._tids()}

    def apply(self, setting_ms: float) -> None:
        for tid in self._tids():
            self.original.setdefault(tid, get_slice_ns(tid))
            try:
                set_slice_ns(tid, int(self.clamp(setting_ms) * 1e6))
            except OSError:
                pass  # the thread ended

    async def measure(self, window_s: float) -> float | None:
        assert self.workload is not None
        return await self.workload.measure(window_s)

    def restore(self) -> None:
        for tid, ns in self.original.items():
            try:
                set_slice_ns(tid, ns)
            except OSError:
                pass  # the thread ended

    def close(self) -> None:
        try:
            self.restore()
        finally:
            if self.workload is not None and not self.pids:
                self.workload.stop()


class DebugfsBackend(_Backend):
    """The global slice knob in debugfs (root only), on a real sysbench workload."""

    name = "debugfs"
    PATHS = ("/sys/kernel/debug/sched/base_slice_ns", "/sys/kernel/debug/sched/min_granularity_ns")

    def __init__(self, workload: SysbenchWorkload | None = None, high_ms: float = 30.0) -> None:
        self.workload = workload or SysbenchWorkload()
        self.path = next((p for p in self.PATHS if os.path.exists(p)), self.PATHS[0])
        self.high = high_ms
        self.original: str | None = None

    @classmethod
    def unusable(cls) -> str | None:
        path = next((p for p in cls.PATHS if os.path.exists(p)), None)
        if path is None:
            return (
                "debugfs backend: no sched knob under /sys/kernel/debug/sched (debugfs not mounted); "
                "use --backend slice"
            )
        if not os.access(path, os.W_OK):
            return f"debugfs backend: {path} is not writable (root only); use --backend slice"
        return SysbenchWorkload.missing()

    def start(self) -> None:
        with open(self.path) as f:
            self.original = f.read().strip()
        self.workload.start()

    def apply(self, setting_ms: float) -> None:
        with open(self.path, "w") as f:
            f.write(str(int(self.clamp(setting_ms) * 1e6)))

    async def measure(self, window_s: float) -> float | None:
        return await self.workload.measure(window_s)

    def close(self) -> None:
        try:
            if self.original is not None:
                with open(self.path, "w") as f:
                    f.write(self.original)
        finally:
            self.workload.stop()


class SimBackend(_Backend):
    """A SIMULATED plant (documented as such): no kernel, no workload.

    p95 of `threads` CPU-bound threads with event time `event_ms` sharing one
    core at slice s: events interleave (p95 ~ threads x d) while s < d; an event
    that spans a preemption waits about (threads-1) x s more (x `preempt`),
    which p95 sees while more than 5% of events do (s < 20 d); tiny slices pay
    a switching cost. A window takes `lag` longer than asked, as the real loop
    does (it waits for sysbench's next report). Fitted to `sysbench cpu` under
    the slice backend (4 threads, max-prime 60000) on this repository's
    machine: p95 14.7 ms at <= 3.75 ms, 26.7 ms at 7.5 ms, 51 ms at 15 ms,
    99 ms at 30 ms, so d = 3.7 ms and `preempt` = 1.05. `event_ms` is
    host-specific: `fit_event_ms` fits it to your machine's plant and
    `scripts/cfs_sim_check.py` compares the sim's ratios with the real ones.
    `speed` > 1 runs windows faster than real time.
    """

    name = "sim"

    def __init__(self, threads: int = 4, event_ms: float = 3.7, noise: float = 0.05, seed: int = 0,
                 speed: float = 1.0, high_ms: float = 30.0, preempt: float = 1.05,
                 lag: float = 0.03) -> None:  # fmt: skip
        self.threads, self.event_ms, self.noise, self.speed = threads, event_ms, noise, speed
        self.preempt, self.lag = preempt, lag
        self.high = high_ms
        self.rng = random.Random(seed)
        self.setting = 3.0
        self.original = self.setting

    def p95(self, s: float) -> float:
        d, n = self.event_ms, self.threads
        base = n * d if s < d else d + self.preempt * (n - 1) * s if s < 20 * d else d
        return base + 0.5 / s

    def apply(self, setting_ms: float) -> None:
        self.setting = self.clamp(setting_ms)

    async def measure(self, window_s: float) -> float | None:
        await asyncio.sleep(window_s * (1 + self.lag) / self.speed)
        return round(self.p95(self.setting) * (1 + self.rng.gauss(0, self.noise)), 3)

    def close(self) -> None:
        self.setting = self.original


async def fit_event_ms(knob: _Backend, windows: int = 5, setting_ms: float = 1.0) -> float | None:
    """The sim's `event_ms` fitted to a real plant: the median p95 at a 1 ms slice over
    `windows` one-second windows, divided by the workload's threads (None if nothing was measured).
    Call it with the backend started (`with knob:`)."""
    knob.apply(setting_ms)
    await knob.measure(1.0)  # let the change settle
    seen = [p for p in [await knob.measure(1.0) for _ in range(windows)] if p is not None]
    workload = getattr(knob, "workload", None)
    threads = (
        4
        if workload is None
        else int(next(a for a in workload.cmd if a.startswith("--threads=")).split("=")[1])
    )
    return round(statistics.median(seen) / threads, 3) if seen else None


BACKENDS = ("slice", "debugfs", "sim")


def make_backend(name: str, **kwargs: Any) -> _Backend:
    """A backend by name; raises ValueError with one line saying why and what to use instead."""
    if name == "sim":
        return SimBackend(**kwargs)
    if name == "slice":
        why = SliceBackend.unusable()
        if why:
            raise ValueError(why)
        return SliceBackend(**kwargs)
    if name == "debugfs":
        why = DebugfsBackend.unusable()
        if why:
            raise ValueError(why)
        return DebugfsBackend(**kwargs)
    raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
