"""Facts about FreeBSD processes: parsed from a native procfs, else psutil/sysctl.

With procfs mounted, every record is *parsed* from the kernel's own bytes, so
the API is identical on both OSes and the parsers are exercised on real
output.  Without it, psutil and sysctl supply the facts and the nodes render
them.  This module cannot run on the Linux CI machine: its tests point it at
directory trees that mimic a FreeBSD /proc.
"""

from __future__ import annotations

import os
import stat as _stat
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .. import elf
from ..errors import EIO, ENOENT, EPERM, ProcfsError, fail
from ..nodes import cmdline as n_cmdline
from ..nodes import etype as n_etype
from ..nodes import map as n_map
from ..nodes import osrel as n_osrel
from ..nodes import rlimit as n_rlimit
from ..nodes import status as n_status
from ..profiles import RLIMIT_IDENTS, Profile, get_profile, profile_for_osreldate
from ..records import (
    RLIM_INFINITY,
    CmdlineRecord,
    Credentials,
    EtypeRecord,
    FileRecord,
    MapEntry,
    MapRecord,
    OsrelRecord,
    ProcExtras,
    ProcIdentity,
    Rlimit,
    RlimitRecord,
    StatusRecord,
    TimeVal,
)


def native_osreldate() -> int | None:
    try:
        out = subprocess.run(["sysctl", "-n", "kern.osreldate"], capture_output=True,
                             text=True, timeout=5, check=True).stdout
        return int(out.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def native_profile(root: str = "/proc") -> Profile:
    """The profile of the running FreeBSD kernel (kern.osreldate), else newest."""
    rel = native_osreldate()
    return profile_for_osreldate(rel) if rel else get_profile("freebsd-14")


def procfs_mounted(root: str) -> bool:
    return os.path.isdir(root) and os.path.exists(os.path.join(root, "curproc"))


@dataclass
class FreeBSDProc:
    pid: int
    status: StatusRecord
    ident: ProcIdentity
    cache: dict[str, Any] = field(default_factory=dict)


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail(ENOENT, path, None, "no such process") from None
    try:
        chunks: list[bytes] = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    except OSError as e:
        raise fail(e.errno or EIO, path, None, e.strerror) from None
    finally:
        os.close(fd)


class FreeBSDBackend:
    """A native FreeBSD /proc (``root``) parsed into records, or psutil when absent."""

    name = "freebsd"

    def __init__(self, root: str | None = None, profile: Profile | str | None = None) -> None:
        self.root = root or "/proc"
        self.native = procfs_mounted(self.root)
        self.source_profile = get_profile(profile) if profile else native_profile(self.root)
        self._debugger: Any = None

    # ---------------------------------------------------------------- lookup
    def pids(self) -> list[int]:
        if self.native:
            return [int(n) for n in os.listdir(self.root) if n.isdigit()]
        import psutil
        return sorted(psutil.pids(), reverse=True)

    def _path(self, pid: int, node: str) -> str:
        return f"{self.root}/{pid}/{node}"

    def lookup(self, pid: int, zombies: bool = False) -> FreeBSDProc:
        # zombies: a native procfs never shows them, so ProcFS.zombies() is empty here.
        if not self.native:
            return self._lookup_psutil(pid)
        data = _read(self._path(pid, "status"))
        try:
            st = n_status.parse(data, self.source_profile)
        except ValueError as e:
            raise fail(EIO, pid, "status", f"native status did not parse: {e}") from None
        # P_SYSTEM hides map and file (procfs_notsystem); P_SUGID turns regs to mode 0.
        system = not os.path.lexists(self._path(pid, "file"))
        try:
            sugid = _stat.S_IMODE(os.stat(self._path(pid, "regs")).st_mode) == 0
        except OSError:
            sugid = False
        egid = st.groups[0] if st.groups else st.rgid
        creds = Credentials(st.ruid, st.euid, st.euid, st.rgid, egid, egid, st.groups[1:])
        start = st.start.total_us if st.start else 0
        return FreeBSDProc(pid, st, ProcIdentity(pid, creds, system, sugid, False, start))

    def _lookup_psutil(self, pid: int) -> FreeBSDProc:
        import psutil
        try:
            pr = psutil.Process(pid)
            with pr.oneshot():
                if pr.status() == psutil.STATUS_ZOMBIE:
                    raise fail(ENOENT, pid, None, "zombie")
                u, g = pr.uids(), pr.gids()
                name = pr.name().encode()[:19]
                ppid = pr.ppid()
                created = pr.create_time()
                ct = pr.cpu_times()
                term = pr.terminal()
                try:
                    groups = tuple(os.getgrouplist(pr.username(), g.effective))
                except (KeyError, OSError, psutil.Error):
                    groups = ()
        except psutil.NoSuchProcess:
            raise fail(ENOENT, pid, None, "no such process") from None
        except psutil.AccessDenied:
            raise fail(EPERM, pid, None, "access denied") from None
        try:
            pgid, sid = os.getpgid(pid), os.getsid(pid)
        except OSError:
            pgid = sid = 0
        tty = term[5:] if term and term.startswith("/dev/") else None
        st = StatusRecord(
            comm=name, pid=pid, ppid=ppid, pgid=pgid, sid=sid, tty=tty, ctty=tty is not None,
            sldr=sid == pid, start=TimeVal.from_us(int(created * 1e6)),
            utime=TimeVal.from_us(int(ct.user * 1e6)), stime=TimeVal.from_us(int(ct.system * 1e6)),
            wmesg="nochan", euid=u.effective, ruid=u.real, rgid=g.real,
            groups=(g.effective, *[x for x in groups if x != g.effective]), jail=None)
        creds = Credentials(u.real, u.effective, u.saved, g.real, g.effective, g.saved,
                            st.groups[1:])
        sugid = len({u.real, u.effective, u.saved}) > 1 or len({g.real, g.effective, g.saved}) > 1
        return FreeBSDProc(pid, st, ProcIdentity(pid, creds, pid == 0, sugid, False,
                                                  st.start.total_us if st.start else 0))

    def alive(self, pid: int, start_ticks: int) -> bool:
        try:
            return self.lookup(pid).ident.start_ticks == start_ticks
        except OSError:
            return False

    # --------------------------------------------------------------- records
    def status(self, p: FreeBSDProc) -> StatusRecord:
        s = p.status
        from dataclasses import replace
        return replace(s, extras=ProcExtras(state="S", system=p.ident.system))

    def _native(self, p: FreeBSDProc, node: str) -> bytes:
        try:
            return _read(self._path(p.pid, node))
        except ProcfsError as e:
            raise fail(EIO if e.errno in (None, ENOENT) else e.errno, p.pid, node,
                       "native read failed") from None

    def cmdline(self, p: FreeBSDProc) -> CmdlineRecord:
        if self.native:
            return n_cmdline.parse(self._native(p, "cmdline"))
        import psutil
        try:
            return CmdlineRecord(tuple(a.encode() for a in psutil.Process(p.pid).cmdline()))
        except psutil.Error:
            return CmdlineRecord(())

    def rlimit(self, p: FreeBSDProc) -> RlimitRecord:
        if self.native:
            rec = n_rlimit.parse(self._native(p, "rlimit"), self.source_profile)
            have = {r.ident for r in rec.limits}
            # A newer profile than the kernel: limits it lacks are infinite there.
            return RlimitRecord(rec.limits + tuple(
                Rlimit(i, RLIM_INFINITY, RLIM_INFINITY) for i in RLIMIT_IDENTS if i not in have))
        import psutil
        pr = psutil.Process(p.pid)
        out = []
        for i, ident in enumerate(RLIMIT_IDENTS):
            try:
                cur, mx = pr.rlimit(i)
            except (psutil.Error, OSError, ValueError):
                cur = mx = RLIM_INFINITY
            out.append(Rlimit(ident, RLIM_INFINITY if cur < 0 else cur,
                              RLIM_INFINITY if mx < 0 else mx))
        return RlimitRecord(tuple(out))

    def map(self, p: FreeBSDProc, fast: bool = False) -> MapRecord:
        if self.native:
            rec = n_map.parse(self._native(p, "map"), self.source_profile)
            if self.source_profile.kvme_map_types:
                return rec
            # OBJT-era names: "default" is anonymous memory (swap in kvme terms).
            from dataclasses import replace
            return MapRecord(tuple(replace(e, type="swap" if e.type == "default" else e.type)
                                   for e in rec.entries))
        import psutil
        entries = []
        for m in psutil.Process(p.pid).memory_maps(grouped=False):
            lo, hi = (int(x, 16) for x in m.addr.split("-"))
            path = m.path.encode() if m.path.startswith("/") else None
            entries.append(MapEntry(lo, hi, m.rss, m.private, 0, m.perms[:3], m.ref_count,
                                    m.shadow_count, 0, True, False,
                                    "vnode" if path else "swap", path, False, -1))
        return MapRecord(tuple(entries))

    def etype(self, p: FreeBSDProc) -> EtypeRecord:
        if self.native:
            return n_etype.parse(self._native(p, "etype"))
        return EtypeRecord(self._brand(p).etype)

    def osrel(self, p: FreeBSDProc) -> OsrelRecord:
        if self.native:
            return n_osrel.parse(self._native(p, "osrel"))
        return OsrelRecord(self._brand(p).osrel)

    def _brand(self, p: FreeBSDProc) -> elf.ElfBrand:
        if p.ident.system:
            return elf.ElfBrand("null", 0)
        try:
            return elf.brand_of_path(self.binpath(p).path)
        except (OSError, ValueError):
            return elf.ElfBrand("Not Available", 0)

    def set_osrel(self, p: FreeBSDProc, value: int) -> None:
        if not self.native:
            raise fail(EPERM, p.pid, "osrel", "needs a mounted procfs")
        fd = os.open(self._path(p.pid, "osrel"), os.O_WRONLY)
        try:
            os.write(fd, b"%d\n" % value)
        finally:
            os.close(fd)

    def binpath(self, p: FreeBSDProc) -> FileRecord:
        if self.native:
            try:
                return FileRecord(os.readlink(self._path(p.pid, "file")))
            except OSError as e:
                raise fail(e.errno or EIO, p.pid, "file", e.strerror) from None
        import psutil
        try:
            return FileRecord(psutil.Process(p.pid).exe())
        except psutil.Error:
            raise fail(ENOENT, p.pid, "file", "executable unknown") from None

    @property
    def debugger(self) -> Any:
        if self._debugger is None:
            self._debugger = NativeDebugger(self)
        return self._debugger


class NativeDebugger:
    """regs/fpregs/dbregs/mem straight through the native nodes; ctl through ptrace
    (FreeBSD >= 11 has no ctl node, so the shim provides it)."""

    def __init__(self, backend: FreeBSDBackend) -> None:
        self.backend = backend
        self._ptrace: Any = None

    def _io(self, pid: int, node: str, offset: int, data: bytes | None, size: int = 0) -> Any:
        flags = os.O_RDWR if data is not None else os.O_RDONLY
        fd = os.open(self.backend._path(pid, node), flags | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset) if data is None else os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def read_regset(self, pid: int, which: str, check: Any = None) -> Any:
        """The native struct parsed into a RegSet (the tree renders it back)."""
        from ..nodes import module_for
        return module_for(which).parse(bytes(self._io(pid, which, 0, None, 4096)))

    def write_regset(self, pid: int, which: str, data: bytes, check: Any = None) -> int:
        return int(self._io(pid, which, 0, data))

    # the native kernel checks the reader itself: no re-check or pinned fd needed
    def mem_read(self, pid: int, addr: int, size: int, fd: int | None = None) -> bytes:
        return bytes(self._io(pid, "mem", addr, None, size))

    def mem_write(self, pid: int, addr: int, data: bytes, fd: int | None = None) -> int:
        return int(self._io(pid, "mem", addr, data))

    def _ctl_engine(self) -> Any:
        if self._ptrace is None:
            from ..debug import get_debugger
            self._ptrace = get_debugger()
        return self._ptrace

    def ctl(self, pid: int, cmd: Any, reader: Any, **kw: Any) -> None:
        """Native ctl (FreeBSD <= 10) or ptrace(2) (debug.FreeBSDPtrace; UNTESTED on
        the Linux CI: it can only run on a FreeBSD host)."""
        native = self.backend._path(pid, "ctl")
        if os.path.exists(native):
            fd = os.open(native, os.O_WRONLY)
            try:
                os.write(fd, cmd.word.encode())
            finally:
                os.close(fd)
            return
        self._ctl_engine().ctl(pid, cmd, reader, **kw)

    def pinned(self, pid: int) -> bool:
        return False    # the native /proc is cheap to re-read and owns its own rules

    def traced_by_us(self, pid: int) -> bool:
        return bool(self._ptrace and self._ptrace.traced_by_us(pid))

    def close(self) -> None:
        if self._ptrace is not None:
            self._ptrace.close()
