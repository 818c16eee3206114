"""FreeBSD's procfs stop events (p_stops, p_step, p_stype, p_xsig; procfs_ioctl.c and
stopevent() in 10.x-12.x) over Linux ptrace.

A process with events set is seized by one thread of ours (ptrace wants every call
from the thread that seized); at an event the target is held in a ptrace stop with
p_step set until PIOCCONT, the last close of its mem node (without PF_LINGER) or the
end of this daemon.  The event to Linux stop mapping (docs/fidelity.md):

* S_EXEC: PTRACE_EVENT_EXEC; S_EXIT: PTRACE_EVENT_EXIT (val: the exit status);
* S_SCE/S_SCX: system-call entry/exit stops (val: the Linux system-call number);
* S_SIG: a signal-delivery stop (val: FreeBSD's number of it), delivered once
  continued;
* S_CORE: not raised (Linux gives no stop before a core dump);
* only the main thread is traced.

A target already traced by someone else cannot be seized: PIOCBIS answers EBUSY.
Seized targets are released running if we die (PTRACE_SEIZE), and close() detaches
every one.  Tracing a child of this very process (the in-process API) takes its stop
and exit statuses from the parent's own waitpid: trace children of other processes.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import EBUSY, EINTR, EINVAL, EPERM, fail
from ..nodes.ioctl import (
    PF_ISUGID,
    PF_LINGER,
    S_EXEC,
    S_EXIT,
    S_SCE,
    S_SCX,
    S_SIG,
    freebsd_signal,
    pack_status,
)
from . import linux as pt

PTRACE_SYSCALL = 24
PTRACE_GETEVENTMSG = 0x4201
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
_SIG_MAXSIG = 128

Interrupted = Callable[[], bool] | None


@dataclass
class StopState:
    """The p_* fields procfs_ioctl.c reads and writes, plus our tracing thread."""

    pid: int
    stops: int = 0            # p_stops
    pfsflags: int = 0         # p_pfsflags
    step: bool = False        # p_step
    stype: int = 0            # p_stype
    xsig: int = 0             # p_xsig (the event's value)
    exited: bool = False      # P_WEXIT
    thread: threading.Thread | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)
    seize_error: int = 0
    seized: threading.Event = field(default_factory=threading.Event)
    #: set once the seized target runs again after our first stop of it
    resumed: threading.Event = field(default_factory=threading.Event)


class StopEvents:
    """All targets with stop events, for one tree."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, StopState] = {}
        self._opens: dict[int, int] = {}
        self._closing = False

    # ------------------------------------------------------------- handles
    def opened(self, pid: int) -> None:
        with self._lock:
            self._opens[pid] = self._opens.get(pid, 0) + 1

    def closed(self, pid: int) -> None:
        """pfs_close runs pn_close on the vnode's last close only (cite: pfs.close);
        procfs_close clears everything unless PF_LINGER (cite: ioctl.close)."""
        with self._lock:
            n = self._opens.get(pid, 0) - 1
            if n > 0:
                self._opens[pid] = n
                return
            self._opens.pop(pid, None)
            st = self._procs.get(pid)
        if st is None or st.pfsflags & PF_LINGER:
            return
        self._reset(st)

    def _reset(self, st: StopState) -> None:
        with st.cond:
            st.pfsflags = 0
            st.stops = 0
            st.step = False
            st.cond.notify_all()
        self._kick(st)

    # ------------------------------------------------------------- requests
    def status(self, pid: int) -> bytes:
        """PIOCSTATUS (cite: ioctl.statusfill)."""
        st = self._procs.get(pid)
        if st is None:
            return pack_status(1, 0, 0, 0, 0)
        with st.cond:
            return pack_status(0 if st.step else 1, 0, st.stops,
                               st.stype if st.step else 0, st.xsig if st.step else 0)

    def flags(self, pid: int) -> int:
        st = self._procs.get(pid)
        return st.pfsflags if st else 0

    def set_flags(self, pid: int, flags: int, privileged: bool) -> None:
        """PIOCSFL: PF_ISUGID needs privilege (cite: ioctl.sfl)."""
        if flags & PF_ISUGID and not privileged:
            raise fail(EPERM, pid, "mem", "PF_ISUGID needs privilege (PRIV_DEBUG_SUGID)")
        st = self._state(pid)
        with st.cond:
            st.pfsflags = flags

    def set_stops(self, pid: int, add: int = 0, clear: int = 0) -> None:
        """PIOCBIS / PIOCBIC: p_stops |= arg, &= ~arg (cite: ioctl.bis_bic)."""
        st = self._state(pid)
        with st.cond:
            st.stops = (st.stops | add) & ~clear & 0xFFFFFFFF
            st.cond.notify_all()
        if st.stops and (st.thread is None or not st.thread.is_alive()) and not st.exited:
            self._start(st)
        else:
            self._kick(st)

    def wait(self, pid: int, interrupted: Interrupted = None,
             timeout: float | None = None) -> bytes:
        """PIOCWAIT: sleep ("pioctl") until the target stops at an event or exits, then
        PIOCSTATUS (cite: ioctl.wait); a signal to the caller ends it with EINTR."""
        st = self._state(pid)
        end = None if timeout is None else time.monotonic() + timeout
        with st.cond:
            while not st.step and not st.exited:
                if interrupted is not None and interrupted():
                    raise fail(EINTR, pid, "mem", "PIOCWAIT interrupted")
                if end is not None and time.monotonic() >= end:
                    raise fail(EINTR, pid, "mem", "PIOCWAIT timed out")
                st.cond.wait(0.05)
        return self.status(pid)

    def cont(self, pid: int, sig: int, host_signal: Callable[[int], int | None]) -> None:
        """PIOCCONT: nothing unless stopped at an event; an invalid signal EINVAL; the
        signal is posted (kern_psignal) and the target resumes (cite: ioctl.cont)."""
        st = self._procs.get(pid)
        if st is None or not st.step:
            return
        if sig != 0 and not 0 < sig <= _SIG_MAXSIG:
            raise fail(EINVAL, pid, "mem", f"invalid signal {sig}")
        if sig:
            hs = host_signal(sig)
            if hs is None:
                raise fail(EINVAL, pid, "mem", f"signal {sig} does not exist on this host")
            try:
                os.kill(pid, hs)
            except ProcessLookupError:
                pass
        with st.cond:
            st.step = False
            st.cond.notify_all()

    # ------------------------------------------------------------- tracing
    def _state(self, pid: int) -> StopState:
        with self._lock:
            st = self._procs.get(pid)
            if st is None or st.exited:
                st = self._procs[pid] = StopState(pid)
            return st

    def _start(self, st: StopState) -> None:
        if self._closing:
            raise fail(EBUSY, st.pid, "mem", "daemon is shutting down")
        st.seized.clear()
        st.resumed.clear()
        st.seize_error = 0
        th = threading.Thread(target=self._run, args=(st,), daemon=True,
                              name=f"stopevents-{st.pid}")
        st.thread = th
        th.start()
        st.seized.wait(5)
        if st.seize_error:
            st.thread = None
            with st.cond:
                st.stops = 0
            err = EBUSY if st.seize_error == _errno.EPERM else st.seize_error
            raise fail(err, st.pid, "mem", "cannot trace the target for stop events "
                       "(traced by someone else?)")
        st.resumed.wait(5)            # PIOCBIS returns with the target running again

    def _kick(self, st: StopState) -> None:
        """Bring a running tracee to a stop so the thread notices a change."""
        th = st.thread
        if th is not None and th.is_alive():
            try:
                pt.interrupt(st.pid)
            except OSError:
                pass

    def _run(self, st: StopState) -> None:
        pid = st.pid
        try:
            pt.seize(pid, pt.PTRACE_O_TRACEEXEC | pt.PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT)
            pt.interrupt(pid)
        except OSError as e:
            st.seize_error = e.errno or _errno.EPERM
            st.seized.set()
            return
        st.seized.set()
        in_syscall = False
        while True:
            try:
                _, status = os.waitpid(pid, pt.WALL)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            if not os.WIFSTOPPED(status):
                continue
            sig = os.WSTOPSIG(status)
            event = status >> 16

            deliver = 0
            if sig == pt.SYSCALL_TRAP:
                in_syscall = not in_syscall
                want = S_SCE if in_syscall else S_SCX
                if st.stops & want:
                    self._event(st, want, _syscall_nr(pid))
            elif event == pt.PTRACE_EVENT_EXEC:
                in_syscall = True           # the syscall-exit stop of execve follows
                if st.stops & S_EXEC:
                    self._event(st, S_EXEC, 0)
            elif event == PTRACE_EVENT_EXIT:
                if st.stops & S_EXIT:
                    self._event(st, S_EXIT, _eventmsg(pid) >> 8 & 0xFF)
            elif event == pt.PTRACE_EVENT_STOP:
                if sig in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
                    # a group stop: keep it as it is, as an untraced process would
                    if not st.stops:
                        break
                    try:
                        pt.listen(pid)
                    except OSError:
                        break
                    continue
            else:
                deliver = sig               # a signal-delivery stop
                if st.stops & S_SIG:          # val: FreeBSD's number of the signal
                    self._event(st, S_SIG, freebsd_signal(sig))
            if not st.stops or self._closing:
                self._release(st, deliver)
                return
            try:
                if st.stops & (S_SCE | S_SCX):
                    pt.ptrace(PTRACE_SYSCALL, pid, 0, deliver)
                else:
                    pt.cont(pid, deliver)
            except OSError:
                break
            st.resumed.set()
        self._release(st, 0)

    def _event(self, st: StopState, stype: int, val: int) -> None:
        """stopevent(): p_step, p_stype, p_xsig set, then sleep until p_step is cleared."""
        with st.cond:
            st.step, st.stype, st.xsig = True, stype, val
            st.cond.notify_all()
            while st.step and not self._closing:     # until PIOCCONT or the last close
                st.cond.wait(0.1)
            st.step = False

    def _release(self, st: StopState, deliver: int) -> None:
        try:
            pt.detach(st.pid, deliver)          # a signal caught at its stop still arrives
        except OSError:
            pass
        st.resumed.set()
        with st.cond:
            st.exited = not _alive(st.pid)
            st.step = False
            st.cond.notify_all()

    def close(self) -> None:
        """Release every seized target (running), as FreeBSD's last close would."""
        self._closing = True
        for st in list(self._procs.values()):
            with st.cond:
                st.stops = 0
                st.step = False
                st.cond.notify_all()
            self._kick(st)
            if st.thread is not None:
                st.thread.join(5)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _eventmsg(pid: int) -> int:
    msg = ctypes.c_ulong(0)
    try:
        pt.ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(msg))
    except OSError:
        return 0
    return int(msg.value)


def _syscall_nr(pid: int) -> int:
    """orig_rax / orig_eax / x8 of the stopped main thread (the Linux number)."""
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
