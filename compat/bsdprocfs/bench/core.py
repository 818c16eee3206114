"""What every bench row shares: the row table and its one direction, the result
row, interleaved timing, and the helper processes."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Every row's ratio is time(A) / time(B): our cost over the reference's for the same
#: work, so lower is better and every goal reads "ratio <= goal".
DIRECTION = "lower is better"
RATIO_IS = "time(A) / time(B): ours over the reference, for the same work"

#: (name, goal): the ratio each row should stay at or under; None = report only.
ROWS: tuple[tuple[str, float | None], ...] = (
    ("status_all_vs_floor", 1.3),
    ("status_all_vs_psutil", 0.4),          # >= 2.5x faster than psutil
    ("map_vs_smaps", 1.2),
    ("etype_osrel_vs_header_read", None),
    ("fuse_status_vs_trivial", 1.5),
    ("fuse_status_vs_kernel", None),
    ("fuse_status_vs_c_floor", 2.0),        # >= 0.5x the compiled libfuse3 daemon's rate
    ("step_vs_raw", 1.67),                  # >= 0.6x the ctypes loop's rate
    ("step_vs_c_loop", 1.67),               # >= 0.6x the compiled C loop's rate
    ("startup_cat_vs_python", 2.5),
    ("startup_ps_vs_procps", 8.0),
)
GOALS = {name: goal for name, goal in ROWS}

PR_SET_PDEATHSIG = 1
MAP_HELPER_MAPPINGS = 2000
ETYPE_BINARIES = 50


@dataclass
class Settings:
    reps: int
    sleepers: int
    fuse_reads: int
    steps: int
    starts: int

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(reps=5, sleepers=200, fuse_reads=300, steps=2000, starts=5)
        return cls(reps=11, sleepers=500, fuse_reads=1000, steps=8000, starts=21)


@dataclass
class Result:
    """One row of the table (and of the JSON): ratio = time(A) / time(B), and the
    two medians ``a`` and ``b`` as times in ``unit`` (per scan, per read, per step)."""

    name: str
    ratio: float | None = None
    a: float | None = None
    b: float | None = None
    unit: str = ""
    a_is: str = ""
    b_is: str = ""
    reason: str | None = None          # why the row was skipped
    notes: list[str] = field(default_factory=list)

    @property
    def goal(self) -> float | None:
        return GOALS[self.name]

    @property
    def met(self) -> bool | None:
        goal = GOALS[self.name]
        if goal is None or self.ratio is None:
            return None
        return self.ratio <= goal

    def as_json(self) -> dict[str, Any]:
        goal = GOALS[self.name]
        return {"ratio": self.ratio, "direction": DIRECTION, "ratio_is": RATIO_IS,
                "goal": goal, "goal_op": "<=" if goal is not None else None, "met": self.met,
                "a": self.a, "b": self.b, "unit": self.unit, "a_is": self.a_is,
                "b_is": self.b_is, "skipped": self.reason, "notes": self.notes}


def skipped(name: str, reason: str) -> Result:
    return Result(name, reason=reason)


# ----------------------------------------------------------------- timing
def _interleave(fns: list[Callable[[], Any]], reps: int) -> list[list[float]]:
    """Run each workload once per repetition, rotating the order; seconds per run."""
    for fn in fns:                     # warm-up: imports, caches, page cache
        fn()
    times: list[list[float]] = [[] for _ in fns]
    clock = time.perf_counter
    for r in range(reps):
        order = list(range(len(fns)))
        k = r % len(fns)
        order = order[k:] + order[:k]
        for i in order:
            t0 = clock()
            fns[i]()
            times[i].append(clock() - t0)
    return times


def _ratio(num: list[float], den: list[float]) -> float:
    """Median of the per-repetition ratios (robust to load that drifts between reps)."""
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


# ----------------------------------------------------------------- helpers
def _pdeathsig() -> None:
    """preexec_fn: the helper dies with the bench, even on SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Helpers:
    """Every process the bench starts; all are killed and reaped on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, preexec_fn=_pdeathsig, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError):
                p.kill()
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(10)
            for s in (p.stdin, p.stdout, p.stderr):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()
        self.procs.clear()


def _wait_ready(p: subprocess.Popen[bytes]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"helper {p.pid} did not start: {line!r}")




def compile_c(source: str, name: str, directory: str, libs: tuple[str, ...] = ()) -> str:
    """Build a C floor with gcc -O2 in ``directory``; raises RuntimeError (the row's
    skip reason) when there is no compiler or the build fails."""
    import os
    import shutil
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc) to build the floor")
    src, exe = os.path.join(directory, name + ".c"), os.path.join(directory, name)
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run([cc, "-O2", "-o", exe, src, *libs], capture_output=True, text=True)
    if r.returncode:
        first = (r.stderr.strip().splitlines() or ["?"])[0]
        raise RuntimeError(f"building the C floor failed: {first}")
    return exe
