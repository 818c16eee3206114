"""Baselines and targets for the single-step benchmark and the ptrace tests.

``raw_step_rate`` is the yardstick of issue 8's ``step_vs_raw`` row: raw ctypes
PTRACE_SINGLESTEP + waitpid on the calling thread, no tracer thread, no procfs.
``spinner`` starts the tiny C target the tests and the bench step through (a
Python loop when gcc is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import linux as lx

SPINNER_C = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
volatile unsigned long counter;
static int sigpipe_fd = -1;
static void note(int sig) { unsigned char b = (unsigned char)sig; if (write(sigpipe_fd, &b, 1)) {} }
__attribute__((noinline)) void tick(void) { counter++; }
int main(int argc, char **argv) {
    /* argv[1] = fd to report caught signals on (optional): every catchable signal
       gets a handler that writes its number there. */
    if (argc > 1) {
        sigpipe_fd = atoi(argv[1]);
        struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = note;
        sa.sa_flags = SA_RESTART;
        for (int s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, 0);
    }
    printf("%p %p\n", (void *)&counter, (void *)tick);
    fflush(stdout);
    for (;;) tick();
}
"""

SPINNER_PY = r"""
import os, signal, sys
fd = int(sys.argv[1]) if len(sys.argv) > 1 else -1
def note(sig, frame):
    os.write(fd, bytes([sig]))
if fd >= 0:
    for s in range(1, 32):
        if s not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(s, note)
            except (OSError, ValueError):
                pass
counter = [0]
print("0x0 0x0", flush=True)
while True:
    counter[0] += 1
"""


def build_spinner(directory: str | None = None) -> list[str]:
    """The command that runs the spinner: a compiled C binary, else Python."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc:
        d = directory or tempfile.mkdtemp(prefix="bsdprocfs-spin-")
        src, exe = os.path.join(d, "spin.c"), os.path.join(d, "spin")
        if not os.path.exists(exe):
            with open(src, "w") as f:
                f.write("#include <stdlib.h>\n" + SPINNER_C)
            subprocess.run([cc, "-O0", "-o", exe, src], check=True)
        return [exe]
    return [sys.executable, "-c", SPINNER_PY]


def spinner(cmd: list[str], *extra: str, pass_fds: tuple[int, ...] = ()
            ) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start a spinner; returns (process, &counter, &tick) (0s for the Python one)."""
    p = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, pass_fds=pass_fds)
    assert p.stdout is not None
    counter, tick = (int(x, 16) for x in p.stdout.readline().split())
    return p, counter, tick


def raw_step_rate(pid: int, steps: int = 20000) -> float:
    """Single steps per second with raw ctypes PTRACE_SINGLESTEP + waitpid on this
    thread (attaches, steps, detaches; the target keeps running afterwards)."""
    lx.seize(pid, 0)
    try:
        lx.interrupt(pid)
        os.waitpid(pid, lx.WALL)
        step, wait, flags = lx.singlestep, os.waitpid, lx.WALL
        t = time.perf_counter()
        for _ in range(steps):
            step(pid, 0)
            wait(pid, flags)
        dt = time.perf_counter() - t
    finally:
        lx.detach(pid, 0)
    return steps / dt


def api_step_rate(fs: object, pid: int, steps: int = 20000, handle: bool = False) -> float:
    """Single steps per second through the API: ``fs.write(pid, "ctl", b"step")`` (or
    one open ctl handle written repeatedly); attaches and detaches around the loop."""
    write = fs.write                                   # type: ignore[attr-defined]
    write(pid, "ctl", b"attach")
    try:
        write(pid, "ctl", b"wait")
        if handle:
            h = fs.open(pid, "ctl", "w")              # type: ignore[attr-defined]
            w = h.write
            t = time.perf_counter()
            for _ in range(steps):
                w(b"step")
        else:
            t = time.perf_counter()
            for _ in range(steps):
                write(pid, "ctl", b"step")
        dt = time.perf_counter() - t
    finally:
        write(pid, "ctl", b"detach")
    return steps / dt
