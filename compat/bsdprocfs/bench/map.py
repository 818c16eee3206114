"""map of a many-mapping process against a raw smaps read."""

from __future__ import annotations

import subprocess
import sys

from .core import MAP_HELPER_MAPPINGS, Helpers, Result, Settings, _interleave, _med, _ratio, skipped
from .core import _wait_ready as _wait_ready

#: a process with many distinct mappings
_MAP_HELPER = """
import mmap, sys
ms = []
for i in range({n}):
    # alternating protections keep the kernel from merging neighbours into one VMA
    m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
    if i % 2:
        m[0:1] = b"x"
    ms.append(m)
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.read()
"""


def _raw_read_all(path: str) -> bytes:
    """The raw floor: the backend's own read loop, without parsing."""
    from ..backends.linux import _read_all
    return _read_all(path)


def bench_map(settings: Settings, helpers: Helpers) -> Result:
    name = "map_vs_smaps"
    if not sys.platform.startswith("linux"):
        return skipped(name, "smaps is Linux-only")
    from ..api import ProcFS
    h = helpers.spawn([sys.executable, "-c", _MAP_HELPER.format(n=MAP_HELPER_MAPPINGS)],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    _wait_ready(h)
    fs = ProcFS(backend="linux")
    pid = h.pid
    path = f"/proc/{pid}/smaps"
    t = _interleave([lambda: fs.read(pid, "map"), lambda: _raw_read_all(path)], settings.reps)
    lines = fs.read(pid, "map").count(b"\n")
    size = len(_raw_read_all(path))
    return Result(name, _ratio(t[0], t[1]), _med(t[0]) * 1e3, _med(t[1]) * 1e3, "ms",
                  f"ProcFS.read(pid, 'map'): {lines} entries",
                  f"raw read of /proc/PID/smaps ({size // 1024} KiB)")


