"""Letting tracees go: detach in every state, park stops that our death would turn
into a signal, release the tracees of a dead attacher, the shutdown path.  The
middle layer of the Tracer (stops.py <- release.py <- tracer.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from . import linux as lx
from .stops import Stops, Target, TargetGone

PARK_DELAY = 0.02           # idle time before signal-delivery stops are parked
EAGER_PARK = True           # park a step's trap stop at once when nothing else is queued


class Releasing(Stops):
    def __init__(self) -> None:
        super().__init__()
        #: clears a tracee's hardware breakpoints (set by the debugger, per arch)
        self.disarm: Callable[[int], None] | None = None
        #: target pid -> pidfd of its attacher, for profiles where only the attacher may
        #: drive it (FreeBSD 10): when the attacher exits, nobody else could ever resume
        #: the target, so it is let go (FreeBSD's exit1() frees a dying debugger's tracees)
        self.attachers: dict[int, int] = {}

    def watch_attacher(self, pid: int, attacher: int) -> None:
        try:
            self.attachers[pid] = os.pidfd_open(attacher)
        except OSError:
            pass                             # not a live process (a synthetic reader)

    def _orphans(self) -> bool:
        """Release targets whose attacher exited; drop watches of released targets."""
        changed = False
        for pid, fd in list(self.attachers.items()):
            t = self.targets.get(pid)
            if t is not None:
                if not lx.pidfd_exited(fd):
                    continue
                try:
                    self.release(t)
                except OSError:
                    pass
                changed = True
            del self.attachers[pid]
            os.close(fd)
        return changed

    def reap(self) -> None:
        changed = self._orphans() if self.attachers else False
        for t in list(self.targets.values()):
            changed |= self.refresh(t, stopped_too=True)
        if changed:
            with self.cond:
                self.cond.notify_all()

    def park(self, t: Target) -> None:
        """Turn a signal-delivery stop into an event stop: if this process dies, Linux
        releases tracees with their pending stop signal delivered (a step's SIGTRAP would
        kill the target); from an event stop they just run.  Costs INTERRUPT+CONT+wait,
        so it is done only once the tracer has been idle for PARK_DELAY."""
        if not t.parkable:
            return                          # a real signal stays pending for delivery
        gen_sig = t.stopsig
        trapno = lx.trapno(t.pid, gen_sig)
        try:
            lx.interrupt(t.pid)
            lx.cont(t.pid, 0)
        except ProcessLookupError:
            return
        t.stopped = False
        if self.wait_stop(t, 0.5) and t.stopped:
            t.parked, t.trapno, t.stopsig = True, trapno, gen_sig
        else:
            t.swallow_trap = True

    def settle(self, t: Target) -> None:
        """Right after a step's trap: park it at once unless the caller's next request
        is already queued, so the window in which our death would deliver the trap's
        SIGTRAP is the stepping itself, not PARK_DELAY of idleness."""
        if EAGER_PARK and t.parkable and self.idle():
            try:
                self.park(t)
            except OSError:
                pass

    def park_all(self) -> None:
        for t in list(self.targets.values()):
            try:
                self.park(t)
            except OSError:
                continue

    def release(self, t: Target, disarm: bool = False, deliver: bool = True) -> None:
        """Detach whatever the state, leaving the target as if never traced.

        * Linux needs a stopped tracee: a running one is interrupted; one that cannot
          stop now (a vfork parent, a call that ignores signals) is detached by the
          loop at its first stop (``transient``), so detach never fails or blocks.
        * A pending SIGTRAP is dropped first (procfs_ctl.c, PROCFS_CTL_DETACH:
          "remove pending SIGTRAP, else the process will die").
        * The stop signal of a signal-delivery stop is delivered when ``deliver``
          (compat: what the process would have got untraced), else dropped
          (procfs_ctl.c: "p->p_xstat = 0;" before every word but attach).
        * A group stop we resumed it from (run/step/a signal word) is ended with
          SIGCONT (FreeBSD's run: "p->p_flag &= ~P_STOPPED_SIG;"); one still in effect
          is left to Linux, which keeps the process stopped, as it was.
        * disarm (shutdown only): clear the hardware breakpoints first, which would
          otherwise SIGTRAP the untraced process at their next hit.
        PTRACE_DETACH itself clears the trace flag (ptrace_disable)."""
        if not t.stopped and not self.interrupt_stop(t, 0.3):
            if t.pid in self.targets:
                t.transient = True           # record() detaches it at its first stop
            return
        if disarm and self.disarm is not None:
            try:
                self.disarm(t.pid)
            except OSError:
                pass
        sig = 0
        if (deliver and t.event == 0 and 0 < t.stopsig < 65
                and t.stopsig not in (signal.SIGTRAP, signal.SIGSTOP)):
            sig = t.stopsig
        if self._drop_sigtrap(t):
            if t.pid not in self.targets:
                return                       # it died meanwhile
            if (deliver and t.event == 0 and 0 < t.stopsig < 65
                    and t.stopsig not in (signal.SIGTRAP, signal.SIGSTOP)):
                sig = t.stopsig              # a real signal came up first
        group = t.group_resumed
        self.targets.pop(t.pid, None)
        try:
            lx.detach(t.pid, sig)
        except ProcessLookupError:
            self._reap_dead(t.pid)
            return
        if group:
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                if lx.proc_state(t.pid) in ("T", "t"):
                    os.kill(t.pid, signal.SIGCONT)
                    break
                time.sleep(0.002)

    def _reap_dead(self, pid: int) -> None:
        """A tracee that died under us (SIGKILL) is a zombie only our waitpid releases
        to its real parent: collect it now (its exit is reported within microseconds)."""
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                got, status = os.waitpid(pid, lx.WALL | os.WNOHANG)
            except ChildProcessError:
                return
            if got:
                if not os.WIFSTOPPED(status):
                    self.exits[pid] = status
                    return
                continue
            time.sleep(0.001)

    def _drop_sigtrap(self, t: Target) -> bool:
        """FreeBSD's sigqueue_delete_proc(p, SIGTRAP): Linux cannot delete a pending
        signal, but a tracee dequeues it into a signal-delivery stop, where resuming
        with 0 discards it.  So: continue from our stop until that stop (the kernel
        dequeues before returning to user mode, so no instruction runs).  True if the
        target was resumed for it (its new stop is in ``t``)."""
        bit = 1 << (signal.SIGTRAP - 1)
        resumed = False
        for _ in range(4):
            if not lx.pending_unblocked(t.pid) & bit:
                return resumed
            try:
                self.resume(t, lx.cont, 0)
            except TargetGone:
                return True
            resumed = True
            if not self.wait_stop(t, 0.2) and not self.interrupt_stop(t, 0.3):
                return True
            if t.pid not in self.targets:
                return True
            if not (t.event == 0 and t.stopsig == signal.SIGTRAP):
                return True                  # something else came first: leave it
        return resumed

    def release_all(self) -> None:
        """The shutdown path (atexit, SIGTERM/SIGINT, unmount): nothing stays stopped,
        and no breakpoint we may have armed outlives us."""
        for t in list(self.targets.values()):
            try:
                self.release(t, disarm=True)
            except OSError:
                continue
