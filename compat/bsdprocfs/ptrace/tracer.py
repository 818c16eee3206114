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
PARK_DELAY = 0.02           # idle time before signal-delivery stops are parked
STEP_SPIN = 0.005           # how long a step spins for its trap before going slow


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
        if any(not t.stopped for t in self.targets.values()):
            return POLL_RUNNING
        if any(t.parkable for t in self.targets.values()):
            return PARK_DELAY
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
                try:
                    lx.detach(t.pid, sig if event == 0 and sig != signal.SIGTRAP else 0)
                except OSError:
                    pass
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
            t.stepping = t.step_pending = False
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

    def refresh(self, t: Target) -> bool:
        """waitpid(WNOHANG) a running target; True if its state changed."""
        if t.stopped:
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
            changed |= self.refresh(t)
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
        t.stopped, t.parked = False, False
        t.step_pending = how is lx.singlestep

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
        deadline = time.monotonic() + limit
        while not t.stopped and t.pid in self.targets and time.monotonic() < deadline:
            if not self.wait_stop(t, 0.002):
                time.sleep(0.001)
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

    def park_all(self) -> None:
        for t in list(self.targets.values()):
            try:
                self.park(t)
            except OSError:
                continue

    # ------------------------------------------------------------ release
    def release(self, t: Target, disarm: bool = False) -> None:
        """Detach whatever the state: stop it first (Linux needs a stopped tracee), keep
        a pending real signal, resume a group stop with SIGCONT (FreeBSD's detach
        resumes the process).  disarm (shutdown only): clear the hardware breakpoints
        first, which otherwise stay armed and would SIGTRAP the untraced process."""
        if not t.stopped and not self.interrupt_stop(t):
            if t.pid in self.targets:
                self.targets.pop(t.pid, None)
                raise OSError(16, "tracee did not stop for detach")
            return
        if disarm and self.disarm is not None:
            try:
                self.disarm(t.pid)
            except OSError:
                pass
        sig = 0
        if t.event == 0 and t.stopsig not in (signal.SIGTRAP, signal.SIGSTOP):
            sig = t.stopsig
        group = t.group_stop
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
