"""The bound on blocking waits: a caller holding many blocked ctl waits must never
hold the threads that serve everyone else.  One gate counts them in the daemon,
across every per-credential worker (boundary.py), and one in each tracer (ctl.py)."""

from __future__ import annotations

import errno as _errno
import threading

from ..errors import fail

#: blocking waits a caller uid may hold at once, and all callers together; past it
#: EAGAIN, FreeBSD's errno for a per-user resource limit (fork's maxprocperuid)
MAX_WAITS_PER_CALLER = 64
MAX_WAITS = 192


class WaitGate:
    """Slots for blocking waits, counted per caller uid (EAGAIN past the bound)."""

    def __init__(self, per_caller: int = MAX_WAITS_PER_CALLER, total: int = MAX_WAITS) -> None:
        self.per_caller, self.total = per_caller, total
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}

    def take(self, uid: int, pid: int) -> None:
        with self._lock:
            n = self._held.get(uid, 0)
            if n >= self.per_caller or sum(self._held.values()) >= self.total:
                raise fail(_errno.EAGAIN, pid, "ctl", f"wait: {n} blocking waits of uid "
                           f"{uid} already (bound {self.per_caller} per caller)")
            self._held[uid] = n + 1

    def give(self, uid: int) -> None:
        with self._lock:
            n = self._held.get(uid, 1) - 1
            if n > 0:
                self._held[uid] = n
            else:
                self._held.pop(uid, None)
