"""ctl never harms its target (any implementation, native FreeBSD /proc included):
after ``detach`` a process continues exactly as if never attached.

Subjects are portable and fully known: ``sleep D`` (blocked in nanosleep) must
exit 0 after D seconds, within [D, D + SLACK]; a shell blocked in ``read`` must
print the line written after the sequence.  The sequences are the ones users
type: attach/detach, attach/step/detach (FreeBSD: the step of a process blocked
in a system call completes when the call returns, so nothing is cut short and
no SIGTRAP is left behind: "remove pending SIGTRAP, else the process will die",
procfs_ctl.c), and signal words whose default action is to ignore.  No ``wait``:
its traced meaning differs between releases (10.4 sleeps while the child is
stopped), checked in test_ctl.py.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
import time

import pytest

from bsdprocfs_conformance.targets import write
from bsdprocfs_conformance.util import need_ctl

ctl = pytest.mark.procfs("ctl", "ctl")

D = 2.0               # the sleeping subject's whole sleep, seconds
SLACK = 1.0           # scheduling slack


def _ps_state(pid: int) -> str:
    """The first letter of ps(1)'s STAT (portable: FreeBSD and procps), '' once gone."""
    r = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return r.stdout.strip()[:1]


def _until(cond, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def _words(target, pid: int, words: list[str]) -> list[int]:
    out = []
    for w in words:
        if w == "<stopped>":            # attach's stop, seen from outside (no "wait")
            assert _until(lambda: _ps_state(pid) in ("T", "t"), 5), "attach never stopped it"
            continue
        try:
            write(target, f"{pid}/ctl", w.encode())
            out.append(0)
        except OSError as e:
            out.append(e.errno or -1)
    return out


SEQUENCES = {
    "attach-detach": ["attach", "<stopped>", "detach"],
    "step-detach": ["attach", "<stopped>", "step", "detach"],
    "step-step-detach": ["attach", "<stopped>", "step", "step", "detach"],
    "signals": ["winch", "urg", "chld"],
}
#: what each word may answer here: the second step finds the first still inside
#: nanosleep (not stopped: TRACE_WAIT_P false) -> EBUSY
ALLOWED = {"attach": {0}, "detach": {0}, "step": {0, errno.EBUSY}, "winch": {0}, "urg": {0},
           "chld": {0}}


@ctl
@pytest.mark.parametrize("seq", list(SEQUENCES))
def test_sleeping_process_sleeps_its_full_time(target, prof, seq):
    need_ctl(prof)
    t0 = time.monotonic()
    p = subprocess.Popen(["sleep", str(D)])
    try:
        assert _until(lambda: _ps_state(p.pid) == "S", 2), "sleep never slept"
        words = [w for w in SEQUENCES[seq] if w != "<stopped>"]
        got = _words(target, p.pid, SEQUENCES[seq])
        for w, e in zip(words, got, strict=True):
            assert e in ALLOWED[w], f"{w}: errno {errno.errorcode.get(e, e)}"
        if seq == "step-step-detach":
            assert got[2] == errno.EBUSY, "the second step found the first one finished"
        assert time.monotonic() - t0 < D - 0.5, "sequence too slow to judge the sleep"
        rc = p.wait(D + 10)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"sleep ended by signal {-rc}"
        assert D <= elapsed <= D + SLACK, f"slept {elapsed:.2f}s of {D}s"
    finally:
        with contextlib.suppress(OSError):
            write(target, f"{p.pid}/ctl", b"detach")
        p.kill()
        p.wait()


@ctl
@pytest.mark.parametrize("seq", ["attach-detach", "step-detach"])
def test_reading_shell_reads_the_later_line(target, prof, seq):
    need_ctl(prof)
    p = subprocess.Popen(["sh", "-c", "read x; echo got $x"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert _until(lambda: _ps_state(p.pid) == "S", 2), "sh never blocked in read"
        words = [w for w in SEQUENCES[seq] if w != "<stopped>"]
        for w, e in zip(words, _words(target, p.pid, SEQUENCES[seq]), strict=True):
            assert e in ALLOWED[w], f"{w}: errno {errno.errorcode.get(e, e)}"
        assert _until(lambda: _ps_state(p.pid) == "S", 2), "left stopped after detach"
        out, _ = p.communicate(b"hi\n", timeout=10)
        assert (p.returncode, out) == (0, b"got hi\n")
    finally:
        with contextlib.suppress(OSError):
            write(target, f"{p.pid}/ctl", b"detach")
        p.kill()
        p.wait()
