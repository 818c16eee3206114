"""The ctl-state matrix: every ctl word, in realistic orders, on targets blocked in
every kind of system call, and what the target does afterwards.

Each subject (tests/subjects/blocked.c, or a shell) makes one blocking call whose
right answer is known; a ctl sequence runs while it blocks; after ``detach`` the
call must return exactly what it would have untraced, when it would have:
exit 0, the same return value, elapsed in [D, D + SLACK] (read: after the data we
write later).  Nothing may be delivered that FreeBSD would not deliver (no
SIGTRAP, no SIGSTOP), nothing left stopped or traced.  FreeBSD's own answers are
asserted where procfs_ctl.c decides them: a second ``step`` while the first is
still inside the call is EBUSY (TRACE_WAIT_P is false: the process runs), and
``wait`` then blocks until the call returns (here: until its 0.3 s limit, EINTR).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time

import pytest
from test_ptrace_util import needs_ptrace, wait_state

import bsdprocfs
from bsdprocfs.debug import get_debugger, tracer_pid

pytestmark = [needs_ptrace, pytest.mark.timeout(60)]

D = 2.0               # every subject's blocking time, seconds
SLACK = 0.75          # scheduling slack on a shared 2-vCPU machine
WAIT_LIMIT = 0.3      # a ctl wait that would block longer is cut here (EINTR)
SRC = os.path.join(os.path.dirname(__file__), "subjects", "blocked.c")

#: mode -> (expected return value, expected extra field)
MODES = {
    "nanosleep": (0, 0), "clock_nanosleep": (0, 0), "clock_nanosleep_abs": (0, 0),
    "poll": (0, 0), "select": (0, 0), "futex": (1, 0), "wait4": (1, 7), "vfork": (1, 3),
    "threads": (0, 0), "read": (5, ord("h")),
}

SEQUENCES = {
    "attach-detach": ["attach", "detach"],
    "attach-wait-detach": ["attach", "wait", "detach"],
    "step": ["attach", "wait", "step", "detach"],
    "step-wait": ["attach", "wait", "step", "wait", "detach"],
    "step-step": ["attach", "wait", "step", "step", "detach"],
    "run": ["attach", "wait", "run", "wait", "detach"],
    "signal": ["attach", "wait", "winch", "info", "detach"],
    "untraced": ["wait", "step", "run", "detach", "urg"],
}


@pytest.fixture(scope="module")
def blocked(tmp_path_factory) -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler for the subjects")
    exe = str(tmp_path_factory.mktemp("subjects") / "blocked")
    subprocess.run([cc, "-O0", "-pthread", "-o", exe, SRC], check=True)
    return exe


def _run_words(fs, pid: int, words: list[str]) -> list[tuple[str, int]]:
    """Each word through the API (the daemon's code path); (word, errno or 0)."""
    out = []
    for w in words:
        h = fs.open(pid, "ctl", "w")
        h.timeout = WAIT_LIMIT
        try:
            h.write(w.encode())
            out.append((w, 0))
        except OSError as e:
            out.append((w, e.errno or -1))
    return out


#: what each word may answer in these states (anything else fails the test)
ALLOWED = {"attach": {0}, "detach": {0}, "wait": {0, errno.EINTR}, "step": {0, errno.EBUSY},
           "run": {0, errno.EBUSY}, "winch": {0}, "info": {0}, "urg": {0}}


def _released(pid: int, states: str) -> None:
    dbg = get_debugger()
    deadline = time.monotonic() + 3
    while (dbg.traced_by_us(pid) or tracer_pid(pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracer_pid(pid) == 0 and not dbg.traced_by_us(pid), "left traced"
    st = wait_state(pid, states, 1.0)
    assert st in states, f"left in state {st}"


@pytest.mark.parametrize("seq", list(SEQUENCES))
@pytest.mark.parametrize("mode", list(MODES))
def test_blocked_target_is_unharmed(blocked, mode, seq):
    fs = bsdprocfs.ProcFS(backend="linux")
    p = subprocess.Popen([blocked, mode, str(int(D * 1000))], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, start_new_session=True)
    assert p.stdout is not None and p.stdin is not None
    try:
        assert p.stdout.readline() == b"ready\n"
        t0 = time.monotonic()
        want_state = "D" if mode == "vfork" else "S"
        assert wait_state(p.pid, want_state, 2.0) == want_state, "subject never blocked"
        answers = _run_words(fs, p.pid, SEQUENCES[seq])
        spent = time.monotonic() - t0
        assert spent < D - 0.5, f"sequence took {spent:.2f}s: machine too slow to judge"
        for w, e in answers:
            assert e in ALLOWED[w], (w, errno.errorcode.get(e, e), answers)
        if seq == "step-step" and mode != "vfork":
            # the first step is still inside the call: FreeBSD's !TRACE_WAIT_P
            assert answers[3] == ("step", errno.EBUSY), answers
        if seq == "step-wait" and mode not in ("vfork", "read"):
            assert answers[3] == ("wait", errno.EINTR), answers   # blocks until the call returns
        if mode != "vfork":
            _released(p.pid, "RS")
        # a vfork parent cannot stop (nor so be detached) until its child exits: it is
        # let go at that first stop (fidelity table), checked once the call returned
        if mode == "read":
            time.sleep(0.2)
            p.stdin.write(b"hello")
            p.stdin.flush()
        out = p.stdout.readline()             # stdin stays open: poll/select see no EOF
        p.stdin.close()
        p.wait(5)
        assert p.returncode == 0, f"subject ended by signal {-p.returncode}"
        ret, err, elapsed_ms, extra = (int(x) for x in out.split())
        assert not get_debugger().traced_by_us(p.pid)
        assert (ret, err, extra) == (*MODES[mode][:1], 0, MODES[mode][1])
        lo = (time.monotonic() - t0 - 0.2) * 1000 if mode == "read" else D * 1000
        if mode != "read":
            assert lo <= elapsed_ms <= (D + SLACK) * 1000, elapsed_ms
        else:
            assert elapsed_ms >= spent * 1000      # returned only once the data came
    finally:
        p.kill()
        p.wait()


# --------------------------------------------------------- group-stopped target
@pytest.mark.parametrize("seq", ["attach-detach", "attach-wait-detach", "step", "run"])
def test_group_stopped_target_stays_as_it_was(blocked, seq):
    """A SIGSTOPped sleeper: attach/wait/detach leave it stopped (as if never
    attached); a sequence that resumed it (step, run: procfs_ctl.c's run clears
    P_STOPPED_SIG) leaves it running.  Either way its sleep ends on time, untouched."""
    fs = bsdprocfs.ProcFS(backend="linux")
    p = subprocess.Popen([blocked, "nanosleep", str(int(D * 1000))], stdout=subprocess.PIPE,
                         start_new_session=True)
    assert p.stdout is not None
    try:
        assert p.stdout.readline() == b"ready\n"
        t0 = time.monotonic()
        wait_state(p.pid, "S")
        os.kill(p.pid, signal.SIGSTOP)
        assert wait_state(p.pid, "T") == "T"
        answers = _run_words(fs, p.pid, SEQUENCES[seq])
        for w, e in answers:
            assert e in ALLOWED[w], (w, e, answers)
        resumed = seq in ("step", "run")
        _released(p.pid, "RS" if resumed else "T")
        if not resumed:
            time.sleep(0.2)
            assert wait_state(p.pid, "T") == "T"          # still stopped, by its SIGSTOP
            os.kill(p.pid, signal.SIGCONT)
        out, _ = p.communicate(timeout=D + 10)
        ret, err, elapsed_ms, _extra = (int(x) for x in out.split())
        assert p.returncode == 0 and (ret, err) == (0, 0)
        assert D * 1000 <= elapsed_ms <= (D + SLACK) * 1000
        assert time.monotonic() - t0 <= D + SLACK
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------ a shell
SHELLS = {
    "sleep": ("sleep 2; echo done", b"done\n", None),
    "read": ("read x; echo got $x", b"got hi\n", b"hi\n"),
}


@pytest.mark.parametrize("seq", ["attach-wait-detach", "step", "step-wait", "run", "signal"])
@pytest.mark.parametrize("shell", list(SHELLS))
def test_shell_is_unharmed(shell, seq):
    """sh waiting for its child (wait4) or reading a line: after the sequence its
    script runs on as if nothing happened."""
    fs = bsdprocfs.ProcFS(backend="linux")
    script, want, feed = SHELLS[shell]
    t0 = time.monotonic()
    p = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         start_new_session=True)
    try:
        assert wait_state(p.pid, "S", 2.0) == "S"
        time.sleep(0.05)
        answers = _run_words(fs, p.pid, SEQUENCES[seq])
        for w, e in answers:
            assert e in ALLOWED[w], (w, e, answers)
        _released(p.pid, "RS")
        out, _ = p.communicate(feed, timeout=D + 10)
        assert (p.returncode, out) == (0, want)
        if shell == "sleep":
            assert D <= time.monotonic() - t0 <= D + SLACK + 0.3
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------ a zombie
@pytest.mark.parametrize("seq", ["attach-wait-detach", "step", "signal", "untraced"])
def test_zombie_stays_reapable(seq):
    """Every word on a zombie answers an errno or nothing, and its parent still reaps
    it with its own exit status."""
    fs = bsdprocfs.ProcFS(backend="linux")
    p = subprocess.Popen(["sh", "-c", "exit 5"])
    try:
        assert wait_state(p.pid, "Z") == "Z"
        for w in SEQUENCES[seq]:
            try:
                fs.write(p.pid, "ctl", w.encode())
            except OSError as e:
                assert e.errno in (errno.EBUSY, errno.EIO, errno.ENOENT, errno.EPERM), (w, e)
        assert not get_debugger().traced_by_us(p.pid)
        assert p.wait(2) == 5
    finally:
        p.kill()
        p.wait()
