"""We never leave a process stopped: a tracer process that attached through the API
is SIGKILLed, SIGTERMed or simply exits, and the target must run on untraced."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import test_ptrace_util as _util
from test_ptrace_util import (
    needs_ptrace,
    wait_state,
)

from bsdprocfs.debug import proc_state, tracer_pid

# the shared fixtures, bound here so pytest finds them
spin = _util.spin
spinner_cmd = _util.spinner_cmd

pytestmark = [needs_ptrace, pytest.mark.timeout(60)]

TRACER = r"""
import sys, time
import bsdprocfs
fs = bsdprocfs.ProcFS(backend="linux")
pid, mode = int(sys.argv[1]), sys.argv[2]
fs.write(pid, "ctl", b"attach")
fs.write(pid, "ctl", b"wait")
if mode == "step":
    for _ in range(5):
        fs.write(pid, "ctl", b"step")
    time.sleep(0.3)            # idle: the step's SIGTRAP stop gets parked
if mode == "run":
    fs.write(pid, "ctl", b"run")
print("ready", flush=True)
if mode == "exit":
    sys.exit(0)
time.sleep(600)
"""


def _tracer(pid: int, mode: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-c", TRACER, str(pid), mode], stdout=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"
    return p


def _released(pid: int) -> None:
    st = wait_state(pid, "RS")
    assert st in "RS", f"target left in state {st}"
    assert tracer_pid(pid) == 0


@pytest.mark.parametrize("mode", ["attach", "step", "run"])
def test_sigkilled_tracer_releases_target(spin, mode):
    p = _tracer(spin.pid, mode)
    if mode != "run":
        assert proc_state(spin.pid) == "t"
    p.kill()
    p.wait()
    _released(spin.pid)
    assert spin.proc.poll() is None          # and it is alive


def test_sigterm_detaches(spin):
    p = _tracer(spin.pid, "attach")
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == -signal.SIGTERM     # the default action still happens afterwards
    _released(spin.pid)


def test_sigint_detaches(spin):
    p = _tracer(spin.pid, "attach")
    p.send_signal(signal.SIGINT)
    assert p.wait(10) != 0
    _released(spin.pid)


def test_exit_detaches(spin):
    p = _tracer(spin.pid, "exit")
    assert p.wait(10) == 0
    _released(spin.pid)


def test_tracer_thread_exit_releases_and_restarts(spin):
    """If the tracer thread ends, Linux releases its tracees; the next request starts
    a fresh tracer thread with a clean table."""
    import bsdprocfs
    from bsdprocfs.debug import get_debugger
    fs = bsdprocfs.ProcFS(backend="linux")
    fs.write(spin.pid, "ctl", b"attach")
    fs.write(spin.pid, "ctl", b"wait")
    assert proc_state(spin.pid) == "t"
    tr = get_debugger().tracer
    old = tr._thread
    tr.stop_thread()
    assert old is not None and not old.is_alive()
    _released(spin.pid)
    fs.write(spin.pid, "ctl", b"attach")          # a new tracer thread takes over
    fs.write(spin.pid, "ctl", b"wait")
    assert tr._thread is not old and proc_state(spin.pid) == "t"
    fs.write(spin.pid, "ctl", b"detach")
    _released(spin.pid)


BREAKPOINT_TRACER = r"""
import sys, time
import bsdprocfs
from bsdprocfs.nodes import dbregs as n_dbregs
fs = bsdprocfs.ProcFS(backend="linux")
pid, tick = int(sys.argv[1]), int(sys.argv[2])
fs.write(pid, "ctl", b"attach")
fs.write(pid, "ctl", b"wait")
d = n_dbregs.parse(fs.read(pid, "dbregs"))
dr = list(d["dr"])
dr[0], dr[7] = tick, 1
fs.write(pid, "dbregs", n_dbregs.render(d.replace(dr=dr)))
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="x86 debug registers")
def test_shutdown_disarms_breakpoints(spin):
    """A SIGTERMed daemon clears the hardware breakpoints it armed before detaching,
    so the released target does not die of SIGTRAP at the next hit."""
    p = subprocess.Popen([sys.executable, "-c", BREAKPOINT_TRACER, str(spin.pid),
                          str(spin.tick)], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    p.wait(10)
    _released(spin.pid)
    import time
    time.sleep(0.3)                      # tick() runs constantly: a live DR0 would fire
    assert spin.proc.poll() is None


def test_attacher_only_profile_lets_the_target_go_when_its_attacher_exits(spin):
    """freebsd-10: only the attacher may step/run its target; once the attacher is gone
    nobody ever could, so the target is released (FreeBSD's exit1() frees a dying
    debugger's tracees) instead of staying stopped forever."""
    import errno

    import bsdprocfs
    from bsdprocfs.access import Reader
    fs10 = bsdprocfs.ProcFS(backend="linux", profile="freebsd-10")
    attacher = subprocess.Popen(["sleep", "60"])
    try:
        fs10.write(spin.pid, "ctl", b"attach", reader=Reader(attacher.pid, 0, 0))
        assert wait_state(spin.pid, "t") == "t"      # (10.4's wait cannot wait for it)
        with pytest.raises(OSError) as ei:          # someone else: not its debugger
            fs10.write(spin.pid, "ctl", b"step")
        assert ei.value.errno == errno.EBUSY
        attacher.kill()
        attacher.wait()
        assert wait_state(spin.pid, "R") == "R"
        assert tracer_pid(spin.pid) == 0
    finally:
        attacher.kill()
        attacher.wait()
