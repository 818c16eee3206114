"""The 31 signal names of procfs_ctl.c, through ctl, in three situations:

* posted to a running, untraced target whose handlers report each caught signal;
* used to resume a target traced and stopped by us (the signal is delivered);
* posted to a target without handlers: the default action, checked by wait status
  (terminate), /proc state (stop) or the process still running (ignore).

``emt`` has no Linux signal (EOPNOTSUPP, nothing changed) and ``info`` delivers
nothing (SIGINFO is ignored by default): both are decisions tested here.
"""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest
import test_ptrace_util as _util
from test_ptrace_util import (
    attach_stopped,
    needs_ptrace,
    wait_exit,
    wait_state,
)

from bsdprocfs.debug import LINUX_SIGNALS, get_debugger, proc_state
from bsdprocfs.nodes.ctl import SIGNALS

# the shared fixtures, bound here so pytest finds them
fs = _util.fs
spin = _util.spin
spin_sig = _util.spin_sig
spinner_cmd = _util.spinner_cmd

pytestmark = [needs_ptrace, pytest.mark.timeout(60)]

NAMES = [n for n in SIGNALS if n != "iot"] + ["iot"]
STOPPING = {"stop", "tstp", "ttin", "ttou"}
IGNORED = {"urg", "chld", "winch", "cont", "info"}


def test_thirty_one_names():
    assert len(set(SIGNALS.values())) == 31 and len(SIGNALS) == 32
    assert set(LINUX_SIGNALS) == set(SIGNALS)


def _emt(fs, sp):
    with pytest.raises(OSError) as ei:
        fs.write(sp.pid, "ctl", b"emt")
    assert ei.value.errno == errno.EOPNOTSUPP
    assert "SIGEMT does not exist on Linux" in str(ei.value)


@pytest.mark.parametrize("name", NAMES)
def test_posted_to_running_target(fs, spin_sig, name):
    sp = spin_sig
    if name == "emt":
        _emt(fs, sp)
        assert sp.caught(0.1) == [] and sp.state() in "RS"
        return
    assert fs.write(sp.pid, "ctl", name.encode() + b"\n") == len(name) + 1
    sig = LINUX_SIGNALS[name]
    if name == "info":
        assert sp.caught(0.2) == [] and sp.state() in "RS"
    elif name == "kill":
        assert wait_exit(sp) == -signal.SIGKILL
    elif name == "stop":
        assert wait_state(sp.pid, "T") == "T"
    else:
        assert sig in sp.caught(want=sig), name
        assert sp.state() in "RS"


@pytest.mark.parametrize("name", NAMES)
def test_resumes_traced_and_stopped_target(fs, spin_sig, name):
    sp = spin_sig
    attach_stopped(fs, sp.pid)
    t = get_debugger().tracer.targets[sp.pid]
    if name == "emt":
        _emt(fs, sp)
        assert proc_state(sp.pid) == "t" and t.stopped
        return
    fs.write(sp.pid, "ctl", name.encode())
    sig = LINUX_SIGNALS[name]
    if name == "info":                       # resumed, nothing delivered
        assert wait_state(sp.pid, "RS") in "RS"
        assert sp.caught(0.2) == []
    elif name == "kill":
        assert wait_exit(sp) == -signal.SIGKILL
    elif name == "stop":                     # delivered: a group stop, seen by us
        deadline = time.monotonic() + 5
        while not t.stopped and time.monotonic() < deadline:
            fs.write(sp.pid, "ctl", b"wait")
        assert t.stopped and t.stopsig == signal.SIGSTOP
        assert proc_state(sp.pid) == "t"
    else:
        assert sig in sp.caught(want=sig), name
        assert get_debugger().traced_by_us(sp.pid)


@pytest.mark.parametrize("name", NAMES)
def test_default_action(fs, spin, name):
    if name == "emt":
        _emt(fs, spin)
        assert spin.state() in "RS"
        return
    fs.write(spin.pid, "ctl", name.encode())
    sig = LINUX_SIGNALS[name]
    if name in IGNORED:
        time.sleep(0.1)
        assert spin.state() in "RS", name
    elif name in STOPPING:
        assert wait_state(spin.pid, "T") == "T", name
    else:
        assert wait_exit(spin) == -sig, name


@pytest.mark.parametrize("profile", ["compat", "freebsd-10"])
def test_detach_and_the_stop_signal(spin_sig, profile):
    """A real signal stopped the tracee (signal-delivery stop).  freebsd-10: detach
    drops it (procfs_ctl.c sets "p->p_xstat = 0;" before every word); compat delivers
    it, as the process would have got it untraced.  A pending SIGTRAP is dropped by
    both ("remove pending SIGTRAP, else the process will die")."""
    import bsdprocfs
    from bsdprocfs.access import Reader
    sp = spin_sig
    fsp = bsdprocfs.ProcFS(backend="linux", profile=profile)
    me = Reader.current()
    fsp.write(sp.pid, "ctl", b"attach", reader=me)
    t = get_debugger().tracer
    deadline = time.monotonic() + 5
    while not t.targets[sp.pid].stopped and time.monotonic() < deadline:
        t.call(t.refresh, t.targets[sp.pid])
        time.sleep(0.005)
    fsp.write(sp.pid, "ctl", b"run", reader=me)
    os.kill(sp.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not (t.targets[sp.pid].stopped and t.targets[sp.pid].stopsig == signal.SIGUSR1):
        assert time.monotonic() < deadline, "no SIGUSR1 stop"
        t.call(t.refresh, t.targets[sp.pid])
        time.sleep(0.005)
    os.kill(sp.pid, signal.SIGTRAP)                # pending while stopped: dropped
    fsp.write(sp.pid, "ctl", b"detach", reader=me)
    got = sp.caught(1.0)
    assert signal.SIGTRAP not in got
    assert (signal.SIGUSR1 in got) == (profile == "compat"), got
    assert sp.proc.poll() is None and wait_state(sp.pid, "R") == "R"
