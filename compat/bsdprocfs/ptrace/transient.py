"""Transient reads of targets we do not trace: seize, stop, read, let go.

Linux hands registers only to the tracer of a stopped tracee, FreeBSD reads
them from the saved state of any stopped (or, for dbregs, running) process.  So
for one read we PTRACE_SEIZE, wait for a stop, read and PTRACE_DETACH:

* a process group-stopped by someone else's SIGSTOP is re-trapped by the seize
  itself and stays in its group stop after the detach, exactly as before;
* a running process (dbregs only) is interrupted; a system call it slept in is
  restarted by the kernel, as after any ptrace stop;
* a target that cannot stop in time (blocked in a system call that ignores
  interrupts, e.g. a vfork parent or a read served by this very daemon) is
  handed to the tracer loop, which detaches it at its first stop (Tracer.record),
  so nothing is ever left traced by us.
"""

from __future__ import annotations

import errno as _errno
import time
from collections.abc import Callable
from typing import Any

from ..errors import EBUSY, EIO, fail
from . import linux as lx
from .tracer import Target, Tracer

#: fn(stopsig, trapno) run on the stopped target
OnStopped = Callable[[int, int | None], Any]


def seize(pid: int, name: str) -> Target:
    """PTRACE_SEIZE (no options) for one transient use; the Target recording its stops."""
    try:
        lx.seize(pid, 0)
    except OSError as e:
        if e.errno == _errno.ESRCH:
            raise fail(EIO, pid, name, "process has exited") from None
        raise fail(EBUSY, pid, name, f"cannot seize the process: {e.strerror}") from None
    return Target(pid, 0)


def await_stop(tr: Tracer, tmp: Target, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not tmp.stopped and time.monotonic() < deadline:
        if not tr.wait_stop(tmp, 0.005):
            time.sleep(0.001)
    return bool(tmp.stopped)


def hand_off(tr: Tracer, tmp: Target) -> None:
    """PTRACE_DETACH needs a stopped tracee: the tracer loop detaches this one at its
    first stop (Tracer.record), so it is never left traced by us."""
    tmp.transient = True
    tr.targets[tmp.pid] = tmp


def read_running(tr: Tracer, pid: int, name: str, fn: OnStopped) -> Any:
    """dbregs of a running process: seize, interrupt, read, detach (a signal that
    stopped it first is delivered by the detach)."""
    tmp = seize(pid, name)
    try:
        lx.interrupt(pid)
    except OSError:
        pass
    if not await_stop(tr, tmp, 0.5):
        hand_off(tr, tmp)
        raise fail(EBUSY, pid, name, "process did not stop for the read (blocked in a "
                   "system call)")
    sig = tmp.stopsig if tmp.event == 0 else 0
    try:
        return fn(tmp.stopsig, None)
    finally:
        try:
            lx.detach(pid, sig)
        except OSError:
            pass


def read_group_stopped(tr: Tracer, pid: int, name: str, fn: OnStopped) -> Any:
    """Seize a group-stopped process, use it, detach: it stays group-stopped."""
    tmp = seize(pid, name)
    try:
        if not await_stop(tr, tmp, 0.5):
            lx.interrupt(pid)
            if not await_stop(tr, tmp, 0.5):
                hand_off(tr, tmp)
            raise fail(EBUSY, pid, name, "process was continued")
        return fn(tmp.stopsig, None)
    finally:
        try:
            if not tmp.transient:
                lx.detach(pid, 0)
        except OSError:
            pass
        # the task re-enters its group stop asynchronously: return only once it is
        # back in T, so the next request finds it exactly as it was
        deadline = time.monotonic() + 0.5
        while lx.proc_state(pid) not in ("T", "X", "Z") and time.monotonic() < deadline:
            time.sleep(0.0005)
