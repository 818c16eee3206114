"""etype + osrel of many binaries against reading their ELF headers."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from .core import ETYPE_BINARIES, Result, Settings, _interleave, _med, _ratio, skipped


def _distinct_binaries(n: int) -> list[str]:
    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    for d in ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/lib"):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for nm in names:
            path = f"{d}/{nm}"
            try:
                st = os.stat(path)
                if st.st_mode & 0o170000 != 0o100000 or (st.st_dev, st.st_ino) in seen:
                    continue
                with open(path, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            seen.add((st.st_dev, st.st_ino))
            out.append(path)
            if len(out) == n:
                return out
    return out


def bench_etype(settings: Settings) -> Result:
    name = "etype_osrel_vs_header_read"
    if not sys.platform.startswith("linux"):
        return skipped(name, "uses the Linux backend's ELF path")
    from ..backends.linux import LinuxBackend, LinuxProc
    from ..nodes import etype as n_etype
    from ..nodes import osrel as n_osrel
    from ..records import Credentials, ProcIdentity
    bins = _distinct_binaries(ETYPE_BINARIES)
    if not bins:
        return skipped(name, "no ELF binaries found in /usr/bin or /usr/lib")
    # A private "/proc" whose <n>/exe links name the binaries: the backend then takes
    # its own path (open exe, fstat, brand cache, ELF notes) for each of them.
    root = tempfile.mkdtemp(prefix="bsdprocfs-bench-")
    try:
        procs = []
        for i, b in enumerate(bins, start=1):
            os.mkdir(f"{root}/{i}")
            os.symlink(b, f"{root}/{i}/exe")
            ident = ProcIdentity(i, Credentials(0, 0, 0, 0, 0, 0), False, False, False, 0)
            procs.append(LinuxProc(i, b"", (), b"", ident))
        # one fresh backend (an empty brand cache) per run, built outside the timing
        fresh = [LinuxBackend(root) for _ in range(settings.reps + 1)]

        def ours() -> None:
            be = fresh.pop()
            for p in procs:
                n_etype.render(be.etype(p))
                n_osrel.render(be.osrel(p))

        def header() -> None:
            for b in bins:
                fd = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
                os.read(fd, 4096)
                os.close(fd)

        times = _interleave([ours, header], settings.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Result(name, _ratio(times[0], times[1]), _med(times[0]) * 1e3,
                  _med(times[1]) * 1e3, "ms",
                  f"etype+osrel of {len(bins)} distinct binaries, cold brand cache",
                  "os.read of their first 4 KiB")


