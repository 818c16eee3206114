"""Helpers for the ps/w tests: children on a fresh pty, utmp records, a tracer."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import termios

TRACER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
PTRACE_CONT, PTRACE_ATTACH = 7, 16
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
    sys.exit("attach: " + os.strerror(ctypes.get_errno()))
os.waitpid(pid, os.WUNTRACED | 0x40000000)   # __WALL
libc.ptrace(PTRACE_CONT, pid, None, None)
print("attached", flush=True)
while True:
    time.sleep(60)
"""


def spawn_on_pty(argv: list[str], **kw) -> tuple[subprocess.Popen, int, str]:
    """argv as a session leader whose controlling terminal is a new pty."""
    master, slave = os.openpty()
    name = os.ttyname(slave)

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty,
                         close_fds=True, **kw)
    os.close(slave)
    return p, master, name


def reap(p: subprocess.Popen) -> None:
    try:
        p.kill()
    except ProcessLookupError:
        pass
    p.wait()


def python_child(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], **kw)
