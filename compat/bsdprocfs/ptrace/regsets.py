"""regs, fpregs, dbregs: FreeBSD's register sets read and written through Linux
ptrace (procfs_regs.c, procfs_fpregs.c, procfs_dbregs.c semantics).

FreeBSD reads the saved state of a stopped process (dbregs of a running one
too).  Here: a target we hold stopped is read directly; a running tracee of ours
(dbregs only) is interrupted, read and resumed exactly as it ran (a step running
a system call keeps running it); processes we do not trace go through a
transient seize (transient.py).  Everything runs on the tracer thread.
"""

from __future__ import annotations

import errno as _errno
import signal
from collections.abc import Callable
from typing import Any

from ..errors import EBUSY, EINVAL, EIO, EPERM, fail
from . import linux as lx
from . import transient
from .layouts import RegSet
from .tracer import Target, TargetGone, Tracer

#: the tree's p_candebug re-check, run on the tracer thread (None: a privileged reader)
Check = Callable[[], None] | None


class RegSets:
    def __init__(self, tracer: Tracer, arch: str) -> None:
        self.tracer = tracer
        self.arch = arch

    def read(self, pid: int, name: str, check: Check = None) -> RegSet:
        """check: the tree's rules, re-run on the tracer thread once the target is
        stopped (a stopped target cannot exec between that check and the access)."""
        return self._call(self._op_read, pid, name, check)

    def write(self, pid: int, name: str, data: bytes, check: Check = None) -> int:
        return int(self._call(self._op_write, pid, name, data, check))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.tracer.call(fn, *args)
        except TargetGone:
            raise fail(EIO, args[0], None, "process has exited") from None

    # ------------------------------------------------------ Linux <-> FreeBSD
    def _lx_read(self, pid: int, name: str, stopsig: int, trapno: int | None) -> RegSet:
        try:
            if name == "regs":
                rs = lx.read_regs(pid, stopsig, self.arch)
                if trapno is not None and "r_trapno" in rs.values:
                    rs = rs.replace(r_trapno=trapno)
                return rs
            if name == "fpregs":
                return lx.read_fpregs(pid, self.arch)
            return lx.read_dbregs(pid, self.arch)
        except OSError as e:
            raise _regs_error(e, pid, name) from None

    def _lx_write(self, pid: int, name: str, data: bytes, stopsig: int) -> int:
        from ..nodes import module_for
        cur = self._lx_read(pid, name, stopsig, None)
        new, n = module_for(name).merge_write(cur, data)
        try:
            if name == "regs":
                lx.write_regs(pid, new)
            elif name == "fpregs":
                lx.write_fpregs(pid, new)
            else:
                lx.write_dbregs(pid, new, cur)
        except OSError as e:
            if e.errno == _errno.EIO:     # Linux rejects a selector/flag/address: EINVAL
                raise fail(EINVAL, pid, name, "register value rejected by the kernel") \
                    from None
            raise _regs_error(e, pid, name) from None
        return n

    def _op_read(self, pid: int, name: str, check: Check = None) -> RegSet:
        def fn(stopsig: int, trapno: int | None) -> RegSet:
            if check is not None:
                check()
            return self._lx_read(pid, name, stopsig, trapno)
        return self.on_stopped(pid, name, fn, allow_running=(name == "dbregs"))

    def _op_write(self, pid: int, name: str, data: bytes, check: Check = None) -> int:
        def fn(stopsig: int, _trapno: int | None) -> int:
            if check is not None:
                check()
            return self._lx_write(pid, name, data, stopsig)
        return int(self.on_stopped(pid, name, fn, allow_running=False))

    # ------------------------------------------------------------ stopping
    def on_stopped(self, pid: int, name: str, fn: transient.OnStopped,
                   allow_running: bool) -> Any:
        """Run fn on a stopped target (tracer thread): ours, or a transient seize of a
        process stopped by someone else; EBUSY when FreeBSD would say not stopped."""
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is not None and not t.transient:
            tr.refresh(t)
            if t.pid not in tr.targets:
                raise fail(EIO, pid, name, "process has exited")
            if t.stopped:
                return fn(t.stopsig, t.trapno)
            if not allow_running:
                raise fail(EBUSY, pid, name, "process is running")
            if t.attach_stop:
                # attach's interrupt is already queued and its stop is the attacher's:
                # wait for it and leave it (an interrupt-read-continue here would resume
                # the target and a following "wait" would block forever)
                if not transient.await_stop(tr, t, 0.5):
                    raise fail(EBUSY, pid, name, "process did not stop for the read")
                return fn(t.stopsig, t.trapno)
            how = (lx.syscall_step if t.sysstep else
                   lx.singlestep if t.step_pending else lx.cont)
            if not tr.interrupt_stop(t):
                raise fail(EBUSY, pid, name, "process did not stop for the read")
            # only our interrupt's own stop is undone: a real stop that came first (a
            # signal, a step's trap, a group stop) is the debugger's to see
            ours = t.event == lx.PTRACE_EVENT_STOP and t.stopsig == signal.SIGTRAP
            try:
                return fn(t.stopsig, t.trapno)
            finally:
                if ours:
                    self._resume_after_read(t, how)
        if t is not None:
            raise fail(EBUSY, pid, name, "process is being released")
        state = lx.proc_state(pid)
        if state == "T" and lx.tracer_pid(pid) == 0:
            return transient.read_group_stopped(tr, pid, name, fn)
        if state == "t" or lx.tracer_pid(pid):
            raise fail(EBUSY, pid, name, "traced by another debugger: Linux lets only its "
                       "tracer read registers")
        if allow_running and state in ("R", "S", "D"):
            return transient.read_running(tr, pid, name, fn)
        raise fail(EBUSY, pid, name, "process is not stopped")

    def _resume_after_read(self, t: Target, how: Callable[[int, int], None]) -> None:
        """Resume the way the target ran before we interrupted it.  A step running a
        system call goes on running it (the kernel restarts the call our interrupt cut
        short, and the step completes when it returns).  A hardware single step blocked
        in a call (architectures without SYSEMU) had its call's exit report a trap of
        its own: passed over, so the call restarts and the real trap follows it."""
        tr = self.tracer
        tr.resume(t, how, 0)
        if how is lx.syscall_step:
            # the restarted call's entry stop is immediate: pass it now, so the target
            # is back in its call, not waiting in a stop for our next poll
            tr.pass_entry(t)
            return
        if how is not lx.singlestep or not tr.wait_stop(t, 0.01):
            return
        if (t.stopped and t.event == 0 and t.stopsig == signal.SIGTRAP
                and lx.syscall_restart_pending(t.pid)):
            tr.resume(t, lx.singlestep, 0)


def _regs_error(e: OSError, pid: int, name: str) -> OSError:
    if e.errno == _errno.ESRCH:              # running tracee or not ours
        return fail(EBUSY, pid, name, "process is not stopped under our tracer")
    if e.errno in (_errno.EPERM, _errno.EACCES):
        return fail(EPERM, pid, name, "no right to debug the target")
    return fail(e.errno or EIO, pid, name, e.strerror)
