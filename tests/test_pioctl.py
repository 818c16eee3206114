"""The PIOC* ioctls of 10.x-12.x procfs: request numbers, the stop-event engine on real
children, and a C program (tests/c/pioctl.c) built with gcc that stops a child at its
exec through `bsdprocfs exec` (a private namespace with the FreeBSD tree at /proc)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bsdprocfs import ProcFS
from bsdprocfs.errors import EINVAL, ENOTTY, EPERM, ProcfsError
from bsdprocfs.nodes import ioctl as n_ioctl
from bsdprocfs.ptrace.stopevents import StopEvents

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.geteuid() == 0
CLI = [sys.executable, "-m", "bsdprocfs"]
LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    sys.stdin.readline()
    os.execv('/bin/true', ['true'])
print(pid, flush=True)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), flush=True)
"""


def test_request_numbers_are_pioctl_h():
    """_IOWINT('p', n) and _IOR('p', n, T) with FreeBSD's ioccom.h (citation
    ioctl.numbers); struct procfs_status is 32 bytes on LP64 (citation ioctl.status)."""
    assert (n_ioctl.PIOCBIS, n_ioctl.PIOCBIC, n_ioctl.PIOCSFL, n_ioctl.PIOCCONT) == (
        0x20047001, 0x20047002, 0x20047003, 0x20047005)
    assert (n_ioctl.PIOCWAIT, n_ioctl.PIOCSTATUS, n_ioctl.PIOCGFL) == (
        0x40207004, 0x40207006, 0x40047007)
    assert n_ioctl.PROCFS_STATUS.size == 32
    assert n_ioctl.decode(0x80207006) == 6, "Linux's _IOR spelling of PIOCSTATUS"
    with pytest.raises(ProcfsError) as ei:
        n_ioctl.decode(0x7000 | 42)
    assert ei.value.errno == ENOTTY


def test_isugid_needs_privilege():
    with pytest.raises(ProcfsError) as ei:
        StopEvents().set_flags(1, n_ioctl.PF_ISUGID, privileged=False)
    assert ei.value.errno == EPERM


@pytest.mark.parametrize("profile", ["freebsd-13", "freebsd-14", "freebsd-15"])
def test_no_ioctls_after_12(profile):
    fs = ProcFS(profile=profile)
    h = fs.open("curproc", "mem", "rw")
    try:
        with pytest.raises(ProcfsError) as ei:
            h.ioctl(n_ioctl.PIOCSTATUS)
        assert ei.value.errno == ENOTTY
    finally:
        h.close()


def test_only_mem_has_the_handler():
    fs = ProcFS(profile="freebsd-10")
    with pytest.raises(ProcfsError) as ei:
        fs.ioctl("curproc", "status", n_ioctl.PIOCSTATUS)
    assert ei.value.errno == ENOTTY
    fs.close()


class _Execer:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", LAUNCH], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        self.pid = int(self.p.stdout.readline())

    def go(self):
        self.p.stdin.write(b"go\n")
        self.p.stdin.flush()

    def rc(self):
        self.p.wait(10)
        return int(self.p.stdout.readline())

    def kill(self):
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        self.p.kill()
        self.p.wait(5)


@pytest.mark.skipif(not ROOT, reason="tracing a process for stop events needs ptrace rights")
@pytest.mark.parametrize("profile", ["freebsd-10", "freebsd-11", "freebsd-12"])
def test_exec_stop_through_the_api(profile):
    fs = ProcFS(profile=profile)
    e = _Execer()
    try:
        fs.ioctl(e.pid, "mem", n_ioctl.PIOCBIS, n_ioctl.S_EXEC)
        e.go()
        st = n_ioctl.unpack_status(fs.ioctl(e.pid, "mem", n_ioctl.PIOCWAIT))
        assert st == (0, 0, n_ioctl.S_EXEC, n_ioctl.S_EXEC, 0)
        with pytest.raises(ProcfsError) as ei:
            fs.ioctl(e.pid, "mem", n_ioctl.PIOCCONT, 1000)
        assert ei.value.errno == EINVAL
        fs.ioctl(e.pid, "mem", n_ioctl.PIOCCONT, 0)
        assert e.rc() == 0
    finally:
        fs.close()
        e.kill()


@pytest.mark.skipif(not ROOT, reason="tracing a process for stop events needs ptrace rights")
def test_release_resumes_and_linger_keeps():
    """procfs_close: the last close clears the events unless PF_LINGER (citation
    ioctl.close)."""
    fs = ProcFS(profile="freebsd-10")
    e = _Execer()
    try:
        fs.ioctl(e.pid, "mem", n_ioctl.PIOCSFL, n_ioctl.PF_LINGER)
        fs.ioctl(e.pid, "mem", n_ioctl.PIOCBIS, n_ioctl.S_EXEC)
        fs.release(e.pid)
        st = n_ioctl.unpack_status(fs.ioctl(e.pid, "mem", n_ioctl.PIOCSTATUS))
        assert st[2] == n_ioctl.S_EXEC, "PF_LINGER kept the events over the last close"
        fs.ioctl(e.pid, "mem", n_ioctl.PIOCSFL, 0)
        e.go()
        assert n_ioctl.unpack_status(fs.ioctl(e.pid, "mem", n_ioctl.PIOCWAIT))[0] == 0
        fs.release(e.pid)                 # no PF_LINGER now: the held target runs on
        assert e.rc() == 0
    finally:
        fs.close()
        e.kill()


def _build(tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path / "pioctl"
    subprocess.run([gcc, "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(exe),
                    os.path.join(HERE, "c", "pioctl.c")], check=True)
    return exe


@pytest.mark.skipif(not ROOT or not os.path.exists("/dev/fuse"),
                    reason="bsdprocfs exec needs root and /dev/fuse")
@pytest.mark.parametrize("profile, ok", [("freebsd-10", True), ("freebsd-12", True),
                                         ("freebsd-14", False)])
def test_c_program_through_exec(tmp_path, profile, ok):
    exe = _build(tmp_path)
    r = subprocess.run([*CLI, "exec", "--profile", profile, "--", str(exe)],
                       capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 failures" in r.stdout
        assert "why=1" in r.stdout, "stopped at S_EXEC"
    else:                                 # 13+: mem has no ioctl handler: ENOTTY
        assert r.returncode != 0
        assert "FAIL PIOCSTATUS" in r.stdout and "ok unknown request: ENOTTY" in r.stdout
