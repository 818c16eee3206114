"""The tracer thread: the one thread that makes every ptrace request and every
waitpid of a traced process (Linux accepts ptrace only from the thread that
attached, and a second waitpid caller would steal statuses).

Callers hand a function to :meth:`Tracer.call`; it runs on the tracer thread and
the caller blocks on a bare ``_thread`` lock until the result is back.  That
handoff was measured at ~10 us on this VM against ~28 us for a
``queue.Queue`` + ``threading.Event`` round trip, which is what makes a stepped
``ctl`` within reach of raw PTRACE_SINGLESTEP (linux-mapping.md section 6).

Per target the tracer knows: attached by whom, stopped or running, the last
stop signal and ptrace event, exited.  It learns only through its own waitpid,
which is why a target it holds stopped needs no /proc re-read: it cannot run,
exec or exit without our waitpid seeing it.

Blocking is never done on the tracer thread: ``wait`` (and a ``step`` over a
system call that does not trap within a few ms) is a caller-side loop on a
condition variable, while the tracer polls waitpid(WNOHANG) every 2 ms as long
as someone waits.  The only blocking waitpid is for a PTRACE_SYSEMU_SINGLESTEP,
which cannot enter a system call.  A request may be answered early
(:meth:`Tracer.answer_early`): ``step`` answers once the step is issued and the
tracer collects the trap while the caller runs; requests are served in order, so
nothing the caller does next can see the step unfinished.

Measured on this 2-vCPU VM (others' tests running), median per step: raw
SINGLESTEP + waitpid 27 us; through an open ctl handle 39-42 us (0.64-0.69x);
``ProcFS.write(pid, "ctl", b"step")`` 44-46 us (0.58-0.61x).
"""

from __future__ import annotations

import _thread
import atexit
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import linux as lx

POLL_WAITING = 0.002        # waitpid(WNOHANG) period while a caller waits
POLL_RUNNING = 0.25         # reaping period while traced targets run
POLL_STOPPED = 0.1          # reaping period of stopped targets (a SIGKILL ends them)
PARK_DELAY = 0.02           # idle time before signal-delivery stops are parked
STEP_SPIN = 0.005           # how long a step spins for its trap before going slow
EAGER_PARK = True           # park a step's trap stop at once when nothing else is queued


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


class Tracer:
    def __init__(self) -> None:
        self.targets: dict[int, Target] = {}
        self.exits: dict[int, int] = {}          # pid -> last wait status of a traced exit
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cond = threading.Condition()
        self._waiters = 0
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._start_lock = threading.Lock()
        self._last_req = 0.0
        self._last_reap = 0.0
        self._current: Any = None
        #: clears a tracee's hardware breakpoints (set by the debugger, per arch)
        self.disarm: Callable[[int], None] | None = None
        #: target pid -> pidfd of its attacher, for profiles where only the attacher may
        #: drive it (FreeBSD 10): when the attacher exits, nobody else could ever resume
        #: the target, so it is let go (FreeBSD's exit1() frees a dying debugger's tracees)
        self.attachers: dict[int, int] = {}

    # ------------------------------------------------------------ thread
    def _ensure(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self.targets.clear()       # a dead tracer thread released every tracee
                t = threading.Thread(target=self._loop, name="bsdprocfs-tracer", daemon=True)
                t.start()
                self._thread = t
                while self._ident is None or self._ident != t.ident:
                    time.sleep(0.0005)
                _install_safety(self)

    def on_tracer_thread(self) -> bool:
        return threading.get_ident() == self._ident

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the tracer thread and return (or raise) its result."""
        if threading.get_ident() == self._ident:
            outer, self._current = self._current, None     # answer_early is for callers
            try:
                return fn(*args)
            finally:
                self._current = outer
        th = self._thread
        if th is None or not th.is_alive():
            self._ensure()
        lk = _thread.allocate_lock()
        lk.acquire()
        box: list[Any] = [None, None]
        self._q.put((fn, args, box, lk))
        lk.acquire()
        if box[1] is not None:
            raise box[1]
        return box[0]

    def poke(self) -> None:
        """Wake the loop so it re-reads its poll period."""
        self._q.put(None)

    def _timeout(self) -> float | None:
        if self._waiters:
            return POLL_WAITING
        if any(t.parkable for t in self.targets.values()):
            return PARK_DELAY
        if self.targets:
            # stopped ones too: a SIGKILLed tracee must be reaped at once, or its real
            # parent's wait(2) hangs until this process exits
            return POLL_STOPPED
        if self.attachers:
            return POLL_RUNNING
        return None

    def _loop(self) -> None:
        """Bookkeeping happens before the caller's lock is released, so the caller
        gets the GIL as soon as this thread blocks in get() again: one handoff."""
        self._ident = threading.get_ident()
        get, mono = self._q.get, time.monotonic
        timeout: float | None = None
        while True:
            try:
                item = get(timeout=timeout) if timeout is not None else get()
            except queue.Empty:
                item = None
            now = mono()
            if item is None:
                self._last_reap = now
                try:
                    self.reap()
                    if now - self._last_req >= PARK_DELAY:
                        self.park_all()
                    timeout = self._timeout()
                except OSError:              # e.g. ESRCH: a target died mid-bookkeeping
                    timeout = POLL_RUNNING
                continue
            if item == "exit":
                return
            fn, args, box, lk = item
            self._current = item
            try:
                res = fn(*args)
                if self._current is item:
                    box[0] = res
            except BaseException as e:      # noqa: BLE001 - handed to the caller
                if self._current is item:
                    box[1] = e
            self._last_req = now
            try:
                if self._waiters or now - self._last_reap >= POLL_RUNNING:
                    self._last_reap = now
                    self.reap()
                timeout = self._timeout()
            except OSError:                  # a target vanished under our bookkeeping
                timeout = POLL_RUNNING
            finally:                         # the caller is answered whatever happened
                if self._current is item:
                    self._current = None
                    lk.release()
            if self._q.empty():
                # idle: no trap stop waits for PARK_DELAY, so a SIGKILL of this
                # process a moment after any request finds nothing to deliver
                try:
                    self.park_all()
                except OSError:
                    pass

    def answer_early(self, value: Any) -> None:
        """Hand the current request its result now and keep working on its behalf:
        requests are served in order, so the caller's next one still sees the work
        finished.  Errors after this point are the tracer's to handle."""
        item = self._current
        if item is not None:
            self._current = None
            item[2][0] = value
            item[3].release()

    def stop_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._q.put("exit")
            self._thread.join(5)

    # -------------------------------------------------------- wait status
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

    # ----------------------------------------------------------- resume
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
        if EAGER_PARK and t.parkable and self._q.empty():
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

    # ------------------------------------------------------------ release
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
            return
        if group:
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                if lx.proc_state(t.pid) in ("T", "t"):
                    os.kill(t.pid, signal.SIGCONT)
                    break
                time.sleep(0.002)

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


# ---------------------------------------------------------------- safety
_installed: set[int] = set()


def _install_safety(tr: Tracer) -> None:
    """atexit + SIGTERM/SIGINT: detach every tracee and leave it running.  If the
    process is SIGKILLed instead, Linux releases the tracees itself (parked ones
    resume; see Tracer.park)."""
    if id(tr) in _installed:
        return
    _installed.add(id(tr))

    def detach_all() -> None:
        if tr._thread is not None and tr._thread.is_alive() and tr.targets:
            try:
                tr.call(tr.release_all)
            except Exception:        # noqa: BLE001 - best effort at exit
                pass

    atexit.register(detach_all)
    if threading.current_thread() is not threading.main_thread():
        return          # signal handlers can only be set from the main thread
    for signum in (signal.SIGTERM, signal.SIGINT):
        prev = signal.getsignal(signum)
        if prev not in (signal.SIG_DFL, signal.default_int_handler):
            continue    # the application has its own handler: leave it alone

        def handler(sig: int, frame: Any, prev: Any = prev) -> None:
            detach_all()
            signal.signal(sig, prev)
            if prev is signal.default_int_handler:
                raise KeyboardInterrupt
            os.kill(os.getpid(), sig)

        try:
            signal.signal(signum, handler)
        except ValueError:
            pass
