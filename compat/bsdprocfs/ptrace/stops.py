"""What the tracer knows of each tracee, learned only through its own waitpid:
the stops (record), resuming, interrupting.  Base of the Tracer (tracer.py); every
method runs on the tracer thread."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import linux as lx


@dataclass
class Target:
    pid: int
    attacher: int                       # reader pid that wrote "attach"
    stopped: bool = False
    stopsig: int = 0                    # Linux signal of the last stop (SIGSTOP after attach)
    event: int = 0                      # PTRACE_EVENT_* of the last stop (0: signal stop)
    trapno: int | None = None           # FreeBSD r_trapno remembered when a stop is parked
    parked: bool = False                # moved from a signal-delivery stop to an event stop
    group_stop: bool = False            # a group stop (SIGSTOP & co) was seen while traced
    swallow_trap: bool = False          # a PTRACE_INTERRUPT trap is still queued
    attach_stop: bool = False           # the next interrupt stop is the one "attach" asked for
    stepping: bool = False              # a step answered early whose trap is being collected
    step_pending: bool = False          # resumed by PTRACE_SINGLESTEP, its trap not yet seen
    sysstep: bool = False               # a step running a system call (PTRACE_SYSCALL)
    sys_entered: bool = False           # ... whose real entry stop was seen
    group_resumed: bool = False         # resumed by us from a group stop (detach: SIGCONT)
    interrupting: bool = False          # our PTRACE_INTERRUPT is in flight
    forward: int = 0                    # a signal we posted to resume with: deliver its stop
    gen: int = 0                        # bumps on every stop
    transient: bool = False             # seized only for one read: detach at its first stop

    @property
    def parkable(self) -> bool:
        return (self.stopped and not self.parked and self.event == 0
                and self.stopsig in (signal.SIGTRAP, signal.SIGSTOP))


class TargetGone(Exception):
    """The target exited (or stopped being ours) under a request."""


class Stops:
    """Tracees and their stops; a subclass supplies release() (release.py)."""

    def __init__(self) -> None:
        self.targets: dict[int, Target] = {}
        self.exits: dict[int, int] = {}          # pid -> last wait status of a traced exit
        self.cond = threading.Condition()         # notified when a target's state changed

    def idle(self) -> bool:
        """No request waits for the tracer (the Tracer asks its queue)."""
        return True

    def record(self, t: Target, status: int) -> None:
        if os.WIFSTOPPED(status):
            sig, event = os.WSTOPSIG(status), status >> 16
            if t.transient:
                # a transient read gave up before this stop came (the target was blocked
                # in a system call, e.g. waiting on this very daemon): let it go now, with
                # a signal that stopped it delivered, so nothing stays stopped by us
                self.targets.pop(t.pid, None)
                real = event == 0 and 0 < sig < 65 and sig != signal.SIGTRAP
                try:
                    lx.detach(t.pid, sig if real else 0)
                except OSError:
                    pass
                return
            if t.sysstep and event == 0 and sig == lx.SYSCALL_TRAP and self._syscall_stop(t):
                return
            if t.forward:
                if event == 0 and sig == t.forward:
                    t.forward = 0
                    lx.cont(t.pid, sig)         # the signal "resume with SIG" asked for
                    return
                if event == lx.PTRACE_EVENT_STOP:
                    lx.cont(t.pid, 0)           # e.g. the SIGCONT notify trap of a seized task
                    return
            if t.swallow_trap and event == lx.PTRACE_EVENT_STOP and sig == signal.SIGTRAP:
                # the queued PTRACE_INTERRUPT of an interrupt-read-continue: not a real stop
                t.swallow_trap = False
                lx.cont(t.pid, 0)
                return
            t.stopped, t.stopsig, t.event, t.gen = True, sig, event, t.gen + 1
            t.stepping = t.step_pending = t.sysstep = False
            t.parked, t.trapno = False, None
            if event == lx.PTRACE_EVENT_STOP and sig in (signal.SIGSTOP, signal.SIGTSTP,
                                                         signal.SIGTTIN, signal.SIGTTOU):
                t.group_stop = True
            if t.attach_stop and event == lx.PTRACE_EVENT_STOP:
                t.attach_stop = False
                t.stopsig = signal.SIGSTOP       # FreeBSD's attach stops with SIGSTOP
            if event == lx.PTRACE_EVENT_EXEC:
                t.stopsig = signal.SIGTRAP       # FreeBSD stops a traced exec with SIGTRAP
        else:
            self.exits[t.pid] = status
            if len(self.exits) > 256:
                self.exits.pop(next(iter(self.exits)))
            self.targets.pop(t.pid, None)
            t.stopped = t.stepping = False

    def _syscall_stop(self, t: Target) -> bool:
        """A syscall stop of a step running a system call: pass it on (True) unless it
        is the exit of the real call with its result, which completes the step (as
        FreeBSD's trap after a system call: pc past the instruction, the result in
        place).  An exit with a restart code means a signal or our interrupt cut the
        call short: the kernel restarts it, so the step goes on."""
        try:
            op, val = lx.syscall_info(t.pid)
        except OSError:
            return False
        if op == lx.PTRACE_SYSCALL_INFO_ENTRY:
            t.sys_entered = True
        elif op == lx.PTRACE_SYSCALL_INFO_EXIT and t.sys_entered and val not in lx.RESTART:
            t.stopped, t.stopsig, t.event, t.gen = True, signal.SIGTRAP, 0, t.gen + 1
            t.stepping = t.step_pending = t.sysstep = t.sys_entered = False
            # a syscall stop is already safe if we die (SIGTRAP|0x80 is never posted)
            t.parked, t.trapno = True, lx.T_TRCTRAP
            return True
        elif op == lx.PTRACE_SYSCALL_INFO_EXIT and t.sys_entered and t.interrupting:
            # our interrupt cut the call short: this stop is the interrupt's own ("any
            # trap clears pending STOP trap", kernel/signal.c), the call restarts on resume
            t.stopped, t.stopsig, t.event, t.gen = True, signal.SIGTRAP, lx.PTRACE_EVENT_STOP, \
                t.gen + 1
            t.stepping = t.step_pending = t.sysstep = t.sys_entered = False
            t.parked = True
            return True
        else:
            # the emulated entry's own exit, or a call cut short to be restarted
            t.sys_entered = False
        lx.syscall_step(t.pid, 0)
        return True

    def refresh(self, t: Target, stopped_too: bool = False) -> bool:
        """waitpid(WNOHANG) a running target (or, with stopped_too, one we hold stopped,
        which only a SIGKILL can end); True if its state changed."""
        if t.stopped and not stopped_too:
            return False
        try:
            pid, status = os.waitpid(t.pid, lx.WALL | os.WNOHANG)
        except ChildProcessError:
            self.targets.pop(t.pid, None)        # no longer ours (reaped elsewhere)
            return True
        if pid == 0:
            return False
        self.record(t, status)
        return True

    def wait_stop(self, t: Target, spin: float) -> bool:
        """Spin briefly for the next stop (the trap of a step is ~10 us away); False if
        the target still runs after ``spin`` seconds."""
        wp, yld = os.waitpid, os.sched_yield
        deadline = time.monotonic() + spin
        while True:
            try:
                pid, status = wp(t.pid, lx.WALL | os.WNOHANG)
            except ChildProcessError:
                self.targets.pop(t.pid, None)
                return True
            if pid:
                self.record(t, status)
                if t.stopped or t.pid not in self.targets:
                    return True
            elif time.monotonic() > deadline:
                return False
            yld()

    def pass_entry(self, t: Target, limit: float = 0.05) -> None:
        """A step running a system call: spin until its entry stop is passed on (it is
        immediate), so the target is back in its call rather than in a stop."""
        deadline = time.monotonic() + limit
        while t.sysstep and not t.sys_entered and not t.stopped and t.pid in self.targets:
            if self.wait_stop(t, 0.0005) and (t.stopped or t.pid not in self.targets):
                return
            if time.monotonic() > deadline:
                return

    def wait_blocking(self, t: Target) -> bool:
        """Blocking waitpid: only for a stop known to be microseconds away (a
        PTRACE_SYSEMU_SINGLESTEP, which never enters a system call)."""
        try:
            _pid, status = os.waitpid(t.pid, lx.WALL)
        except ChildProcessError:
            self.targets.pop(t.pid, None)
            return True
        self.record(t, status)
        return t.stopped or t.pid not in self.targets

    def resume(self, t: Target, how: Callable[[int, int], None], sig: int) -> None:
        try:
            how(t.pid, sig)
        except ProcessLookupError:
            self._gone(t)
        if t.group_stop and t.stopped:
            t.group_resumed = True
        t.stopped, t.parked = False, False
        t.step_pending = how is lx.singlestep
        t.sysstep = how is lx.syscall_step
        if t.sysstep:
            t.sys_entered = False

    def resume_with(self, t: Target, sig: int) -> None:
        """PTRACE_CONT delivering sig.  Linux injects a signal only at a signal-delivery
        stop; from an event stop (attach, parked, group stop) the signal is posted and its
        delivery stop, when it comes, is passed straight on (see record)."""
        if sig == signal.SIGKILL:
            os.kill(t.pid, sig)                 # nothing to resume: it dies stopped or not
            t.stopped = t.parked = False
            return
        if sig and t.event != 0:
            os.kill(t.pid, sig)
            t.forward = sig
            sig = 0
        self.resume(t, lx.cont, sig)

    def _gone(self, t: Target) -> None:
        """ESRCH on a target we believed stopped: it was SIGKILLed; reap it."""
        t.stopped = False
        deadline = time.monotonic() + 1.0
        while t.pid in self.targets and time.monotonic() < deadline:
            self.refresh(t)
            if t.pid in self.targets:
                time.sleep(0.001)
        self.targets.pop(t.pid, None)
        raise TargetGone(t.pid)

    def interrupt_stop(self, t: Target, limit: float = 2.0) -> bool:
        """PTRACE_INTERRUPT a running tracee and wait (bounded) for a stop.  A signal stop
        that arrives first is kept; the still-queued interrupt trap is swallowed later."""
        self.refresh(t)
        if t.stopped or t.pid not in self.targets:
            return t.stopped
        # A signal posted for "resume with SIG" is still queued: its delivery stop, if it
        # comes first, is now a real stop (kept, and delivered on resume or detach), and
        # the interrupt's own event stop must not be passed on as the forward's companion.
        t.forward = 0
        lx.interrupt(t.pid)
        t.interrupting = True
        deadline = time.monotonic() + limit
        try:
            while not t.stopped and t.pid in self.targets and time.monotonic() < deadline:
                if not self.wait_stop(t, 0.002):
                    time.sleep(0.001)
        finally:
            t.interrupting = False
        if t.stopped and t.event != lx.PTRACE_EVENT_STOP:
            t.swallow_trap = True
        return t.stopped
