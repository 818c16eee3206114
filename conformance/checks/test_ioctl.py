"""mem's PIOC* ioctls (procfs_ioctl.c, 10.x-12.x): request numbers, struct
procfs_status, the stop-event requests on a real child, ENOTTY, and the last close
that clears p_stops.  Profiles without the ioctls answer ENOTTY."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import struct
import subprocess
import sys

import pytest

from bsdprocfs_conformance.matrix import NOT_PROVIDED
from bsdprocfs_conformance.spec import (
    PROCFS_STATUS_FMT,
    S_EXEC,
    S_SCE,
    S_SIG,
    pioc_request,
)
from bsdprocfs_conformance.subjects import host_state, wait_for
from bsdprocfs_conformance.util import expect_errno

ioctl = pytest.mark.procfs("mem", "ioctl")
PIOCBIS, PIOCBIC, PIOCSFL, PIOCWAIT, PIOCCONT, PIOCSTATUS, PIOCGFL = range(1, 8)


def _status(data: bytes) -> tuple[int, int, int, int, int]:
    return struct.unpack(PROCFS_STATUS_FMT, data)


_LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    sys.stdin.readline()
    os.execv('/bin/true', ['true'])
print(pid, flush=True)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), flush=True)
"""


class Execer:
    """A process that execs /bin/true once told to: an exec at a known moment.  Its
    parent is a launcher, not the suite: a tracer that is also the parent would share
    the child's wait statuses with it (the in-process API traces from this process)."""

    def __init__(self) -> None:
        self.launcher = subprocess.Popen([sys.executable, "-c", _LAUNCH],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.launcher.stdout is not None
        self.pid = int(self.launcher.stdout.readline())
        wait_for(lambda: host_state(self.pid) == "S", 5)

    def go(self) -> None:
        assert self.launcher.stdin is not None
        self.launcher.stdin.write(b"go\n")
        self.launcher.stdin.flush()

    def exit_code(self, timeout: float = 10) -> int:
        assert self.launcher.stdout is not None
        self.launcher.wait(timeout)
        return int(self.launcher.stdout.readline())

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, 9)
        with contextlib.suppress(Exception):
            self.launcher.kill()
            self.launcher.wait(5)


@contextlib.contextmanager
def execer():
    e = Execer()
    try:
        yield e
    finally:
        e.kill()


@contextlib.contextmanager
def mem(target, pid):
    h = target.open(f"{pid}/mem", "rw")
    try:
        yield h
    finally:
        h.close()


def need_ioctl(target, prof):
    if not prof.has_ioctl:
        pytest.skip(f"{NOT_PROVIDED} {prof.name}: no mem ioctls (gone in 13)")


@ioctl
def test_ioctl_numbers():
    """pioctl.h's _IOWINT and _IOR with FreeBSD's ioccom.h (cite: ioctl.numbers)."""
    got = [pioc_request(n, True) for n in range(1, 8)]
    assert got == [0x20047001, 0x20047002, 0x20047003, 0x40207004, 0x20047005,
                   0x40207006, 0x40047007]
    assert struct.calcsize(PROCFS_STATUS_FMT) == 32


@ioctl
def test_ioctl_absent_without_profile(target, prof):
    """Without pn_ioctl pfs_ioctl answers ENOTTY (cite: pfs.ioctl, nodes.13)."""
    if prof.has_ioctl:
        pytest.skip("this profile has the mem ioctls")
    with execer() as p, mem(target, p.pid) as h:
        expect_errno(errno.ENOTTY, h.ioctl, PIOCSTATUS)


@ioctl
def test_ioctl_status_and_flags(target, prof):
    """PIOCSTATUS of a process with no event: running, nothing set (cite:
    ioctl.statusfill); PIOCBIS/PIOCBIC/PIOCSFL/PIOCGFL (cite: ioctl.bis_bic)."""
    need_ioctl(target, prof)
    with execer() as p, mem(target, p.pid) as h:
        assert _status(h.ioctl(PIOCSTATUS)) == (1, 0, 0, 0, 0)
        h.ioctl(PIOCBIS, S_EXEC | S_SIG)
        h.ioctl(PIOCBIC, S_SIG)
        assert _status(h.ioctl(PIOCSTATUS)) == (1, 0, S_EXEC, 0, 0)
        h.ioctl(PIOCSFL, 0)
        assert struct.unpack("=I", h.ioctl(PIOCGFL)) == (0,)
        assert wait_for(lambda: host_state(p.pid) == "S", 5), \
            "setting events leaves the target running (back in its read)"


@ioctl
def test_ioctl_unknown_request(target, prof):
    need_ioctl(target, prof)
    import fcntl
    if target.kind != "path":
        pytest.skip("a raw request number needs a file descriptor")
    with execer() as p, mem(target, p.pid) as h:
        expect_errno(errno.ENOTTY, fcntl.ioctl, h.fd, 0x7000 | 42, 0)   # cite: ioctl.enotty


@ioctl
def test_ioctl_exec_stop(target, prof):
    """S_EXEC: PIOCWAIT returns once the target stopped at its exec, stopped; PIOCCONT
    with a bad signal EINVAL, with 0 resumes it (cite: ioctl.wait, ioctl.cont)."""
    need_ioctl(target, prof)
    with execer() as p, mem(target, p.pid) as h:
        h.ioctl(PIOCBIS, S_EXEC)
        p.go()
        state, flags, events, why, val = _status(h.ioctl(PIOCWAIT))
        assert (state, flags, events, why, val) == (0, 0, S_EXEC, S_EXEC, 0)
        assert host_state(p.pid) in ("T", "t"), "held at the event"
        expect_errno(errno.EINVAL, h.ioctl, PIOCCONT, 1000)
        h.ioctl(PIOCCONT, 0)
        assert p.exit_code() == 0, "the exec'd program ran to its end"


@ioctl
def test_ioctl_syscall_entry_stop(target, prof):
    """S_SCE stops at a system-call entry; the status names S_SCE."""
    need_ioctl(target, prof)
    with execer() as p, mem(target, p.pid) as h:
        h.ioctl(PIOCBIS, S_SCE)
        p.go()
        state, _flags, events, why, _val = _status(h.ioctl(PIOCWAIT))
        assert (state, events, why) == (0, S_SCE, S_SCE)
        h.ioctl(PIOCBIC, S_SCE)
        h.ioctl(PIOCCONT, 0)
        assert p.exit_code() == 0


@ioctl
def test_ioctl_last_close_resets(target, prof):
    """procfs_close on the last close clears p_stops and p_step: a target held at an
    event runs on (cite: ioctl.close, pfs.close)."""
    need_ioctl(target, prof)
    with execer() as p:
        with mem(target, p.pid) as h:
            h.ioctl(PIOCBIS, S_EXEC)
            p.go()
            assert _status(h.ioctl(PIOCWAIT))[0] == 0
        assert p.exit_code() == 0, "the last close released the stopped target"


@ioctl
def test_ioctl_eio_after_exit(target, prof):
    """An open fd on a process that exited: pfs_ioctl's visibility test, EIO."""
    need_ioctl(target, prof)
    with execer() as p, mem(target, p.pid) as h:
        p.go()
        assert p.exit_code() == 0
        expect_errno(errno.EIO, h.ioctl, PIOCSTATUS)


@ioctl
def test_ioctl_signal_stop(target, prof):
    """S_SIG: a signal stops the target before its delivery; val is the signal's number
    (FreeBSD's: SIGUSR1 is 30); once continued the signal is delivered (the default
    action of SIGUSR1 ends the process)."""
    need_ioctl(target, prof)
    with execer() as p, mem(target, p.pid) as h:
        h.ioctl(PIOCBIS, S_SIG)
        os.kill(p.pid, signal.SIGUSR1)
        state, _flags, events, why, val = _status(h.ioctl(PIOCWAIT))
        assert (state, events, why, val) == (0, S_SIG, S_SIG, 30)
        assert host_state(p.pid) in ("T", "t")
        h.ioctl(PIOCCONT, 0)
        assert p.exit_code() == -signal.SIGUSR1
