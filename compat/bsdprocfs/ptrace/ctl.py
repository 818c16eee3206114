"""What each ctl word does: FreeBSD 10's procfs_ctl.c (procfs_control and
procfs_doprocctl, release/10.4.0) on Linux ptrace.  The grammar is nodes/ctl.py.

The rules quoted from procfs_ctl.c, and where the profiles differ:

* p_candebug for attach, detach-excepted words ("if (op != PROCFS_CTL_DETACH &&
  ((error = p_candebug(td, p))))"), checked by the tree; signal words never reach
  procfs_control and need no p_candebug (procfs_doprocctl: "if
  (TRACE_WAIT_P(td->td_proc, p)) { p->p_xstat = nm->nm_val; ...  } else
  kern_psignal(p, nm->nm_val);"), only the file's write permission and, on top,
  Linux's own kill(2) rule (access.linux_may_signal).
* step/run need the target "in trace wait state relative to" the caller
  (TRACE_WAIT_P: "P_SHOULDSTOP(p) && (p)->p_pptr == (curp) && ((p)->p_flag &
  P_TRACED)"), else EBUSY.  ``compat`` accepts any caller passing p_candebug
  (through a mount every ``echo step > ctl`` is a new process); profiles with
  ``ctl_attacher_only`` (freebsd-10) keep the p_pptr rule.
* wait, traced: freebsd-10 literally: "while (error == 0 && (P_SHOULDSTOP(p)) &&
  (p->p_flag & P_TRACED) && (p->p_pptr == td->td_proc)) error = msleep(...,
  PCATCH, "procfsx", 0); if (error == 0 && !TRACE_WAIT_P(td->td_proc, p)) error =
  EBUSY;" -- it sleeps while the target IS stopped and answers EBUSY (or EINTR);
  ``compat`` waits until the target stops (what the word's comment says: "Wait
  for the target process to stop"), EBUSY if it exits.  Untraced, both: "while
  (error == 0 && P_SHOULDSTOP(p)) error = msleep(...)".
* detach: "remove pending SIGTRAP, else the process will die" and "p->p_xstat =
  0"; freebsd-10 drops the stop signal, ``compat`` delivers a real one (what the
  process would have got untraced).  Untraced: "a painless no-op".
* step of a process blocked in a system call: FreeBSD sets the trace flag in the
  saved frame and the thread sleeps on; the trap comes when the call returns.
  Here (amd64) the call is run under PTRACE_SYSCALL, which arms nothing while it
  blocks, and the step completes at its exit stop; ``wait`` waits for it
  (interruptibly) and a second step meanwhile is EBUSY (TRACE_WAIT_P is false).
* a blocking wait takes one of a caller's MAX_WAITS_PER_CALLER slots; past it
  EAGAIN, FreeBSD's errno for a per-user resource limit (fork's maxprocperuid),
  so no caller can hold every thread that serves requests.
* emt: SIGEMT does not exist on Linux -> EOPNOTSUPP, nothing changed.  info:
  SIGINFO's default action is to ignore and no Linux process can catch it ->
  accepted, nothing delivered (a stopped tracee resumes, as with p_xstat = 0).
"""

from __future__ import annotations

import errno as _errno
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from ..errors import EBUSY, EINTR, EINVAL, EIO, ENOENT, EOPNOTSUPP, EPERM, fail
from ..profiles import Profile, get_profile
from . import linux as lx
from .gate import WaitGate
from .tracer import STEP_SPIN, Target, TargetGone, Tracer

Interrupted = Callable[[], bool]
Check = Callable[[], None] | None

#: FreeBSD signal name -> Linux signal (None: no Linux signal, see the module doc).
LINUX_SIGNALS: dict[str, int | None] = {
    "hup": signal.SIGHUP, "int": signal.SIGINT, "quit": signal.SIGQUIT,
    "ill": signal.SIGILL, "trap": signal.SIGTRAP, "abrt": signal.SIGABRT,
    "iot": signal.SIGABRT, "emt": None, "fpe": signal.SIGFPE, "kill": signal.SIGKILL,
    "bus": signal.SIGBUS, "segv": signal.SIGSEGV, "sys": signal.SIGSYS,
    "pipe": signal.SIGPIPE, "alrm": signal.SIGALRM, "term": signal.SIGTERM,
    "urg": signal.SIGURG, "stop": signal.SIGSTOP, "tstp": signal.SIGTSTP,
    "cont": signal.SIGCONT, "chld": signal.SIGCHLD, "ttin": signal.SIGTTIN,
    "ttou": signal.SIGTTOU, "io": signal.SIGIO, "xcpu": signal.SIGXCPU,
    "xfsz": signal.SIGXFSZ, "vtalrm": signal.SIGVTALRM, "prof": signal.SIGPROF,
    "winch": signal.SIGWINCH, "info": None, "usr1": signal.SIGUSR1, "usr2": signal.SIGUSR2,
}
NO_LINUX_SIGNAL = {"emt": "SIGEMT does not exist on Linux"}

WAIT_POLL = 0.05            # how often a blocked wait re-checks its interruption
#: step answers only once the target is safe if we die: its trap parked, or its system
#: call running with no trace flag armed (False: answer as soon as the step is issued)
SAFE_STEP = True


class Ctl:
    """The ctl words over one Tracer (every ptrace request on its thread)."""

    def __init__(self, tracer: Tracer, arch: str) -> None:
        self.tracer = tracer
        self.arch = arch
        self.gate = WaitGate()

    def ctl(self, pid: int, cmd: Any, reader: Any, profile: Profile | str | None = None,
            interrupted: Interrupted | None = None, timeout: float | None = None,
            check: Check = None) -> None:
        """One ctl word (cmd from nodes/ctl.parse); the tree checked its rules, and
        ``check`` repeats them on the tracer thread, where a stopped target cannot
        exec a set-id image between the check and the act."""
        word = cmd.word
        only = get_profile(profile).ctl_attacher_only
        call = self.tracer.call
        try:
            if word == "step":                     # the hot path first
                if check is None:
                    call(self.op_step, pid, reader.pid, only)
                else:
                    call(_checked, check, self.op_step, pid, reader.pid, only)
            elif word == "attach":
                call(self._attach_checked, pid, reader.pid, check, only)
            elif word == "detach":
                call(self.op_detach, pid, not only)
            elif word == "run":
                call(_checked, check, self.op_run, pid, reader.pid, only)
            elif word == "wait":
                self.op_wait(pid, reader, only, interrupted, timeout)
            else:
                self._signal(pid, word, reader.pid, only, _passes(check))
        except TargetGone:
            raise fail(EIO, pid, "ctl", "process has exited") from None

    # -------------------------------------------------------------- attach
    def _attach_checked(self, pid: int, reader_pid: int, check: Check,
                        attacher_only: bool = False) -> None:
        """attach, then the rules again on the stopped target: an exec that won the race
        with the tree's check is caught here, and the target is let go."""
        self.op_attach(pid, reader_pid)
        if attacher_only:
            self.tracer.watch_attacher(pid, reader_pid)
        if check is None:
            return
        try:
            check()
        except BaseException:
            t = self.tracer.targets.get(pid)
            if t is not None:
                self.tracer.release(t)
            raise

    def op_attach(self, pid: int, reader_pid: int) -> None:
        tr = self.tracer
        if pid in tr.targets or lx.tracer_pid(pid):
            raise fail(EBUSY, pid, "ctl", "attach: already traced")
        if pid == reader_pid:
            raise fail(EINVAL, pid, "ctl", "attach: a process cannot trace itself")
        if pid == os.getpid():
            raise fail(EINVAL, pid, "ctl", "attach: the procfs daemon cannot trace itself "
                       "(Linux forbids tracing one's own thread group)")
        try:
            lx.seize(pid)
        except OSError as e:
            if e.errno == _errno.ESRCH:
                raise fail(ENOENT, pid, "ctl", "attach: no such process") from None
            if lx.tracer_pid(pid):
                raise fail(EBUSY, pid, "ctl", "attach: already traced") from None
            raise fail(EPERM, pid, "ctl", f"attach: {e.strerror}") from None
        was_stopped = lx.proc_state(pid) == "T"
        t = Target(pid, reader_pid, attach_stop=not was_stopped)
        tr.targets[pid] = t
        if not was_stopped:
            # a group-stopped task is re-trapped by PTRACE_SEIZE itself; a second,
            # queued interrupt would swallow the first step
            lx.interrupt(pid)
        tr.wait_stop(t, 0.002)           # usually trapped already; "wait" covers the rest

    # -------------------------------------------------------------- detach
    def op_detach(self, pid: int, deliver: bool = True) -> None:
        t = self.tracer.targets.get(pid)
        if t is None:
            if lx.tracer_pid(pid):
                raise fail(EBUSY, pid, "ctl", "detach: traced by another debugger (Linux "
                           "lets only the tracer detach)")
            return                         # "if not being traced, then this is a painless no-op"
        if t.transient:
            return                         # already being let go at its next stop
        self.tracer.release(t, deliver=deliver)

    # ------------------------------------------------------------ step/run
    def _ours_stopped(self, pid: int, reader_pid: int, only: bool, word: str) -> Target:
        """TRACE_WAIT_P, or EBUSY ("if (!TRACE_WAIT_P(td->td_proc, p)) return (EBUSY)")."""
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is None or t.transient:
            raise fail(EBUSY, pid, "ctl", f"{word}: not traced through procfs")
        tr.refresh(t)
        if not t.stopped:
            raise fail(EBUSY, pid, "ctl", f"{word}: process is not stopped")
        if only and reader_pid != t.attacher:
            raise fail(EBUSY, pid, "ctl", f"{word}: caller did not attach it (FreeBSD: not "
                       "a child of the caller)")
        return t

    def op_step(self, pid: int, reader_pid: int, only: bool) -> bool:
        """One instruction.  FreeBSD's step returns once the step is issued; so does
        this one, and the target is stopped again for anything the caller does next,
        except over a system call that blocks: the step then completes when the call
        returns ("wait" waits for it; another step meanwhile is EBUSY).

        amd64: PTRACE_SYSEMU_SINGLESTEP never runs a system call (it stops at the
        entry instead), so the trap is microseconds away and the tracer may sit in a
        blocking waitpid; the caller is answered as soon as the step is issued, and its
        next request queues behind the collection.  At a system call the instruction is
        rewound and run under PTRACE_SYSCALL, with no trace flag armed while it blocks
        (see Tracer._syscall_stop for how its exit completes the step)."""
        t = self._ours_stopped(pid, reader_pid, only, "step")
        tr = self.tracer
        if self.arch == "amd64":
            t.stepping = True
            tr.resume(t, lx.sysemu_singlestep, 0)
            if not SAFE_STEP:
                tr.answer_early(True)
            tr.wait_blocking(t)
            for _ in range(2):             # a pending group-stop re-trap runs nothing
                if not t.stopped or t.event != lx.PTRACE_EVENT_STOP:
                    break
                tr.resume(t, lx.sysemu_singlestep, 0)
                tr.wait_blocking(t)
            if not t.stopped or t.stopsig != lx.SYSCALL_TRAP:
                if SAFE_STEP:
                    tr.park(t)             # answered once nothing is left armed
                else:
                    tr.settle(t)
                return True
            lx.rewind_syscall(pid)
            tr.resume(t, lx.syscall_step, 0)
            # the emulated call's exit stop and the real call's entry stop are both
            # immediate (no user instruction but the syscall itself runs between them)
            for _ in range(2):
                if t.stopped or not t.sysstep or t.sys_entered:
                    break
                tr.wait_blocking(t)
            done = bool(t.stopped or tr.wait_stop(t, STEP_SPIN))
            t.stepping = False             # blocked in the call: running, not pinned
            return done
        tr.resume(t, lx.singlestep, 0)
        done = bool(tr.wait_stop(t, STEP_SPIN))
        t.stepping = False
        return done

    def op_run(self, pid: int, reader_pid: int, only: bool) -> None:
        t = self._ours_stopped(pid, reader_pid, only, "run")
        self.tracer.resume(t, lx.cont, 0)

    # ------------------------------------------------------------- signals
    def _signal(self, pid: int, word: str, reader_pid: int, only: bool,
                may_drive: bool = True) -> None:
        if word in NO_LINUX_SIGNAL:
            raise fail(EOPNOTSUPP, pid, "ctl", NO_LINUX_SIGNAL[word])
        if word not in LINUX_SIGNALS:
            raise fail(EOPNOTSUPP, pid, "ctl", f"unknown ctl command {word!r}")
        self.tracer.call(self.op_signal, pid, LINUX_SIGNALS[word] or 0, reader_pid, only,
                         may_drive)

    def op_signal(self, pid: int, sig: int, reader_pid: int, only: bool,
                  may_drive: bool = True) -> None:
        """may_drive: the caller passes p_candebug, so (compat) it may resume our stopped
        tracee with the signal; FreeBSD's TRACE_WAIT_P asks for its debugger, which
        passed p_candebug to attach.  Otherwise the signal is only posted."""
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is not None and not t.transient:
            tr.refresh(t)
            if t.stopped and may_drive and (not only or reader_pid == t.attacher):
                tr.resume_with(t, sig)       # TRACE_WAIT_P: "p->p_xstat = nm->nm_val"
                return
        if sig:
            try:
                os.kill(pid, sig)            # "kern_psignal(p, nm->nm_val)"
            except ProcessLookupError:
                raise fail(EIO, pid, "ctl", "process has exited") from None
            except PermissionError:
                raise fail(EPERM, pid, "ctl", "no right to signal the target") from None

    # ---------------------------------------------------------------- wait
    def op_wait(self, pid: int, reader: Any, only: bool, interrupted: Interrupted | None,
                timeout: float | None) -> None:
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is not None and not t.transient:
            if only:
                self._wait_freebsd10(t, reader, interrupted, timeout)
                return
            if t.stepping:
                tr.call(int)                 # queue behind the step being collected
            self._wait_for(lambda: _gone_or_stopped(tr, pid), pid, reader, interrupted,
                           timeout)
            if pid not in tr.targets:
                raise fail(EBUSY, pid, "ctl", "wait: process exited")
            return
        if lx.tracer_pid(pid):
            raise fail(EBUSY, pid, "ctl", "wait: traced by another debugger")
        # untraced: "while (error == 0 && P_SHOULDSTOP(p)) error = msleep(...)"
        self._wait_for(lambda: lx.proc_state(pid) not in ("T", "t"), pid, reader,
                       interrupted, timeout)

    def _wait_freebsd10(self, t: Target, reader: Any, interrupted: Interrupted | None,
                        timeout: float | None) -> None:
        """procfs_ctl.c of 10.4 to the letter: sleep while stopped, traced and the
        caller's child, then EBUSY unless TRACE_WAIT_P (which is the loop's own
        condition, so a wait that was not interrupted always ends EBUSY)."""
        tr, pid = self.tracer, t.pid

        def trace_wait_p() -> bool:
            cur = tr.targets.get(pid)
            return cur is not None and cur.stopped and cur.attacher == reader.pid

        if t.stepping:
            tr.call(int)
        self._wait_for(lambda: not trace_wait_p(), pid, reader, interrupted, timeout)
        if not trace_wait_p():
            raise fail(EBUSY, pid, "ctl", "wait: not in trace wait state (procfs_ctl.c: "
                       "!TRACE_WAIT_P)")

    def _wait_for(self, done: Callable[[], bool], pid: int, reader: Any,
                  interrupted: Interrupted | None, timeout: float | None) -> None:
        """Block the caller (never the tracer thread) until done(); EINTR if interrupted
        (msleep's PCATCH), EAGAIN past the caller's bound of blocking waits."""
        tr = self.tracer
        if done():
            return
        uid = getattr(reader, "uid", 0)
        self.gate.take(uid, pid)
        deadline = None if timeout is None else time.monotonic() + timeout
        with tr.cond:
            tr._waiters += 1
        tr.poke()
        try:
            while not done():
                if interrupted is not None and interrupted():
                    raise fail(EINTR, pid, "ctl", "wait: interrupted")
                if deadline is not None and time.monotonic() >= deadline:
                    raise fail(EINTR, pid, "ctl", f"wait: timed out after {timeout}s")
                with tr.cond:
                    tr.cond.wait(WAIT_POLL)
        finally:
            with tr.cond:
                tr._waiters -= 1
            self.gate.give(uid)

    def detach_all(self) -> None:
        if self.tracer.targets:
            self.tracer.call(self.tracer.release_all)


def _gone_or_stopped(tr: Tracer, pid: int) -> bool:
    t = tr.targets.get(pid)
    return t is None or t.stopped


def _passes(check: Check) -> bool:
    if check is None:
        return True
    try:
        check()
    except OSError:
        return False
    return True


def _checked(check: Check, fn: Callable[..., Any], *args: Any) -> Any:
    if check is not None:
        check()
    return fn(*args)
