"""``bsdprocfs bench``: every benchmark as a ratio measured side by side in one run.

Each row times two workloads, A (ours) and B (the reference), in interleaved
repetitions (A B, B A, A B, ...: load drift hits both), and reports the median of
the per-repetition ratios plus the median of each side.  Every ratio is
time(A) / time(B) for the same work, so lower is better, and every goal reads
"ratio <= goal".  Nothing here asserts a speed; the table says whether each goal
was met on this machine, now.

Rows (``a``/``b`` in the JSON are the two medians, as times in the row's ``unit``):

* ``status_all_vs_floor``: A = ``ProcFS.read(pid, "status")`` for every pid in /proc;
  B = the floor: the very same open/read/close, stat and listdir calls on the Linux
  files the backend touched for those pids, recorded from the backend itself
  (deduplicated per pid), with no parsing.  ms per scan.
* ``status_all_vs_psutil``: A = ours (as above); B = ``psutil.process_iter`` with
  ppid, name, create_time, cpu_times, uids, gids, terminal, plus, per process, the
  cheapest raw call a psutil user makes for each status fact psutil has no API
  for: ``os.getpgid`` and ``os.getsid`` (pgid, sid), ``getsid`` of the leader (sid 0
  once it is gone; no zombie check, so cheaper than ours), a read of
  /proc/PID/status (supplementary groups), of /proc/PID/wchan (wmesg) and a readlink
  of ns/uts (jail).  Goal 0.4: 2.5 times faster.  ms per scan.
* ``map_vs_smaps``: A = ``ProcFS.read(pid, "map")`` of a helper with 2,000 extra
  mappings, B = a raw read of its /proc/PID/smaps.  ms per read.
* ``etype_osrel_vs_header_read``: A = etype + osrel of 50 distinct binaries through
  the backend's ELF path with a fresh backend (cold brand cache) per repetition,
  B = reading the first 4 KiB of each.  ms per 50 binaries.  Report only.
* ``fuse_status_vs_trivial``: A = open+read+close of MNT/PID/status, B = of a
  constant file on the same mount.  us per read.
* ``fuse_status_vs_kernel``: B = the kernel's /proc/PID/status.  Report only.
* ``fuse_status_vs_c_floor``: B = a compiled libfuse3 low-level daemon (built with
  gcc at bench time) serving the same bytes as a constant file at the same depth,
  with the mount's timeouts, direct_io and libfuse's multi-threaded loop: the FUSE
  limit of this kernel.  Goal 2.0: half the floor's rate.
* ``step_vs_raw``: A = single steps through the API (an open ctl handle: ``step``,
  which returns once the step trapped), B = PTRACE_SINGLESTEP + waitpid from ctypes
  (``ptrace.raw.raw_step_rate``), each on its own spinner.  us per step.
* ``step_vs_c_loop``: B = a compiled C loop of PTRACE_SINGLESTEP + waitpid on its own
  spinning child.  Goal 1.67: 0.6 of its rate.
* ``startup_cat_vs_python``: A = the installed ``bsdprocfs cat curproc status``,
  whole process; B = ``python -c pass`` on the same interpreter.  ms.
* ``startup_ps_vs_procps``: A = ``bsdprocfs ps ax``, B = procps ``ps ax``.  ms.

``--json FILE`` writes ``{row: {"ratio", "direction", "ratio_is", "goal", "goal_op",
"met", "a", "b", "unit", "a_is", "b_is", "skipped", "notes"}}``: direction is
"lower is better" for every row; goal/goal_op/met are null for report-only rows,
and a skipped row (FUSE, ptrace or gcc unavailable) has ratio/a/b/met null and its
reason in "skipped".

Every helper process, mount and temp file is created here and removed before
the command returns (helpers also die with us via PR_SET_PDEATHSIG).
"""

from __future__ import annotations

from .core import (
    DIRECTION,
    GOALS,
    ROWS,
    Helpers,
    Result,
    Settings,
    _interleave,
    _ratio,
    _wait_ready,
    skipped,
)
from .driver import cmd_bench, main, markdown, run, table
from .fuse import bench_fuse
from .map import _MAP_HELPER
from .status import _floor_fn, record_plan
from .step import bench_step

__all__ = ["DIRECTION", "GOALS", "ROWS", "Helpers", "Result", "Settings", "_MAP_HELPER",
           "_floor_fn", "_interleave", "_ratio", "_wait_ready", "bench_fuse", "bench_step",
           "cmd_bench", "main", "markdown", "record_plan", "run", "skipped", "table"]
