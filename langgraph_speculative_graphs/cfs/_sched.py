"""sched_setattr / sched_getattr through ctypes (Linux): a thread's time slice.

On EEVDF kernels (6.12+) `sched_runtime` of a SCHED_OTHER task is its
requested time slice (the kernel clamps it to 0.1-100 ms); 0 means the
default. Setting it on your own threads needs no privilege.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ("SLICE_MAX_MS", "SLICE_MIN_MS", "get_slice_ns", "set_slice_ns", "supported")

SLICE_MIN_MS, SLICE_MAX_MS = 0.1, 100.0
_NR = {"x86_64": (314, 315), "aarch64": (274, 275)}  # (sched_setattr, sched_getattr)
SCHED_OTHER = 0


class _Attr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _nr() -> tuple[int, int]:
    machine = platform.machine()
    if machine not in _NR:
        raise OSError(f"sched_setattr: unsupported architecture {machine}")
    return _NR[machine]


def get_attr(tid: int) -> _Attr:
    attr = _Attr()
    if _libc().syscall(_nr()[1], tid, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sched_getattr({tid}): {os.strerror(err)}")
    return attr


def get_slice_ns(tid: int) -> int:
    """The thread's requested slice in ns (0 = the kernel's default)."""
    return int(get_attr(tid).sched_runtime)


def set_slice_ns(tid: int, ns: int) -> None:
    """Request a time slice of `ns` for a SCHED_OTHER thread, keeping its nice value."""
    cur = get_attr(tid)
    attr = _Attr(
        size=ctypes.sizeof(_Attr), sched_policy=SCHED_OTHER, sched_nice=cur.sched_nice, sched_runtime=ns
    )
    if _libc().syscall(_nr()[0], tid, ctypes.byref(attr), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sched_setattr({tid}, slice={ns} ns): {os.strerror(err)}")


def supported() -> str | None:
    """None if per-thread slices work here, else why not (one line)."""
    if platform.system() != "Linux":
        return "per-task slices need Linux"
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return f"cannot read the kernel version from {platform.release()!r}"
    if (major, minor) < (6, 12):
        return f"kernel {platform.release()} < 6.12 has no per-task slice (EEVDF sched_runtime)"
    try:
        tid = ctypes.CDLL(None).syscall(186 if platform.machine() == "x86_64" else 178)  # gettid
        before = get_slice_ns(tid)
        set_slice_ns(tid, 3_000_000)
        got = get_slice_ns(tid)
        set_slice_ns(tid, before)
    except OSError as exc:
        return f"sched_setattr refused: {exc}"
    if got != 3_000_000:
        return f"sched_setattr did not keep the slice (read back {got} ns)"
    return None
