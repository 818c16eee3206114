"""Fixtures and helpers shared by the ptrace/ctl tests (no tests here).

Targets are real processes: a tiny C spinner built once per session with gcc
(a Python loop when gcc is absent), optionally reporting every caught signal's
number on a pipe.  Every target is killed and reaped at teardown, detached
first if our tracer holds it, so nothing is ever left stopped.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from bsdprocfs.debug import get_debugger, proc_state, tracer_pid
from bsdprocfs.ptrace import raw

needs_ptrace = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux ptrace as root (attaching to arbitrary children)")


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A process group of its own whose parent (us) sits in another group of the same
    # session: never orphaned, so SIGTSTP/SIGTTIN/SIGTTOU stop it (the kernel discards
    # them for orphaned groups, which pytest's own group may be under a CI runner).
    os.setpgid(0, 0)


class Spinner:
    """A running target: pid, &counter, &tick, and (with signals=True) a pipe that
    receives one byte per caught signal."""

    def __init__(self, cmd: list[str], signals: bool = False) -> None:
        self.rfd = self.wfd = -1
        extra: tuple[str, ...] = ()
        if signals:
            self.rfd, self.wfd = os.pipe()
            os.set_blocking(self.rfd, False)
            extra = (str(self.wfd),)
        self.proc = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE,
                                     pass_fds=(self.wfd,) if signals else (),
                                     preexec_fn=_no_core)
        assert self.proc.stdout is not None
        self.counter, self.tick = (int(x, 16) for x in self.proc.stdout.readline().split())
        if signals:
            os.close(self.wfd)
        self.pid = self.proc.pid

    def state(self) -> str:
        return proc_state(self.pid)

    def caught(self, timeout: float = 2.0, want: int | None = None) -> list[int]:
        """Signal numbers reported so far (waits up to timeout for the first / for want)."""
        got: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.extend(os.read(self.rfd, 64))
            except BlockingIOError:
                pass
            if got and (want is None or want in got):
                break
            time.sleep(0.005)
        return got

    def close(self) -> None:
        dbg = get_debugger()
        if dbg.traced_by_us(self.pid):
            try:
                dbg.tracer.call(dbg._op_detach, self.pid)
            except OSError:
                pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except ChildProcessError:
            pass
        if self.rfd >= 0:
            os.close(self.rfd)


def wait_state(pid: int, states: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    st = proc_state(pid)
    while st not in states and time.monotonic() < deadline:
        time.sleep(0.005)
        st = proc_state(pid)
    return st


def wait_exit(sp: Spinner, timeout: float = 5.0) -> int | None:
    """The exit status: from Popen, or from our tracer when it reaped a traced target."""
    dbg = get_debugger()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = dbg.exit_status(sp.pid)
        if st is not None:
            return -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
        rc = sp.proc.poll()
        if rc is not None:
            return rc
        time.sleep(0.005)
    return None


class OtherTracer:
    """A separate python process that PTRACE_ATTACHes the target via ctypes (so the
    target is 'traced by another debugger'); killing it releases the target."""

    CODE = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) != 0:
    print("err", ctypes.get_errno(), flush=True); sys.exit(1)
os.waitpid(pid, 0x40000000)
libc.ptrace(7, pid, None, None)          # PTRACE_CONT: traced but running
print("ok", flush=True)
time.sleep(600)
"""

    def __init__(self, pid: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(pid)],
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(b"ok"), line
        deadline = time.monotonic() + 5
        while tracer_pid(pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def spinner_cmd(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return raw.build_spinner(str(tmp_path_factory.mktemp("spin")))


@pytest.fixture
def spin(spinner_cmd: list[str]):
    sp = Spinner(spinner_cmd)
    yield sp
    sp.close()


@pytest.fixture
def spin_sig(spinner_cmd: list[str]):
    sp = Spinner(spinner_cmd, signals=True)
    yield sp
    sp.close()


@pytest.fixture
def fs():
    import bsdprocfs
    return bsdprocfs.ProcFS(backend="linux")


def attach_stopped(fs, pid: int) -> None:
    fs.write(pid, "ctl", b"attach")
    fs.write(pid, "ctl", b"wait")
    assert proc_state(pid) == "t"


def sigstop(sp: Spinner) -> None:
    os.kill(sp.pid, signal.SIGSTOP)
    assert wait_state(sp.pid, "T") == "T"
