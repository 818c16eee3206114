"""Whole-process start-up: a short command against the interpreter doing nothing,
and ``bsdprocfs ps ax`` against procps' ``ps ax``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from .core import Result, Settings, _med, _ratio, skipped

NAMES = ("startup_cat_vs_python", "startup_ps_vs_procps")


def console_script() -> str | None:
    """The installed ``bsdprocfs`` command of this interpreter (setuptools' wrapper)."""
    here = os.path.join(os.path.dirname(sys.executable), "bsdprocfs")
    return here if os.access(here, os.X_OK) else shutil.which("bsdprocfs")


def _procps() -> str | None:
    ps = shutil.which("ps")
    if ps is None:
        return None
    r = subprocess.run([ps, "--version"], capture_output=True, text=True)
    return ps if "procps" in r.stdout else None


def user_env() -> tuple[dict[str, str], list[str]]:
    """The environment a user's shell gives the command: Python's own default of
    caching bytecode, even where this process was told not to write it."""
    env = dict(os.environ)
    notes = []
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        notes.append("PYTHONDONTWRITEBYTECODE unset for the runs (bytecode cached, "
                     "as by default)")
    return env, notes


def _pairs(a: list[str], b: list[str], reps: int) -> tuple[list[float], list[float]]:
    """Whole-process wall time of ``a`` and ``b``, alternating which runs first."""
    env, _ = user_env()

    def once(argv: list[str]) -> float:
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env)
        dt = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace').strip()[:200]}")
        return dt
    once(a)
    once(b)                                      # warm: page cache, pyc files
    ta: list[float] = []
    tb: list[float] = []
    for r in range(reps):
        if r % 2:
            tb.append(once(b))
            ta.append(once(a))
        else:
            ta.append(once(a))
            tb.append(once(b))
    return ta, tb


def bench_startup(settings: Settings) -> list[Result]:
    script = console_script()
    if script is None:
        return [skipped(n, "the bsdprocfs command is not installed next to this "
                        "interpreter nor on PATH") for n in NAMES]
    reps = settings.starts
    res: list[Result] = []
    _, env_notes = user_env()
    cat = [script, "cat", "curproc", "status"]
    py = [sys.executable, "-c", "pass"]
    try:
        ta, tb = _pairs(cat, py, reps)
        res.append(Result(NAMES[0], _ratio(ta, tb), _med(ta) * 1e3, _med(tb) * 1e3, "ms",
                          "bsdprocfs cat curproc status (the installed command, whole "
                          "process)", f"{os.path.basename(sys.executable)} -c pass (the same "
                          "interpreter, whole process)",
                          notes=[f"{reps} pairs", *env_notes]))
    except (RuntimeError, OSError) as e:
        res.append(skipped(NAMES[0], str(e)))
    ps = _procps()
    if ps is None:
        res.append(skipped(NAMES[1], "procps ps is not installed"))
        return res
    try:
        ta, tb = _pairs([script, "ps", "ax"], [ps, "ax"], reps)
        nproc = sum(p.isdigit() for p in os.listdir("/proc"))
        res.append(Result(NAMES[1], _ratio(ta, tb), _med(ta) * 1e3, _med(tb) * 1e3, "ms",
                          "bsdprocfs ps ax (whole process)", "procps ps ax",
                          notes=[f"{reps} pairs, {nproc} processes", *env_notes]))
    except (RuntimeError, OSError) as e:
        res.append(skipped(NAMES[1], str(e)))
    return res
