"""status of every process: against the raw replay of its own /proc calls, and psutil."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .core import Helpers, Result, Settings, _interleave, _med, _ratio, skipped


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
    from ..backends import linux as linux_mod
    name = str(linux_mod.facts.__name__).rsplit(".", 1)[-1]
    return {"_linuxfacts": "_linuxfacts (compiled)",
            "_linuxparse": "_linuxparse (pure Python)"}.get(name, name)


def record_plan(fs: Any, pids: list[int]) -> list[tuple[Any, ...]]:
    """The Linux file operations the backend does for status of ``pids``, in order,
    each (kind, path[, flags, read sizes]) once per pid (a re-read is overhead)."""
    from ..backends import _linuxparse as pure
    from ..backends import linux as linux_mod
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
    from ..api import ProcFS
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
        res.append(Result(names[1], _ratio(t[0], t[2]), _med(t[0]) * 1e3, _med(t[2]) * 1e3,
                          "ms", "ours (as above)",
                          "psutil.process_iter (warm), 7 attrs + getpgid/getsid, plus "
                          "the raw reads psutil has no API for: Groups (status), wchan, "
                          "ns/uts, getsid(leader)",
                          notes=[f"psutil's own attrs + getpgid/getsid only (no wmesg, groups,"
                                 f" jail or leader check): {_med(t[3]) * 1e3:.2f} ms, ours / "
                                 f"that = {_ratio(t[0], t[3]):.2f}",
                                 f"psutil (same facts) / raw floor = {_ratio(t[2], t[1]):.2f}"]))
    return res


