"""Single steps through ctl against raw ptrace loops."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

from .core import (
    Helpers,
    Result,
    Settings,
    _interleave,
    _med,
    _pdeathsig,
    _ratio,
    compile_c,
    skipped,
)

NAMES = ("step_vs_raw", "step_vs_c_loop")

#: The floor: the loop of ptrace.raw.raw_step_rate, compiled: seize PID, interrupt,
#: put tracer and tracee on one CPU (the kernel's fastest hand-off: measured on 2
#: busy cores, a cross-CPU pair stepped 20 times slower), 200 warm-up steps, then
#: N times PTRACE_SINGLESTEP + waitpid, detach (it keeps running); prints the
#: loop's nanoseconds.
STEP_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    pid_t pid = (pid_t)atol(argv[1]);
    long n = atol(argv[2]);
    int st;
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return 1;
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0 || waitpid(pid, &st, __WALL) != pid) {
        ptrace(PTRACE_DETACH, pid, 0, 0);
        return 1;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);
    sched_setaffinity(pid, sizeof one, &one);
    struct timespec a, b;
    for (long i = -200; i < n; i++) {
        if (i == 0) clock_gettime(CLOCK_MONOTONIC, &a);
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) != 0 || waitpid(pid, &st, __WALL) != pid) {
            ptrace(PTRACE_DETACH, pid, 0, 0);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
"""


def _ptrace_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the raw baseline is Linux ptrace"
    try:
        from .. import debug  # noqa: F401
        from ..ptrace import raw  # noqa: F401
    except ImportError as e:
        return f"the ptrace layer is not available: {e}"
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() == "3":
                return "ptrace disabled (kernel.yama.ptrace_scope = 3)"
    except OSError:
        pass
    return None


def bench_step(settings: Settings, helpers: Helpers) -> list[Result]:
    """API steps (an open ctl handle) against two loops of PTRACE_SINGLESTEP + waitpid:
    ptrace.raw.raw_step_rate (ctypes, on this thread) and a compiled C program (the
    physical floor), each on its own spinner, interleaved."""
    why = _ptrace_unavailable()
    if why:
        return [skipped(n, why) for n in NAMES]
    from ..api import ProcFS
    from ..ptrace import raw
    build = tempfile.mkdtemp(prefix="bsdprocfs-bench-")
    c_why = None
    try:
        cmd = raw.build_spinner(build)
        targets = []
        for _ in range(3):
            sp = helpers.spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            assert sp.stdout is not None
            sp.stdout.readline()               # the spinner is running its loop
            targets.append(sp.pid)
        try:
            c_loop = compile_c(STEP_C, "step_loop", build)
        except RuntimeError as e:
            c_why = str(e)
        api_pid, raw_pid, c_pid = targets
        fs = ProcFS(backend="linux")
        n = settings.steps
        try:
            ctl = fs.open(api_pid, "ctl", "w")
            ctl.write(b"attach")
            ctl.write(b"wait")
        except OSError as e:
            return [skipped(nm, f"ptrace unavailable: ctl attach failed: {e}") for nm in NAMES]
        raw_s: list[float] = []
        c_s: list[float] = []

        def api() -> None:
            w = ctl.write
            for _ in range(n):
                w(b"step")                 # returns once the step has trapped

        def raw_run() -> None:
            raw_s.append(n / raw.raw_step_rate(raw_pid, n))

        def c_run() -> None:
            r = subprocess.run([c_loop, str(c_pid), str(n)], capture_output=True,
                               timeout=120, preexec_fn=_pdeathsig)
            if r.returncode:
                raise OSError(f"the C step loop failed (exit {r.returncode})")
            c_s.append(int(r.stdout) / 1e9)

        fns = [api, raw_run] + ([c_run] if c_why is None else [])
        try:
            t = _interleave(fns, settings.reps)
        except OSError as e:
            return [skipped(nm, f"ptrace unavailable: {e}") for nm in NAMES]
        finally:
            with contextlib.suppress(OSError):
                ctl.write(b"detach")
            with contextlib.suppress(Exception):
                fs.backend.debugger.close()
    finally:
        shutil.rmtree(build, ignore_errors=True)
    api_s = t[0]
    raw_s = raw_s[-settings.reps:]            # the stepping loops alone (no seize/detach)
    us = 1e6 / n
    ours = f"an open ctl handle: write 'step' (returns after the trap; {n / _med(api_s):,.0f}/s)"
    res = [Result(NAMES[0], _ratio(api_s, raw_s), _med(api_s) * us, _med(raw_s) * us,
                  "us/step", ours, "ptrace.raw.raw_step_rate: ctypes PTRACE_SINGLESTEP + "
                  f"waitpid ({n / _med(raw_s):,.0f}/s)",
                  notes=[f"targets: {os.path.basename(cmd[0])} spinners"])]
    if c_why is not None:
        res.append(skipped(NAMES[1], c_why))
    else:
        c_s = c_s[-settings.reps:]
        res.append(Result(NAMES[1], _ratio(api_s, c_s), _med(api_s) * us, _med(c_s) * us,
                          "us/step", ours, "the same loop compiled: C PTRACE_SINGLESTEP + "
                          "waitpid on its own spinner, both on one CPU "
                          f"({n / _med(c_s):,.0f}/s)",
                          notes=[f"rate ours / C = {_med(c_s) / _med(api_s):.2f}x"]))
    return res
