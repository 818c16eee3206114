"""The debugger behind ctl, regs, fpregs, dbregs and mem: one object per process
(one tracer thread, as Linux requires), the interface tree.py and api.py call.

It only routes; each concern is one module of this package:

* ctl.py        what each ctl word does (procfs_ctl.c semantics, per profile)
* regsets.py    regs/fpregs/dbregs read and written on a stopped target
* memory.py     mem through /proc/PID/mem
* transient.py  reads of processes we do not trace (seize, read, let go)
* tracer.py     the tracer thread, every ptrace request and waitpid
* linux.py      the raw Linux requests and the register mapping

Decisions that are ours, not FreeBSD's, are in those modules' docstrings and in
docs/fidelity.md (e.g. attach is PTRACE_SEIZE + PTRACE_INTERRUPT: a stop that is
not a signal-delivery stop is released *running* if this process dies).
"""

from __future__ import annotations

import sys
from typing import Any

from ..profiles import Profile
from . import memory
from .ctl import Check, Ctl, Interrupted
from .layouts import RegSet, host_arch
from .regsets import RegSets
from .tracer import Tracer


class LinuxDebugger:
    """regs/fpregs/dbregs/mem/ctl for the Linux backend, over one Tracer."""

    def __init__(self, arch: str | None = None) -> None:
        from . import linux
        self.tracer = Tracer()
        self.arch = arch or host_arch()
        if self.arch in ("amd64", "i386"):
            self.tracer.disarm = linux.disarm_x86
        self.regsets = RegSets(self.tracer, self.arch)
        self.ctl_words = Ctl(self.tracer, self.arch)

    # ------------------------------------------------ cheap state queries
    def traced_by_us(self, pid: int) -> bool:
        return pid in self.tracer.targets

    def pinned(self, pid: int) -> bool:
        """Traced and held stopped by us: it cannot exit, exec or change credentials
        without our waitpid seeing it, so callers may skip re-reading /proc."""
        t = self.tracer.targets.get(pid)
        return t is not None and (t.stopped or t.stepping)

    def exit_status(self, pid: int) -> int | None:
        """The wait status of a traced target that exited (we reaped it)."""
        return self.tracer.exits.get(pid)

    # ------------------------------------------------------------- mem
    def mem_open(self, pid: int, write: bool) -> int:
        return memory.mem_open(pid, write)

    def mem_read(self, pid: int, offset: int, size: int, fd: int | None = None) -> bytes:
        return memory.mem_read(pid, offset, size, fd)

    def mem_write(self, pid: int, offset: int, data: bytes, fd: int | None = None) -> int:
        return memory.mem_write(pid, offset, data, fd)

    # -------------------------------------------------------- regsets
    def read_regset(self, pid: int, name: str, check: Check = None) -> RegSet:
        return self.regsets.read(pid, name, check)

    def write_regset(self, pid: int, name: str, data: bytes, check: Check = None) -> int:
        return self.regsets.write(pid, name, data, check)

    # ------------------------------------------------------------- ctl
    def ctl(self, pid: int, cmd: Any, reader: Any, profile: Profile | str | None = None,
            interrupted: Interrupted | None = None, timeout: float | None = None,
            check: Check = None) -> None:
        self.ctl_words.ctl(pid, cmd, reader, profile, interrupted, timeout, check)

    def _op_detach(self, pid: int) -> None:
        """detach on the tracer thread (tests' teardown)."""
        self.ctl_words.op_detach(pid)

    def detach_all(self) -> None:
        self.ctl_words.detach_all()

    def close(self) -> None:
        self.detach_all()


_DEBUGGER: Any = None


def get_debugger() -> Any:
    """The process-wide debugger (one tracer thread per process, as Linux requires)."""
    global _DEBUGGER
    if _DEBUGGER is None:
        if sys.platform.startswith("freebsd"):
            from .freebsd import FreeBSDPtrace
            _DEBUGGER = FreeBSDPtrace()
        else:
            _DEBUGGER = LinuxDebugger()
    return _DEBUGGER
