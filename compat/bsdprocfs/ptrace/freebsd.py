"""ctl on FreeBSD >= 11 (no native ctl node) through ptrace(2), via python-ptrace's
FreeBSD binding (PT_ATTACH/PT_DETACH/PT_STEP/PT_CONTINUE).  FreeBSD needs no
tracer thread: any thread of the tracing process may issue requests.
UNTESTED: this code cannot run on the Linux CI; it is kept deliberately small."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from ..errors import EBUSY, EINVAL, EIO, EOPNOTSUPP, fail
from ..profiles import Profile

Interrupted = Callable[[], bool]
Check = Callable[[], None] | None


class FreeBSDPtrace:
    """The debugger interface of ptrace/debugger.LinuxDebugger, for ctl only."""

    PT_CONTINUE, PT_STEP, PT_ATTACH, PT_DETACH = 7, 9, 10, 11

    def __init__(self) -> None:
        self.attacher: dict[int, int] = {}

    def traced_by_us(self, pid: int) -> bool:
        return pid in self.attacher

    def pinned(self, pid: int) -> bool:
        return False

    def _pt(self, req: int, pid: int, addr: int = 1, data: int = 0) -> None:
        from ptrace.binding.func import ptrace
        try:
            ptrace(req, pid, addr, data)
        except Exception as e:    # noqa: BLE001 - PtraceError carries the errno
            err = getattr(e, "errno", None) or EIO
            raise fail(err, pid, "ctl", str(e)) from None

    def ctl(self, pid: int, cmd: Any, reader: Any, profile: Profile | str | None = None,
            interrupted: Interrupted | None = None, timeout: float | None = None,
            check: Check = None) -> None:
        word = cmd.word
        if check is not None and word != "detach":
            check()
        if word == "attach":
            if pid == reader.pid:
                raise fail(EINVAL, pid, "ctl", "attach: a process cannot trace itself")
            self._pt(self.PT_ATTACH, pid, 0)
            self.attacher[pid] = reader.pid
        elif word == "detach":
            if pid in self.attacher:
                self._pt(self.PT_DETACH, pid)
                self.attacher.pop(pid, None)
        elif word in ("step", "run"):
            if pid not in self.attacher:
                raise fail(EBUSY, pid, "ctl", f"{word}: not traced through procfs")
            self._pt(self.PT_STEP if word == "step" else self.PT_CONTINUE, pid)
            if word == "step":
                os.waitpid(pid, os.WUNTRACED)
        elif word == "wait":
            if pid in self.attacher:
                os.waitpid(pid, os.WUNTRACED)
        else:
            sig = getattr(signal, "SIG" + ("ABRT" if word == "iot" else word.upper()), None)
            if sig is None:
                raise fail(EOPNOTSUPP, pid, "ctl", f"unknown ctl command {word!r}")
            if pid in self.attacher:
                self._pt(self.PT_CONTINUE, pid, 1, int(sig))
            else:
                os.kill(pid, int(sig))

    def close(self) -> None:
        for pid in list(self.attacher):
            try:
                self._pt(self.PT_DETACH, pid)
            except OSError:
                pass
        self.attacher.clear()
