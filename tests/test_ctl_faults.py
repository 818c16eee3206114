"""The tracer dies at every point of a ctl sequence: nothing it traced is harmed.

A separate tracer process (the same code as the daemon and the CLI: ProcFS over
the tracer thread) runs a prefix of attach/wait/step/run/detach on a real
target, says "ready", and gets SIGTERM, SIGINT or SIGKILL.  Targets: ``sleep``
(blocked in nanosleep, the case users hit) and a busy spinner.  Afterwards the
target must be untraced and running, and a sleep must end exactly when it would
have untraced (exit 0, elapsed in [D, D + SLACK]): no SIGTRAP, no SIGSTOP, no
call cut short.  Through a real mount too (the daemon is the tracer there), and
a traced target that is SIGKILLed is reaped at once (its parent's wait returns).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import test_ptrace_util as _util
from test_ptrace_util import needs_ptrace, wait_state

from bsdprocfs.debug import tracer_pid

spin = _util.spin
spinner_cmd = _util.spinner_cmd

pytestmark = [needs_ptrace, pytest.mark.timeout(90)]

SLEEP = 4.0           # the sleeping target's whole sleep
SLACK = 1.0           # scheduling slack on this shared 2-vCPU machine

TRACER = r"""
import sys, time
import bsdprocfs
fs = bsdprocfs.ProcFS(backend="linux")
pid, words = int(sys.argv[1]), sys.argv[2].split(",")
for w in words:
    if w.startswith("!"):           # killed while blocked in this word: announce first
        w = w[1:]
        print("ready", flush=True)
        time.sleep(0.2)
    try:
        fs.write(pid, "ctl", w.encode())
    except OSError as e:            # e.g. a second step while the first is in a call
        print("err", w, e.errno, file=sys.stderr)
if not words[-1].startswith("!"):
    print("ready", flush=True)
time.sleep(600)
"""

SEQUENCES = {
    "attach": "attach",
    "wait": "attach,wait",
    "step": "attach,wait,step",
    "step-step": "attach,wait,step,step",
    "run": "attach,wait,run",
    "detach": "attach,wait,step,detach",
    "in-wait": "attach,wait,step,!wait",        # blocked in wait for the step's call
}
SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}


def _tracer(pid: int, words: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-c", TRACER, str(pid), words],
                         stdout=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"
    if words.split(",")[-1].startswith("!"):
        time.sleep(0.5)                 # now blocked in that word
    return p


def _untraced_running(pid: int) -> None:
    assert wait_state(pid, "RS", 2.0) in "RS", "target left stopped"
    assert tracer_pid(pid) == 0


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("point", list(SEQUENCES))
def test_tracer_killed_sleeper_sleeps_its_full_time(point, sig):
    t0 = time.monotonic()
    target = subprocess.Popen(["sleep", str(SLEEP)])
    try:
        wait_state(target.pid, "S")
        tr = _tracer(target.pid, SEQUENCES[point])
        assert time.monotonic() - t0 < SLEEP - 0.5, "machine too slow to test in time"
        tr.send_signal(SIGNALS[sig])
        tr.wait(10)
        _untraced_running(target.pid)
        rc = target.wait(SLEEP + 10)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"sleep ended by signal {-rc}"
        assert SLEEP <= elapsed <= SLEEP + SLACK, elapsed
    finally:
        target.kill()
        target.wait()


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("point", ["attach", "wait", "step", "run", "detach"])
def test_tracer_killed_spinner_runs_on(spin, point, sig):
    words = SEQUENCES[point] if point != "step" else "attach,wait" + ",step" * 20
    tr = _tracer(spin.pid, words)
    tr.send_signal(SIGNALS[sig])
    tr.wait(10)
    _untraced_running(spin.pid)
    time.sleep(0.3)
    assert spin.proc.poll() is None, f"target died: {spin.proc.returncode}"
    assert spin.state() == "R"


# ------------------------------------------------------------- a real mount
fuse = pytest.importorskip("test_fuse_common")


@fuse.needs_fuse
@pytest.mark.fuse
@pytest.mark.parametrize("sig", ["TERM", "INT", "KILL"])
def test_daemon_killed_after_step_of_a_sleeper(sig):
    """Issue 12 item 6: SIGKILL of the daemon right after ``step`` of a sleep."""
    from bsdprocfs.fuse import mounted
    with mounted() as m:
        t0 = time.monotonic()
        target = subprocess.Popen(["sleep", str(SLEEP)])
        try:
            wait_state(target.pid, "S")
            ctl = f"{m.path}/{target.pid}/ctl"
            for w in ("attach", "step"):
                r = subprocess.run(["sh", "-c", f"echo {w} > {ctl}"], timeout=30)
                assert r.returncode == 0, w
            assert time.monotonic() - t0 < SLEEP - 0.5, "machine too slow to test in time"
            m.proc.send_signal(SIGNALS[sig])
            m.proc.wait(15)
            _untraced_running(target.pid)
            rc = target.wait(SLEEP + 10)
            elapsed = time.monotonic() - t0
            assert rc == 0, f"sleep ended by signal {-rc}"
            assert SLEEP <= elapsed <= SLEEP + SLACK, elapsed
        finally:
            target.kill()
            target.wait()


@fuse.needs_fuse
@pytest.mark.fuse
def test_killed_tracee_is_reaped_at_once():
    """``sleep 100 & echo attach > MNT/$!/ctl; kill -9 $!; wait $!`` returns at once
    (it hung until the daemon exited: the tracer never waited on a stopped target)."""
    from bsdprocfs.fuse import mounted
    with mounted() as m:
        r = subprocess.run(
            ["sh", "-c", f"sleep 100 & p=$!; echo attach > {m.path}/$p/ctl || exit 9; "
             "t0=$(date +%s%N); kill -9 $p; wait $p; st=$?; t1=$(date +%s%N); "
             "echo $st $(( (t1 - t0) / 1000000 ))"],
            capture_output=True, text=True, timeout=30)
        st, ms = (int(x) for x in r.stdout.split())
        assert st == 128 + signal.SIGKILL
        assert 0 <= ms < 500, f"wait took {ms} ms"


def test_killed_stopped_tracee_is_reaped_by_a_tracer_process():
    """The same through the API: a tracer process holds the target stopped; a SIGKILL
    of the target must reach its real parent's wait at once."""
    target = subprocess.Popen(["sleep", "100"])
    tr = None
    try:
        wait_state(target.pid, "S")
        tr = _tracer(target.pid, "attach,wait")
        t0 = time.monotonic()
        os.kill(target.pid, signal.SIGKILL)
        assert target.wait(5) == -signal.SIGKILL
        assert time.monotonic() - t0 < 0.5
    finally:
        if tr is not None:
            tr.kill()
            tr.wait()
        target.kill()
        target.wait()
