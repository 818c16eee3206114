"""The debugger behind ctl, regs, fpregs, dbregs and mem: FreeBSD 10's
procfs_ctl.c / procfs_regs.c semantics on top of Linux ptrace.

Everything touching ptrace runs on the tracer thread (ptrace/tracer.py); this
module decides what a FreeBSD word means and maps Linux results to FreeBSD
errnos.  Decisions that are ours, not FreeBSD's (see also docs/fidelity.md):

* attach is PTRACE_SEIZE + PTRACE_INTERRUPT, not PTRACE_ATTACH's SIGSTOP: the
  target stops the same way, but a stop that is not a signal-delivery stop is
  released *running* if this process dies (Linux re-delivers a pending SIGSTOP
  to a tracee whose tracer died, leaving it in state T).  The stop reports
  SIGSTOP as FreeBSD's does.
* step/run/wait's "stopped, traced and a child of the caller" rule: the
  ``compat`` profile accepts any caller that passes p_candebug (through a FUSE
  mount every ``echo step > ctl`` is a new process); profiles with
  ``ctl_attacher_only`` (freebsd-10) keep FreeBSD's rule, EBUSY for others.
* step/run resume without a signal: a pending stop signal is discarded
  (FreeBSD hands p_xstat back; UNVERIFIED for procfs's run).  step answers once
  the step is issued (as FreeBSD's does) and the tracer collects the trap before
  serving anything else, so through procfs the target is never seen running.
* wait on a traced target that exits: EBUSY (FreeBSD: TRACE_WAIT_P fails).
* detach delivers a pending real signal (a signal-delivery stop other than
  SIGTRAP/SIGSTOP) instead of dropping it.
* ``emt``: SIGEMT does not exist on Linux -> EOPNOTSUPP, nothing changed.
  ``info``: SIGINFO's default action is to ignore and no Linux process can
  have a handler for it -> accepted, nothing delivered (a traced-and-stopped
  target resumes without a signal).
* regs/fpregs of a process stopped by someone else's SIGSTOP (not traced): a
  transient SEIZE (the kernel re-traps a group-stopped task by itself), read,
  DETACH: it stays in group stop exactly as before.  Traced by another tracer:
  EBUSY (Linux lets only the tracer read registers).
* dbregs read while running: traced by us -> interrupt, read, continue;
  not traced -> a transient SEIZE + INTERRUPT, read, DETACH (Linux has no way to
  read them without stopping the task for a moment).  A target that cannot stop
  in 0.5 s (blocked in a system call, e.g. on this very daemon) -> EBUSY, and the
  tracer loop detaches it at its first stop.
* detach of a process traced by someone else: EBUSY (FreeBSD would untrace it;
  Linux lets only its tracer detach).
"""

from __future__ import annotations

import errno as _errno
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .errors import EBUSY, EFAULT, EINTR, EINVAL, EIO, ENOENT, EOPNOTSUPP, EPERM, fail
from .profiles import Profile, get_profile
from .ptrace.layouts import RegSet, host_arch
from .ptrace.linux import proc_state
from .ptrace.tracer import TargetGone

Interrupted = Callable[[], bool]
#: the tree's p_candebug re-check, run on the tracer thread (None: a privileged reader)
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


def tracer_pid(pid: int) -> int:
    """TracerPid (a thread id) of /proc/PID/status, 0 when untraced or gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class LinuxDebugger:
    """regs/fpregs/dbregs/mem/ctl for the Linux backend, over one Tracer."""

    def __init__(self, arch: str | None = None) -> None:
        from .ptrace import linux
        from .ptrace.tracer import STEP_SPIN, Tracer
        self.tracer = Tracer()
        self.arch = arch or host_arch()
        self._lx = linux
        self._step_spin = STEP_SPIN
        if self.arch in ("amd64", "i386"):
            self.tracer.disarm = linux.disarm_x86

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
    def _mem_fd(self, pid: int, write: bool) -> int:
        try:
            return os.open(f"/proc/{pid}/mem", (os.O_RDWR if write else os.O_RDONLY)
                           | os.O_CLOEXEC)
        except FileNotFoundError:
            raise fail(EIO, pid, "mem", "process has exited") from None
        except PermissionError:
            raise fail(EPERM, pid, "mem", "no right to debug the target") from None

    def mem_open(self, pid: int, write: bool) -> int:
        """An fd on /proc/PID/mem, bound by Linux to the address space of the moment."""
        return self._mem_fd(pid, write)

    def _mem_io(self, pid: int, offset: int, write: bool, io: Callable[[int], Any],
                fd: int | None = None) -> Any:
        """One pread/pwrite on /proc/PID/mem with FreeBSD's errnos (EINVAL, EFAULT); on
        ``fd`` when the caller holds one (see tree.Handle._mem), else on a fresh one."""
        own = fd is None
        if fd is None:
            fd = self._mem_fd(pid, write)
        try:
            return io(fd)
        except OverflowError:
            raise fail(EINVAL, pid, "mem", "offset beyond off_t") from None
        except OSError as e:
            raise _mem_error(e, pid, offset) from None
        finally:
            if own:
                os.close(fd)

    def mem_read(self, pid: int, offset: int, size: int, fd: int | None = None) -> bytes:
        data: bytes = self._mem_io(pid, offset, False, lambda f: os.pread(f, size, offset), fd)
        if len(data) < size:
            # proc_rwmem reports EFAULT even when part of the range was transferred
            raise fail(EFAULT, pid, "mem", f"address {offset + len(data):#x} is not mapped")
        return data

    def mem_write(self, pid: int, offset: int, data: bytes, fd: int | None = None) -> int:
        n = int(self._mem_io(pid, offset, True, lambda f: os.pwrite(f, data, offset), fd))
        if n < len(data):
            raise fail(EFAULT, pid, "mem", f"address {offset + n:#x} is not mapped")
        return n

    # -------------------------------------------------------- regsets
    def read_regset(self, pid: int, name: str, check: Check = None) -> RegSet:
        """check: the tree's rules, re-run on the tracer thread once the target is
        stopped (a stopped target cannot exec between that check and the access)."""
        return self._call(self._op_read, pid, name, check)

    def write_regset(self, pid: int, name: str, data: bytes, check: Check = None) -> int:
        return int(self._call(self._op_write, pid, name, data, check))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.tracer.call(fn, *args)
        except TargetGone:
            raise fail(EIO, args[0], None, "process has exited") from None

    def _lx_read(self, pid: int, name: str, stopsig: int, trapno: int | None) -> RegSet:
        from .ptrace import linux as lx
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
        from .nodes import module_for
        from .ptrace import linux as lx
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
        return self._on_stopped(pid, name, fn, allow_running=(name == "dbregs"))

    def _op_write(self, pid: int, name: str, data: bytes, check: Check = None) -> int:
        def fn(stopsig: int, _trapno: int | None) -> int:
            if check is not None:
                check()
            return self._lx_write(pid, name, data, stopsig)
        return int(self._on_stopped(pid, name, fn, allow_running=False))

    def _on_stopped(self, pid: int, name: str, fn: Callable[[int, int | None], Any],
                    allow_running: bool) -> Any:
        """Run fn on a stopped target (tracer thread): ours, or a transient seize of a
        process stopped by someone else; EBUSY when FreeBSD would say not stopped."""
        from .ptrace import linux as lx
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is not None:
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
                if not self._await_stop(t, 0.5):
                    raise fail(EBUSY, pid, name, "process did not stop for the read")
                return fn(t.stopsig, t.trapno)
            how = lx.singlestep if t.step_pending else lx.cont
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
        state = proc_state(pid)
        if state == "T" and tracer_pid(pid) == 0:
            return self._transient(pid, name, fn)
        if state == "t" or tracer_pid(pid):
            raise fail(EBUSY, pid, name, "traced by another debugger: Linux lets only its "
                       "tracer read registers")
        if allow_running and state in ("R", "S", "D"):
            return self._transient_running(pid, name, fn)
        raise fail(EBUSY, pid, name, "process is not stopped")

    def _resume_after_read(self, t: Any, how: Callable[[int, int], None]) -> None:
        """Resume the way the target ran before we interrupted it.  A step blocked in
        a system call keeps stepping; our interrupt made that call's exit report a
        single-step trap of its own, which is passed over so the call restarts and the
        real trap still comes right after it returns (measured on amd64)."""
        lx, tr = self._lx, self.tracer
        tr.resume(t, how, 0)
        if how is not lx.singlestep or not tr.wait_stop(t, 0.01):
            return
        if (t.stopped and t.event == 0 and t.stopsig == signal.SIGTRAP
                and lx.syscall_restart_pending(t.pid)):
            tr.resume(t, lx.singlestep, 0)

    def _seize(self, pid: int, name: str) -> Any:
        """PTRACE_SEIZE for one transient use; the Target that records its stops."""
        from .ptrace import linux as lx
        from .ptrace.tracer import Target
        try:
            lx.seize(pid, 0)
        except OSError as e:
            if e.errno == _errno.ESRCH:
                raise fail(EIO, pid, name, "process has exited") from None
            raise fail(EBUSY, pid, name, f"cannot seize the process: {e.strerror}") from None
        return Target(pid, 0)

    def _await_stop(self, tmp: Any, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while not tmp.stopped and time.monotonic() < deadline:
            if not self.tracer.wait_stop(tmp, 0.005):
                time.sleep(0.001)
        return bool(tmp.stopped)

    def _hand_off(self, tmp: Any) -> None:
        """PTRACE_DETACH needs a stopped tracee: the tracer loop detaches this one at its
        first stop (Tracer.record), so it is never left traced by us."""
        tmp.transient = True
        self.tracer.targets[tmp.pid] = tmp

    def _transient_running(self, pid: int, name: str,
                           fn: Callable[[int, int | None], Any]) -> Any:
        """FreeBSD reads dbregs of a running process from its saved state; Linux hands
        debug registers only to the tracer of a stopped tracee.  So: seize, interrupt,
        read, detach.  The target runs on; a system call it slept in is restarted by the
        kernel, as after any ptrace stop."""
        from .ptrace import linux as lx
        tmp = self._seize(pid, name)
        try:
            lx.interrupt(pid)
        except OSError:
            pass
        if not self._await_stop(tmp, 0.5):
            self._hand_off(tmp)
            raise fail(EBUSY, pid, name, "process did not stop for the read (blocked in a "
                       "system call)")
        sig = tmp.stopsig if tmp.event == 0 else 0     # a signal came first: deliver it
        try:
            return fn(tmp.stopsig, None)
        finally:
            try:
                lx.detach(pid, sig)
            except OSError:
                pass

    def _transient(self, pid: int, name: str, fn: Callable[[int, int | None], Any]) -> Any:
        """Seize a group-stopped process, use it, detach: it stays group-stopped."""
        from .ptrace import linux as lx
        tmp = self._seize(pid, name)
        try:
            if not self._await_stop(tmp, 0.5):
                lx.interrupt(pid)
                if not self._await_stop(tmp, 0.5):
                    self._hand_off(tmp)
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
            while proc_state(pid) not in ("T", "X", "Z") and time.monotonic() < deadline:
                time.sleep(0.0005)

    # ------------------------------------------------------------- ctl
    def ctl(self, pid: int, cmd: Any, reader: Any, profile: Profile | str | None = None,
            interrupted: Interrupted | None = None, timeout: float | None = None,
            check: Check = None) -> None:
        """One ctl word (cmd from nodes/ctl.parse); p_candebug was checked by the tree,
        and ``check`` repeats it on the tracer thread, where a stopped target cannot
        exec a set-id image between the check and the act."""
        word = cmd.word
        only = get_profile(profile).ctl_attacher_only
        call = self.tracer.call
        try:
            if word == "step":                     # the hot path first
                if check is None:
                    call(self._op_step, pid, reader.pid, only)
                else:
                    call(self._checked, check, self._op_step, pid, reader.pid, only)
            elif word == "attach":
                call(self._attach_checked, pid, reader.pid, check, only)
            elif word == "detach":
                call(self._op_detach, pid)
            elif word == "run":
                call(self._checked, check, self._op_run, pid, reader.pid, only)
            elif word == "wait":
                self._op_wait(pid, reader.pid, only, interrupted, timeout)
            else:
                if check is not None:
                    check()
                self._signal(pid, word, reader.pid, only)
        except TargetGone:
            raise fail(EIO, pid, "ctl", "process has exited") from None

    @staticmethod
    def _checked(check: Check, fn: Callable[..., Any], *args: Any) -> Any:
        if check is not None:
            check()
        return fn(*args)

    def _attach_checked(self, pid: int, reader_pid: int, check: Check,
                        attacher_only: bool = False) -> None:
        """attach, then the rules again on the stopped target: an exec that won the race
        with the tree's check is caught here, and the target is let go."""
        self._op_attach(pid, reader_pid)
        if attacher_only:
            self.tracer.watch_attacher(pid, reader_pid)
        if check is None:
            return
        try:
            check()
        except BaseException:
            t = self.tracer.targets.get(pid)
            if t is not None:
                try:
                    self.tracer.release(t)
                except OSError:
                    pass
            raise

    def _ours_stopped(self, pid: int, reader_pid: int, only: bool, word: str) -> Any:
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is None:
            raise fail(EBUSY, pid, "ctl", f"{word}: not traced through procfs")
        tr.refresh(t)
        if not t.stopped:
            raise fail(EBUSY, pid, "ctl", f"{word}: process is not stopped")
        if only and reader_pid != t.attacher:
            raise fail(EBUSY, pid, "ctl", f"{word}: caller did not attach it (FreeBSD: not "
                       "a child of the caller)")
        return t

    def _op_attach(self, pid: int, reader_pid: int) -> None:
        from .ptrace import linux as lx
        from .ptrace.tracer import Target
        tr = self.tracer
        if pid in tr.targets or tracer_pid(pid):
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
            if tracer_pid(pid):
                raise fail(EBUSY, pid, "ctl", "attach: already traced") from None
            raise fail(EPERM, pid, "ctl", f"attach: {e.strerror}") from None
        was_stopped = proc_state(pid) == "T"
        t = Target(pid, reader_pid, attach_stop=not was_stopped)
        tr.targets[pid] = t
        if not was_stopped:
            # a group-stopped task is re-trapped by PTRACE_SEIZE itself; a second,
            # queued interrupt would swallow the first step
            lx.interrupt(pid)
        tr.wait_stop(t, 0.002)           # usually trapped already; "wait" covers the rest

    def _op_detach(self, pid: int) -> None:
        t = self.tracer.targets.get(pid)
        if t is None:
            if tracer_pid(pid):
                raise fail(EBUSY, pid, "ctl", "detach: traced by another debugger (Linux "
                           "lets only the tracer detach)")
            return                         # not traced: a painless no-op
        try:
            self.tracer.release(t)
        except OSError as e:
            raise fail(EBUSY, pid, "ctl", f"detach: {e.strerror}") from None

    def _op_step(self, pid: int, reader_pid: int, only: bool) -> bool:
        """One instruction.  FreeBSD's step returns once the step is issued; so does
        this one, and it is stopped again for anything the caller does next, except
        over a system call that blocks (it then runs until its trap, which ``wait``
        waits for).

        amd64: PTRACE_SYSEMU_SINGLESTEP never runs a system call (it stops at the
        entry instead), so the trap is microseconds away and the tracer may sit in a
        blocking waitpid, as fast as raw stepping; the caller is answered as soon as
        the step is issued, so its own work overlaps the trap, and its next request
        queues behind the collection.  At a system call the instruction is rewound and
        stepped for real with PTRACE_SINGLESTEP, whose trap is only spun for briefly.
        (Measured alternatives: WNOHANG + sched_yield spinning, or peeking at the next
        instruction before every step, were 5-20 us a step slower under load.)"""
        t = self._ours_stopped(pid, reader_pid, only, "step")
        tr, lx = self.tracer, self._lx
        if self.arch == "amd64":
            t.stepping = True
            tr.resume(t, lx.sysemu_singlestep, 0)
            tr.answer_early(True)
            tr.wait_blocking(t)
            for _ in range(2):             # a pending group-stop re-trap runs nothing
                if not t.stopped or t.event != lx.PTRACE_EVENT_STOP:
                    break
                tr.resume(t, lx.sysemu_singlestep, 0)
                tr.wait_blocking(t)
            if not t.stopped or t.stopsig != lx.SYSCALL_TRAP:
                return True                # the step trap, a signal stop, or exited
            # a system call: run it for real; it may block (a read, a sleep), so the
            # trap is only spun for briefly, then the target counts as running until
            # the tracer's polling sees the trap ("wait" waits for it, as on FreeBSD)
            lx.rewind_syscall(pid)
            # leaving the emulated entry traps at once, before any instruction runs
            tr.resume(t, lx.singlestep, 0)
            tr.wait_blocking(t)
            if not t.stopped or t.stopsig != signal.SIGTRAP or t.event:
                t.stepping = False
                return True
        tr.resume(t, lx.singlestep, 0)
        done = bool(tr.wait_stop(t, self._step_spin))
        t.stepping = False             # blocked in a system call: running, not pinned
        return done

    def _op_run(self, pid: int, reader_pid: int, only: bool) -> None:
        from .ptrace import linux as lx
        t = self._ours_stopped(pid, reader_pid, only, "run")
        self.tracer.resume(t, lx.cont, 0)

    def _signal(self, pid: int, word: str, reader_pid: int, only: bool) -> None:
        if word in NO_LINUX_SIGNAL:
            raise fail(EOPNOTSUPP, pid, "ctl", NO_LINUX_SIGNAL[word])
        if word not in LINUX_SIGNALS:
            raise fail(EOPNOTSUPP, pid, "ctl", f"unknown ctl command {word!r}")
        self.tracer.call(self._op_signal, pid, LINUX_SIGNALS[word] or 0, reader_pid, only)

    def _op_signal(self, pid: int, sig: int, reader_pid: int, only: bool) -> None:
        tr = self.tracer
        t = tr.targets.get(pid)
        if t is not None:
            tr.refresh(t)
            if t.stopped and (not only or reader_pid == t.attacher):
                tr.resume_with(t, sig)       # TRACE_WAIT_P: the signal resumes it
                return
        if sig:
            try:
                os.kill(pid, sig)            # kern_psignal: simply posted
            except ProcessLookupError:
                raise fail(EIO, pid, "ctl", "process has exited") from None
            except PermissionError:
                raise fail(EPERM, pid, "ctl", "no right to signal the target") from None

    def _op_wait(self, pid: int, reader_pid: int, only: bool, interrupted: Interrupted | None,
                 timeout: float | None) -> None:
        t = self.tracer.targets.get(pid)
        if t is not None:
            if only and reader_pid != t.attacher:
                raise fail(EBUSY, pid, "ctl", "wait: caller did not attach it")
            if t.stepping:
                self.tracer.call(int)          # queue behind the step being collected
            self._wait_traced(pid, interrupted, timeout, "wait")
            if pid not in self.tracer.targets:
                raise fail(EBUSY, pid, "ctl", "wait: process exited")
            return
        if tracer_pid(pid):
            raise fail(EBUSY, pid, "ctl", "wait: traced by another debugger")
        # Not traced: FreeBSD sleeps *while* the process is stopped (spec section 9, sic).
        self._wait_for(lambda: proc_state(pid) not in ("T", "t"), pid, interrupted, timeout)

    def _wait_traced(self, pid: int, interrupted: Interrupted | None, timeout: float | None,
                     word: str) -> None:
        tr = self.tracer

        def done() -> bool:
            t = tr.targets.get(pid)
            return t is None or t.stopped
        self._wait_for(done, pid, interrupted, timeout, word)

    def _wait_for(self, done: Callable[[], bool], pid: int, interrupted: Interrupted | None,
                  timeout: float | None, word: str = "wait") -> None:
        """Block the caller (never the tracer thread) until done(); EINTR if interrupted."""
        tr = self.tracer
        if done():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with tr.cond:
            tr._waiters += 1
        tr.poke()
        try:
            while not done():
                if interrupted is not None and interrupted():
                    raise fail(EINTR, pid, "ctl", f"{word}: interrupted")
                if deadline is not None and time.monotonic() >= deadline:
                    raise fail(EINTR, pid, "ctl", f"{word}: timed out after {timeout}s")
                with tr.cond:
                    tr.cond.wait(0.02)
        finally:
            with tr.cond:
                tr._waiters -= 1

    # ------------------------------------------------------------ misc
    def detach_all(self) -> None:
        if self.tracer.targets:
            self.tracer.call(self.tracer.release_all)

    def close(self) -> None:
        self.detach_all()


def _mem_error(e: OSError, pid: int, offset: int) -> OSError:
    if e.errno in (_errno.EIO, _errno.EFAULT):
        return fail(EFAULT, pid, "mem", f"address {offset:#x} is not mapped")
    if e.errno in (_errno.EPERM, _errno.EACCES):
        return fail(EPERM, pid, "mem", "no right to debug the target")
    if e.errno == _errno.ESRCH:
        return fail(EIO, pid, "mem", "process has exited")
    return fail(e.errno or EIO, pid, "mem", e.strerror)


def _regs_error(e: OSError, pid: int, name: str) -> OSError:
    if e.errno == _errno.ESRCH:              # running tracee or not ours
        return fail(EBUSY, pid, name, "process is not stopped under our tracer")
    if e.errno in (_errno.EPERM, _errno.EACCES):
        return fail(EPERM, pid, name, "no right to debug the target")
    return fail(e.errno or EIO, pid, name, e.strerror)


_DEBUGGER: Any = None


def get_debugger() -> Any:
    """The process-wide debugger (one tracer thread per process, as Linux requires)."""
    global _DEBUGGER
    if _DEBUGGER is None:
        _DEBUGGER = FreeBSDPtrace() if sys.platform.startswith("freebsd") else LinuxDebugger()
    return _DEBUGGER


class FreeBSDPtrace:
    """ctl on FreeBSD >= 11 (no native ctl node) through ptrace(2), via python-ptrace's
    FreeBSD binding (PT_ATTACH/PT_DETACH/PT_STEP/PT_CONTINUE).  FreeBSD needs no
    tracer thread: any thread of the tracing process may issue requests.
    UNTESTED: this code cannot run on the Linux CI; it is kept deliberately small."""

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
