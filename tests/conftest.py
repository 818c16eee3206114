"""Shared fixtures: real child processes the tests can point at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest


def wait_for(cond, timeout=10.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        st = f.read()
    return chr(st[st.rindex(b")") + 2])


@pytest.fixture
def sleeper():
    """A child sleeping in nanosleep; killed and reaped afterwards."""
    p = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(60)"])
    wait_for(lambda: proc_state(p.pid) == "S")
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def procfs():
    import bsdprocfs
    return bsdprocfs.ProcFS(backend="linux")


is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")
needs_ps = pytest.mark.skipif(shutil.which("ps") is None, reason="procps ps not installed")
