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

Blocking is never done on the tracer thread: ``wait`` (and a ``step`` that
runs a system call which blocks) is a caller-side loop on a condition
variable, while the tracer polls waitpid(WNOHANG) every 2 ms as long as someone
waits, and every 0.1 s otherwise (stopped targets too: a SIGKILLed tracee must be
reaped at once, or its real parent's wait hangs).  The only blocking waitpid is
for a stop known to be microseconds away (a PTRACE_SYSEMU_SINGLESTEP, which
cannot enter a system call, and the syscall stops around a rewound call).

Safety if this process is SIGKILLed (Linux releases the tracees itself): a
signal-delivery stop of SIGTRAP would deliver it (death), a trace flag left
armed would trap.  So a step's trap is *parked* (turned into an event stop) before
the step answers, an idle tracer parks whatever it holds, and a step that runs a
system call runs it under PTRACE_SYSCALL, which arms nothing while it blocks
(see ctl.py and docs/fidelity.md for the remaining window).

Measured on this 2-vCPU VM (others' tests running): a step request, resume to
parked trap, median 55 us; through an open ctl handle 0.2-0.45x of raw
SINGLESTEP + waitpid under that load.
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
from typing import Any

from .release import EAGER_PARK, PARK_DELAY, Releasing
from .stops import Stops, Target, TargetGone

__all__ = ["EAGER_PARK", "PARK_DELAY", "POLL_RUNNING", "POLL_STOPPED", "POLL_WAITING",
           "STEP_SPIN", "Stops", "Target", "TargetGone", "Tracer"]

POLL_WAITING = 0.002        # waitpid(WNOHANG) period while a caller waits
POLL_RUNNING = 0.25         # reaping period while traced targets run
POLL_STOPPED = 0.1          # reaping period of stopped targets (a SIGKILL ends them)
STEP_SPIN = 0.005           # how long a step spins for its trap before going slow


class Tracer(Releasing):
    """The tracer thread over the tracees' bookkeeping (stops.py, release.py)."""

    def __init__(self) -> None:
        super().__init__()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiters = 0
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._start_lock = threading.Lock()
        self._last_req = 0.0
        self._last_reap = 0.0
        self._current: Any = None

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

    def idle(self) -> bool:
        return self._q.empty()

    def stop_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._q.put("exit")
            self._thread.join(5)


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
