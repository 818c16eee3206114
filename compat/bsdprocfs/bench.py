"""``bsdprocfs bench``: every benchmark as a ratio measured side by side in one run.

Each row times two workloads, A and B, in interleaved repetitions (A B, B A,
A B, ...: load drift hits both), and reports the median of the per-repetition
ratios plus the median of each side.  Nothing here asserts a speed; the table
says whether each goal was met on this machine, now.

Rows (``a``/``b`` in the JSON are the two medians, in the row's ``unit``):

* ``status_all_vs_floor``: ratio = t(A)/t(B); A = ``ProcFS.read(pid, "status")`` for
  every pid in /proc; B = the floor: the very same open/read/close, stat and listdir
  calls on the Linux files the backend touched for those pids, recorded from the
  backend itself (deduplicated per pid), with no parsing.  Unit ms per scan.
* ``status_all_vs_psutil``: ratio = t(psutil)/t(ours) for the same facts; A =
  ``psutil.process_iter`` with ppid, name, create_time, cpu_times, uids, gids,
  terminal, plus, per process, the cheapest raw call a psutil user makes for each
  status fact psutil has no API for: ``os.getpgid`` and ``os.getsid`` (pgid, sid),
  ``getsid`` of the leader (sid 0 once it is gone; no zombie check, so cheaper than
  ours), a read of /proc/PID/status (supplementary groups: ``gids()`` is only
  real/effective/saved), of /proc/PID/wchan (wmesg) and a readlink of ns/uts
  (jail); B = ours.  The notes also give the ratio for psutil's own attrs +
  getpgid/getsid alone, which leaves wmesg, groups, jail and the leader out.
  ms per scan.
* ``map_vs_smaps``: ratio = t(A)/t(B); A = ``ProcFS.read(pid, "map")`` of a helper
  with 2,000 extra mappings, B = a raw read of its /proc/PID/smaps.  ms per read.
* ``etype_osrel_vs_header_read``: A = etype + osrel of 50 distinct binaries through
  the backend's ELF path with a fresh backend (cold brand cache) per repetition,
  B = reading the first 4 KiB of each.  ms per 50 binaries.  Report only.
* ``fuse_status_vs_trivial``: ratio = rate(trivial)/rate(status); A = open+read+close
  of MNT/PID/status, B = of a constant file on the same mount.  reads/s.
* ``fuse_status_vs_kernel``: A = MNT/PID/status, B = the kernel's /proc/PID/status;
  ratio = rate(kernel)/rate(fuse).  reads/s.  Report only.
* ``step_vs_raw``: ratio = rate(A)/rate(B); A = single steps through the API (an
  open ctl handle: ``step``, which returns once the step trapped), B = raw
  PTRACE_SINGLESTEP + waitpid from ctypes (``ptrace.raw.raw_step_rate``), each on its
  own spinner process.  steps/s.

``--json FILE`` writes ``{row: {"ratio", "goal", "goal_op", "met", "a", "b", "unit",
"a_is", "b_is", "skipped", "notes"}}``; goal/goal_op/met are null for report-only
rows, and a skipped row (FUSE or ptrace unavailable) has ratio/a/b/met null and its
reason in "skipped".

Every helper process, mount and temp file is created here and removed before
the command returns (helpers also die with us via PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: (name, goal, op): op "<=" means smaller ratios are better.
ROWS: tuple[tuple[str, float | None, str | None], ...] = (
    ("status_all_vs_floor", 1.5, "<="),
    ("status_all_vs_psutil", 2.0, ">="),
    ("map_vs_smaps", 1.5, "<="),
    ("etype_osrel_vs_header_read", None, None),
    ("fuse_status_vs_trivial", 1.5, "<="),
    ("fuse_status_vs_kernel", None, None),
    ("step_vs_raw", 0.6, ">="),
)
GOALS = {name: (goal, op) for name, goal, op in ROWS}

PR_SET_PDEATHSIG = 1
MAP_HELPER_MAPPINGS = 2000
ETYPE_BINARIES = 50


@dataclass
class Settings:
    reps: int
    sleepers: int
    fuse_reads: int
    steps: int

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(reps=5, sleepers=200, fuse_reads=300, steps=2000)
        return cls(reps=11, sleepers=500, fuse_reads=1000, steps=8000)


@dataclass
class Result:
    """One row of the table (and of the JSON)."""

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
        return GOALS[self.name][0]

    @property
    def met(self) -> bool | None:
        goal, op = GOALS[self.name]
        if goal is None or self.ratio is None:
            return None
        return self.ratio <= goal if op == "<=" else self.ratio >= goal

    def as_json(self) -> dict[str, Any]:
        goal, op = GOALS[self.name]
        return {"ratio": self.ratio, "goal": goal, "goal_op": op, "met": self.met,
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


_MAP_HELPER = """
import mmap, sys
ms = []
for i in range({n}):
    # alternating protections keep the kernel from merging neighbours into one VMA
    m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
    if i % 2:
        m[0:1] = b"x"
    ms.append(m)
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.read()
"""


def _wait_ready(p: subprocess.Popen[bytes]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"helper {p.pid} did not start: {line!r}")


# ------------------------------------------------------- status + psutil
class _SyscallLog:
    """Stands in for ``os`` inside backends.linux while one pass records what it does."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.ops: list[list[Any]] = []
        self._fds: dict[int, list[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def open(self, path: str, flags: int, mode: int = 0o777, **kw: Any) -> int:
        op: list[Any] = ["read", path, flags, []]
        self.ops.append(op)
        fd = int(self._real.open(path, flags, mode, **kw))
        self._fds[fd] = op
        return fd

    def read(self, fd: int, n: int) -> bytes:
        op = self._fds.get(fd)
        if op is not None:
            op[3].append(n)
        data: bytes = self._real.read(fd, n)
        return data

    def fstat(self, fd: int) -> Any:
        op = self._fds.get(fd)
        if op is not None:
            op[3].append(-1)                # -1: an fstat of the open fd
        return self._real.fstat(fd)

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)
        self._real.close(fd)

    def stat(self, path: Any, *a: Any, **kw: Any) -> Any:
        self.ops.append(["stat", path])
        return self._real.stat(path, *a, **kw)

    def listdir(self, path: Any = ".") -> Any:
        self.ops.append(["listdir", path])
        return self._real.listdir(path)

    def readlink(self, path: Any, *a: Any, **kw: Any) -> Any:
        self.ops.append(["readlink", path])
        return self._real.readlink(path, *a, **kw)

    def getsid(self, pid: int) -> int:
        self.ops.append(["getsid", pid])
        return int(self._real.getsid(pid))

    def pidfd_open(self, pid: int, flags: int = 0) -> int:
        # the floor polls and closes it too, as the backend does
        self.ops.append(["pidfd", pid])
        return int(self._real.pidfd_open(pid, flags))

    def clock_gettime_ns(self, clk: int) -> int:
        """(stands in for ``time``) a process CPU-time clock read"""
        self.ops.append(["clock", clk])
        return int(self._real.clock_gettime_ns(clk))


def facts_impl() -> str:
    """Which twin collected the Linux facts: compiled (_linuxfacts) or pure Python."""
    from .backends import linux as linux_mod
    name = str(linux_mod.facts.__name__).rsplit(".", 1)[-1]
    return {"_linuxfacts": "_linuxfacts (compiled)",
            "_linuxparse": "_linuxparse (pure Python)"}.get(name, name)


def record_plan(fs: Any, pids: list[int]) -> list[tuple[Any, ...]]:
    """The Linux file operations the backend does for status of ``pids``, in order,
    each (kind, path[, flags, read sizes]) once per pid (a re-read is overhead)."""
    from .backends import _linuxparse as pure
    from .backends import linux as linux_mod
    # the pure-Python twin does the very same calls as the compiled one, and can be
    # watched: its os and time modules (and the backend's own os, for the files it
    # reads itself: cmdline and exe of a 15-byte comm, a tty's uevent) are swapped
    # for loggers during the pass
    real, real_time, real_facts = pure.os, pure.time, linux_mod.facts
    plan: list[tuple[Any, ...]] = []
    log = _SyscallLog(real)
    pure.os = linux_mod.os = log  # type: ignore[assignment]
    pure.time = _SyscallLog(real_time)  # type: ignore[assignment]
    pure.time.ops = log.ops  # type: ignore[attr-defined]
    linux_mod.facts = pure
    try:
        for pid in pids:
            log.ops.clear()
            with contextlib.suppress(OSError):
                fs.read(pid, "status")
            seen: set[tuple[str, Any]] = set()
            for op in log.ops:
                if (op[0], op[1]) in seen:
                    continue
                seen.add((op[0], op[1]))
                plan.append((op[0], op[1], op[2], tuple(op[3])) if op[0] == "read"
                            else (op[0], op[1]))
    finally:
        pure.os, pure.time, linux_mod.facts = real, real_time, real_facts
        linux_mod.os = real  # type: ignore[attr-defined]
    return plan


def _floor_fn(root: str, plan: list[tuple[Any, ...]]) -> Callable[[], None]:
    reads = [(op[1], op[2], op[3]) if op[0] == "read" else (op[1], -1, op[0]) for op in plan]
    o_open, o_read, o_close, o_stat, o_fstat = os.open, os.read, os.close, os.stat, os.fstat
    o_listdir, o_readlink, o_getsid, o_pidfd = os.listdir, os.readlink, os.getsid, os.pidfd_open
    o_clock, poll, pollin = time.clock_gettime_ns, select.poll, select.POLLIN

    def floor() -> None:
        o_listdir(root)
        for path, flags, what in reads:
            try:
                if flags >= 0:
                    fd = o_open(path, flags)
                    for n in what:
                        if n < 0:
                            o_fstat(fd)
                        else:
                            o_read(fd, n)
                    o_close(fd)
                elif what == "stat":
                    o_stat(path)
                elif what == "listdir":
                    o_listdir(path)
                elif what == "readlink":
                    o_readlink(path)
                elif what == "getsid":
                    o_getsid(path)
                elif what == "clock":
                    o_clock(path)
                else:                           # pidfd: open, poll once, close
                    fd = o_pidfd(path)
                    p = poll()
                    p.register(fd, pollin)
                    p.poll(0)
                    o_close(fd)
            except OSError:
                pass
    return floor


def bench_status(settings: Settings, helpers: Helpers) -> list[Result]:
    names = ("status_all_vs_floor", "status_all_vs_psutil")
    if not sys.platform.startswith("linux"):
        return [skipped(n, "the floor is defined on Linux /proc only") for n in names]
    from .api import ProcFS
    for _ in range(settings.sleepers):
        helpers.spawn(["sleep", "600"], stdin=subprocess.DEVNULL)
    fs = ProcFS(backend="linux")
    be = fs.backend

    def ours() -> None:
        for pid in be.pids():
            try:
                fs.read(pid, "status")
            except OSError:
                pass

    ours()
    plan = record_plan(fs, be.pids())
    floor = _floor_fn(be.root, plan)
    fns: list[Callable[[], Any]] = [ours, floor]
    try:
        import psutil
        attrs = ["ppid", "name", "create_time", "cpu_times", "uids", "gids", "terminal"]

        getpgid, getsid, o_open, o_read, o_close, o_readlink = (
            os.getpgid, os.getsid, os.open, os.read, os.close, os.readlink)
        rd = os.O_RDONLY | os.O_CLOEXEC
        same_attrs, running = [*attrs, "status"], psutil.STATUS_RUNNING

        def ps_own() -> None:
            # psutil's own API for what it has (pgid and sid: getpgid(2)/getsid(2))
            for p in psutil.process_iter(attrs):
                try:
                    getpgid(p.pid)
                    getsid(p.pid)
                except OSError:
                    pass

        def ps_same() -> None:
            # the same facts as status: what psutil lacks, a psutil user reads
            # raw, in the cheapest way (getsid alone for the leader: no zombie check)
            for p in psutil.process_iter(same_attrs):
                pid = p.pid
                base = f"/proc/{pid}"
                try:
                    getpgid(pid)
                    sid = getsid(pid)
                    if sid not in (0, pid):
                        getsid(sid)                                  # leader still there?
                    fd = o_open(base + "/status", rd)                # supplementary groups
                    o_read(fd, 16384).find(b"\nGroups:")
                    o_close(fd)
                    if p.info["status"] != running:                  # wmesg
                        fd = o_open(base + "/wchan", rd)
                        o_read(fd, 256)
                        o_close(fd)
                    o_readlink(base + "/ns/uts")                     # jail
                except OSError:
                    pass
        fns += [ps_same, ps_own]
    except ImportError:
        psutil = None
    t = _interleave(fns, settings.reps)
    nproc = len(be.pids())
    reads = sum(1 for op in plan if op[0] == "read")
    res = [Result(names[0], _ratio(t[0], t[1]), _med(t[0]) * 1e3, _med(t[1]) * 1e3, "ms",
                  f"ProcFS.read(pid, 'status') for {nproc} pids",
                  f"raw floor: {reads} file reads + {len(plan) - reads} other calls "
                  "(stat, listdir, readlink, getsid, pidfd, clock)",
                  notes=[f"{nproc} processes ({settings.sleepers} sleep helpers)",
                         f"Linux facts from {facts_impl()}"])]
    if psutil is None:
        res.append(skipped(names[1], "psutil is not installed"))
    else:
        res.append(Result(names[1], _ratio(t[2], t[0]), _med(t[2]) * 1e3, _med(t[0]) * 1e3,
                          "ms", "psutil.process_iter (warm), 7 attrs + getpgid/getsid, plus "
                          "the raw reads psutil has no API for: Groups (status), wchan, "
                          "ns/uts, getsid(leader)",
                          "ours (as above)",
                          notes=[f"psutil's own attrs + getpgid/getsid only (no wmesg, groups,"
                                 f" jail or leader check): {_med(t[3]) * 1e3:.2f} ms, ratio "
                                 f"{_ratio(t[3], t[0]):.2f}",
                                 f"psutil (same facts) / raw floor = {_ratio(t[2], t[1]):.2f}"]))
    return res


# -------------------------------------------------------------------- map
def _raw_read_all(path: str) -> bytes:
    """The raw floor: the backend's own read loop, without parsing."""
    from .backends.linux import _read_all
    return _read_all(path)


def bench_map(settings: Settings, helpers: Helpers) -> Result:
    name = "map_vs_smaps"
    if not sys.platform.startswith("linux"):
        return skipped(name, "smaps is Linux-only")
    from .api import ProcFS
    h = helpers.spawn([sys.executable, "-c", _MAP_HELPER.format(n=MAP_HELPER_MAPPINGS)],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    _wait_ready(h)
    fs = ProcFS(backend="linux")
    pid = h.pid
    path = f"/proc/{pid}/smaps"
    t = _interleave([lambda: fs.read(pid, "map"), lambda: _raw_read_all(path)], settings.reps)
    lines = fs.read(pid, "map").count(b"\n")
    size = len(_raw_read_all(path))
    return Result(name, _ratio(t[0], t[1]), _med(t[0]) * 1e3, _med(t[1]) * 1e3, "ms",
                  f"ProcFS.read(pid, 'map'): {lines} entries",
                  f"raw read of /proc/PID/smaps ({size // 1024} KiB)")


# ------------------------------------------------------------ etype/osrel
def _distinct_binaries(n: int) -> list[str]:
    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    for d in ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/lib"):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for nm in names:
            path = f"{d}/{nm}"
            try:
                st = os.stat(path)
                if st.st_mode & 0o170000 != 0o100000 or (st.st_dev, st.st_ino) in seen:
                    continue
                with open(path, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            seen.add((st.st_dev, st.st_ino))
            out.append(path)
            if len(out) == n:
                return out
    return out


def bench_etype(settings: Settings) -> Result:
    name = "etype_osrel_vs_header_read"
    if not sys.platform.startswith("linux"):
        return skipped(name, "uses the Linux backend's ELF path")
    from .backends.linux import LinuxBackend, LinuxProc
    from .nodes import etype as n_etype
    from .nodes import osrel as n_osrel
    from .records import Credentials, ProcIdentity
    bins = _distinct_binaries(ETYPE_BINARIES)
    if not bins:
        return skipped(name, "no ELF binaries found in /usr/bin or /usr/lib")
    # A private "/proc" whose <n>/exe links name the binaries: the backend then takes
    # its own path (open exe, fstat, brand cache, ELF notes) for each of them.
    root = tempfile.mkdtemp(prefix="bsdprocfs-bench-")
    try:
        procs = []
        for i, b in enumerate(bins, start=1):
            os.mkdir(f"{root}/{i}")
            os.symlink(b, f"{root}/{i}/exe")
            ident = ProcIdentity(i, Credentials(0, 0, 0, 0, 0, 0), False, False, False, 0)
            procs.append(LinuxProc(i, b"", (), b"", ident))
        # one fresh backend (an empty brand cache) per run, built outside the timing
        fresh = [LinuxBackend(root) for _ in range(settings.reps + 1)]

        def ours() -> None:
            be = fresh.pop()
            for p in procs:
                n_etype.render(be.etype(p))
                n_osrel.render(be.osrel(p))

        def header() -> None:
            for b in bins:
                fd = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
                os.read(fd, 4096)
                os.close(fd)

        times = _interleave([ours, header], settings.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Result(name, _ratio(times[0], times[1]), _med(times[0]) * 1e3,
                  _med(times[1]) * 1e3, "ms",
                  f"etype+osrel of {len(bins)} distinct binaries, cold brand cache",
                  "os.read of their first 4 KiB")


# ------------------------------------------------------------------- FUSE
def _fuse_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "FUSE rows are measured on Linux only"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0:
        return "mounting with allow_other needs root"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "fusermount3 is not installed"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"mfusepy unavailable: {e}"
    try:
        from . import fuse  # noqa: F401
    except ImportError as e:
        return f"bsdprocfs.fuse not available: {e}"
    return None


def _read_loop(path: str, n: int) -> Callable[[], None]:
    o_open, o_read, o_close, flags = os.open, os.read, os.close, os.O_RDONLY

    def run() -> None:
        for _ in range(n):
            fd = o_open(path, flags)
            o_read(fd, 4096)
            o_close(fd)
    return run


def bench_fuse(settings: Settings, helpers: Helpers) -> list[Result]:
    names = ("fuse_status_vs_trivial", "fuse_status_vs_kernel")
    why = _fuse_unavailable()
    if why:
        return [skipped(n, why) for n in names]
    from . import fuse
    target = helpers.spawn(["sleep", "600"], stdin=subprocess.DEVNULL).pid
    n = settings.fuse_reads
    log_path = None
    try:
        with fuse.mounted(extra=["--bench-node", "bench"]) as m:
            log_path = m.log_path
            status = f"{m.path}/{target}/status"
            trivial = f"{m.path}/bench/{fuse.BENCH_FILE}"
            for p in (status, trivial):
                with open(p, "rb") as f:
                    if not f.read():
                        raise RuntimeError(f"{p} read empty")
            t = _interleave([_read_loop(status, n), _read_loop(trivial, n),
                             _read_loop(f"/proc/{target}/status", n)], settings.reps)
    except (RuntimeError, OSError) as e:
        reason = f"mount failed: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}"
        return [skipped(nm, reason) for nm in names]
    finally:
        if log_path:
            with contextlib.suppress(OSError):
                os.unlink(log_path)
    rate = [[n / s for s in ts] for ts in t]
    return [
        Result(names[0], _ratio(t[0], t[1]), _med(rate[0]), _med(rate[1]), "reads/s",
               "open+read+close of MNT/PID/status",
               "of MNT/bench/status (constant body, same depth)"),
        Result(names[1], _ratio(t[0], t[2]), _med(rate[0]), _med(rate[2]), "reads/s",
               "open+read+close of MNT/PID/status", "of the kernel's /proc/PID/status"),
    ]


# ------------------------------------------------------------------- step
def _ptrace_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the raw baseline is Linux ptrace"
    try:
        from . import debug  # noqa: F401
        from .ptrace import raw  # noqa: F401
    except ImportError as e:
        return f"the ptrace layer is not available: {e}"
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() == "3":
                return "ptrace disabled (kernel.yama.ptrace_scope = 3)"
    except OSError:
        pass
    return None


def bench_step(settings: Settings, helpers: Helpers) -> Result:
    """API steps (ctl handle) vs ptrace.raw.raw_step_rate (the ptrace layer's own
    yardstick: ctypes SINGLESTEP + waitpid on this thread), each on its own spinner
    (a C counter loop when gcc exists), interleaved."""
    name = "step_vs_raw"
    why = _ptrace_unavailable()
    if why:
        return skipped(name, why)
    from .api import ProcFS
    from .ptrace import raw
    build = tempfile.mkdtemp(prefix="bsdprocfs-bench-")
    try:
        cmd = raw.build_spinner(build)
        targets = []
        for _ in range(2):
            sp = helpers.spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            assert sp.stdout is not None
            sp.stdout.readline()               # the spinner is running its loop
            targets.append(sp.pid)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    api_pid, raw_pid = targets
    fs = ProcFS(backend="linux")
    n = settings.steps
    try:
        ctl = fs.open(api_pid, "ctl", "w")
        ctl.write(b"attach")
        ctl.write(b"wait")
    except OSError as e:
        return skipped(name, f"ptrace unavailable: ctl attach failed: {e}")
    raw_rates: list[float] = []

    def api() -> None:
        w = ctl.write
        for _ in range(n):
            w(b"step")                 # returns once the step has trapped

    def raw_run() -> None:
        raw_rates.append(raw.raw_step_rate(raw_pid, n))

    try:
        t = _interleave([api, raw_run], settings.reps)
    except OSError as e:
        return skipped(name, f"ptrace unavailable: {e}")
    finally:
        with contextlib.suppress(OSError):
            ctl.write(b"detach")
        with contextlib.suppress(Exception):
            fs.backend.debugger.close()
    raw_rate = raw_rates[-settings.reps:]      # the stepping loop alone (no seize/detach)
    api_rate = [n / s for s in t[0]]
    return Result(name, _ratio(api_rate, raw_rate), _med(api_rate), _med(raw_rate),
                  "steps/s", "an open ctl handle: write 'step' (returns after the trap)",
                  "ptrace.raw.raw_step_rate: ctypes PTRACE_SINGLESTEP + waitpid",
                  notes=[f"targets: {os.path.basename(cmd[0])} spinners"])


# ------------------------------------------------------------------ driver
def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> list[Result]:
    settings = Settings.for_mode(quick)
    say = progress or (lambda s: None)
    results: dict[str, Result] = {}
    stages: tuple[tuple[str, Callable[[Settings, Helpers], Result | list[Result]]], ...] = (
        ("status", bench_status), ("map", bench_map),
        ("etype", lambda s, _h: bench_etype(s)), ("fuse", bench_fuse), ("step", bench_step))
    for stage, fn in stages:
        say(f"bench: {stage}...")
        helpers = Helpers()
        out: Result | list[Result]
        try:
            out = fn(settings, helpers)
        except Exception as e:  # noqa: BLE001 - a broken row must not lose the others
            out = [skipped(n, f"error: {type(e).__name__}: {e}") for n in _rows_of(stage)]
        finally:
            helpers.close()
        for r in out if isinstance(out, list) else [out]:
            results[r.name] = r
    return [results.get(n) or skipped(n, "not run") for n, _, _ in ROWS]


def _rows_of(stage: str) -> list[str]:
    return {"status": ["status_all_vs_floor", "status_all_vs_psutil"], "map": ["map_vs_smaps"],
            "etype": ["etype_osrel_vs_header_read"],
            "fuse": ["fuse_status_vs_trivial", "fuse_status_vs_kernel"],
            "step": ["step_vs_raw"]}[stage]


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


def table(results: list[Result]) -> str:
    rows = [("benchmark", "ratio", "goal", "met", "A", "B", "unit / note")]
    for r in results:
        goal, op = GOALS[r.name]
        if r.reason:
            rows.append((r.name, "-", f"{op} {goal}" if goal else "report", "skipped", "-", "-",
                         r.reason))
            continue
        rows.append((r.name, f"{r.ratio:.2f}" if r.ratio is not None else "-",
                     f"{op} {goal}" if goal else "report",
                     {True: "yes", False: "NO", None: "-"}[r.met], _fmt(r.a), _fmt(r.b), r.unit))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    out = []
    for row in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(row[:6], widths, strict=True))
                   + "  " + row[6])
    out.append("")
    for r in results:
        if not r.reason:
            out.append(f"{r.name}: A = {r.a_is}; B = {r.b_is}"
                       + "".join(f"; {n}" for n in r.notes))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bsdprocfs bench", description=__doc__.splitlines()[0])
    _add_args(ap)
    return cmd_bench(ap.parse_args(argv))


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")


def cmd_bench(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    results = run(args.quick, progress=lambda s: print(s, file=sys.stderr, flush=True))
    sys.stdout.write(table(results))
    print(f"({'quick' if args.quick else 'full'} run, {time.monotonic() - t0:.0f} s, "
          f"load average {os.getloadavg()[0]:.2f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({r.name: r.as_json() for r in results}, f, indent=2)
            f.write("\n")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark ratios, measured side by side in one run")
    _add_args(p)
    p.set_defaults(func=cmd_bench)


if __name__ == "__main__":
    sys.exit(main())
