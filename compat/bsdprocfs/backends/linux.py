"""Facts about Linux processes, from /proc, for FreeBSD records.

Hot paths use os.open/os.read (2x cheaper than open()) and read each file at
most once per operation; see linux-mapping.md for every source choice.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import elf
from ..errors import EACCES, EIO, ENOENT, EPERM, fail
from ..profiles import RLIMIT_IDENTS
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
from ..wmesg import wmesg_for
from . import _linuxparse


def _load_facts() -> Any:
    """The compiled twin of _linuxparse when it was built (setup.py), else the
    reference itself; BSDPROCFS_PURE=1 forces the reference (tests run both)."""
    if os.environ.get("BSDPROCFS_PURE") != "1":
        try:
            from . import _linuxfacts  # type: ignore[attr-defined]
            return _linuxfacts
        except ImportError:
            pass
    return _linuxparse


#: the hot paths: stat/status and the rest of the status scan, smaps to map rows
facts: Any = _load_facts()

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PF_EXITING = 0x00000004
PF_KTHREAD = 0x00200000
MAXCOMLEN = 19
_READ = os.O_RDONLY | os.O_CLOEXEC


def _read(path: str, size: int = 4096) -> bytes:
    """A single-record /proc file (limits, status, uevent): one read returns it whole."""
    return _linuxparse.read_once(path, size)[0]


def _read_all(path: str) -> bytes:
    """A multi-record seq file (maps, smaps, cmdline): short reads until EOF."""
    fd = os.open(path, _READ)
    try:
        chunks: list[bytes] = []
        while True:
            more = os.read(fd, 1 << 20)
            if not more:
                return b"".join(chunks)
            chunks.append(more)
    finally:
        os.close(fd)


def _same_pidns(root: str) -> bool:
    """Does the procfs at root number processes as our own syscalls do?"""
    try:
        return os.readlink(f"{root}/self") == str(os.getpid())
    except OSError:
        return False


def cr_groups(egid: int, groups: tuple[int, ...]) -> tuple[int, ...]:
    """FreeBSD's cr_groups (<= 14): the egid, then the setgroups list.  Linux's
    Groups: is the whole setgroups list, where initgroups already put the primary
    group, which FreeBSD's getgrouplist+setgroups hold once as cr_groups[0]
    (procfs_status.c: "egid ... is equal to cr_ngroups[0]"; cite: status.groups)."""
    if egid not in groups:
        return (egid, *groups)
    return (egid, *(g for g in groups if g != egid))


@dataclass(slots=True)
class LinuxProc:
    """One snapshot of a pid: stat and status read once, other files on demand."""

    pid: int
    comm: bytes
    f: tuple[int, ...]                   # stat after the last ')': ord(state), numbers
    status: bytes
    ident: ProcIdentity
    cache: dict[str, Any] = field(default_factory=dict)
    tracer: int = 0                      # status TracerPid (a thread id)

    @property
    def state(self) -> str:
        return chr(self.f[0])

    def status_field(self, key: bytes) -> bytes:
        i = self.status.find(b"\n" + key + b":")
        if i < 0:
            return b""
        j = self.status.find(b"\n", i + 1)
        return self.status[i + len(key) + 2: j if j >= 0 else None].strip()


#: Linux task state -> FreeBSD ki_stat letter where they differ.
_KI_STAT = {"t": "T", "I": "I", "W": "D", "P": "D", "K": "D"}
_NS_PER_TICK = 1_000_000_000 // CLK_TCK
_EXITING = (ord("Z"), ord("X"), ord("x"))

_LIMITS_ROWS = {
    b"Max cpu time": "cpu", b"Max file size": "fsize", b"Max data size": "data",
    b"Max stack size": "stack", b"Max core file size": "core", b"Max resident set": "rss",
    b"Max locked memory": "memlock", b"Max processes": "nproc", b"Max open files": "nofile",
    b"Max address space": "vmem",
}


class LinuxBackend:
    """Linux /proc as the source; ``root`` lets tests point it at another procfs mount."""

    name = "linux"
    status_extras_optional = True        # status(p, extras=False): see ProcTree.render
    map_types = _linuxparse.MAP_TYPES    # the order map_bytes takes type names in

    def __init__(self, root: str = "/proc") -> None:
        self.root = root
        #: root is this pid namespace's own /proc: facts may come from syscalls by pid
        self.by_pid = os.path.realpath(root) == "/proc" and _same_pidns(root)
        self._boot_ns = self._boottime_ns()
        self._tty_names: dict[int, str] = {}
        self._brands: dict[tuple[int, int, int], elf.ElfBrand] = {}
        self._osrel: dict[tuple[int, int], tuple[tuple[int, int, float], int]] = {}
        self._hostnames: dict[int, tuple[float, str]] = {}
        self._own_uts = facts.uts_ino(f"{root}/self/ns/uts")
        self._lock = threading.Lock()
        self._debugger: Any = None

    # ---------------------------------------------------------------- lookup
    def pids(self) -> list[int]:
        """Candidate pids, newest first (FreeBSD walks allproc from its head)."""
        return sorted((int(n) for n in os.listdir(self.root) if n.isdigit()), reverse=True)

    def lookup(self, pid: int, zombies: bool = False) -> LinuxProc:
        """A live, non-zombie process whose pid is a thread-group id, else ENOENT.

        zombies=True also returns exiting/zombie processes (ident.zombie set), for the
        ProcFS.zombies() extension only: ps(1) lists zombies, procfs never does."""
        try:
            comm, f, owner_uid, owner_gid, status, ids = facts.snapshot(f"{self.root}/{pid}")
        except (FileNotFoundError, ProcessLookupError):
            raise fail(ENOENT, pid, None, "no such process") from None
        except PermissionError:
            raise fail(ENOENT, pid, None, "not visible") from None
        flags = f[6]
        wexit = f[0] in _EXITING or bool(flags & PF_EXITING)
        if wexit and not zombies:
            raise fail(ENOENT, pid, None, "process is exiting or a zombie")
        if ids is None:
            raise fail(ENOENT, pid, None, "status lacks Tgid, TracerPid, Uid, Gid or Groups")
        if ids[0] != pid:
            raise fail(ENOENT, pid, None, "a thread id, not a process id")
        creds = Credentials(*ids[2:])           # ids: tgid, tracer, then its fields
        system = bool(flags & PF_KTHREAD)
        # P_SUGID (FreeBSD's setsugid(): every set[e|re|res]uid/gid and setgroups that
        # changes a credential, and an exec honouring set-id bits) has no Linux twin.
        # What Linux shows of such a change: differing real/effective/saved ids; a
        # cleared "dumpable" (credential change, set-id or file-capability exec,
        # prctl(PR_SET_DUMPABLE, 0)), which makes /proc/PID root-owned; and, for a
        # process with no uid 0, any capability at all (inheritable, permitted,
        # effective or ambient): file capabilities, or a capset by a privileged parent
        # (setpriv --ambient-caps), privilege its uid alone never has.
        euid, egid = creds.euid, creds.egid
        sugid = (not system and (not creds.ruid == euid == creds.suid
                                 or not creds.rgid == egid == creds.sgid
                                 or owner_uid != euid or owner_gid != egid
                                 or (creds.ruid != 0 and euid != 0 and creds.suid != 0
                                     and _holds_caps(status))))
        return LinuxProc(pid, comm, f, b"\n" + status, ProcIdentity(
            pid, creds, system, sugid, wexit, f[19]), {}, ids[1])

    def alive(self, pid: int, start_ticks: int) -> bool:
        """Is the process an open handle refers to still the same and visible?"""
        try:
            return self.lookup(pid).ident.start_ticks == start_ticks
        except OSError:
            return False

    # ---------------------------------------------------------------- status
    @staticmethod
    def _boottime_ns() -> int:
        return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def boot_ns(self) -> int:
        """realtime - CLOCK_BOOTTIME (never btime: 0.63 s off here), steady unless the
        clock is stepped by more than 1 ms, as FreeBSD's boottime follows steps."""
        now = self._boottime_ns()
        if abs(now - self._boot_ns) > 1_000_000:
            self._boot_ns = now
        return self._boot_ns

    def tty_name(self, dev: int) -> str | None:
        if dev == 0:
            return None
        major, minor = os.major(dev), os.minor(dev)
        if major == 136:
            return f"pts/{minor}"
        name = self._tty_names.get(dev)
        if name is None:
            try:
                ue = _read(f"/sys/dev/char/{major}:{minor}/uevent")
                m = re.search(rb"^DEVNAME=(.*)$", ue, re.M)
                name = m.group(1).decode() if m else None
            except OSError:
                name = None
            if name is None:
                name = self._scan_dev(dev)
            if name is None:
                return f"{major},{minor}"
            self._tty_names[dev] = name     # only hits are cached: no stale misses
        return name

    @staticmethod
    def _scan_dev(dev: int) -> str | None:
        for d in ("/dev", "/dev/pts"):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                path = f"{d}/{n}"
                try:
                    if os.stat(path).st_rdev == dev:
                        return path[5:]
                except OSError:
                    pass
        return None

    def _full_comm(self, p: LinuxProc) -> bytes:
        """Rebuild FreeBSD's 19-byte p_comm from the 15-byte TASK_COMM_LEN cut.  (Kernel
        threads' longer names are cut to MAXCOMLEN by the caller, as p_comm holds 19.)"""
        comm = p.comm
        if len(comm) != 15 or p.ident.system:
            return comm
        for cand in (self._argv0(p), self._exe_base(p)):
            if cand and cand.startswith(comm):
                return cand[:MAXCOMLEN]
        return comm

    def _argv0(self, p: LinuxProc) -> bytes:
        try:
            args = self._cmdline_raw(p)
        except OSError:
            return b""
        return os.path.basename(args.split(b"\0", 1)[0])

    def _exe_base(self, p: LinuxProc) -> bytes:
        try:
            return os.path.basename(os.readlink(f"{self.root}/{p.pid}/exe").encode())
        except OSError:
            return b""

    @staticmethod
    def cpu_times(p: LinuxProc, total: int) -> tuple[TimeVal, TimeVal]:
        """FreeBSD calcru: the precise runtime (``total`` ns: the CPU-time clock, or
        schedstat under a foreign root) split by the tick ratio (u, s); the ticks
        alone when total is unreadable or disagrees with them."""
        f = p.f
        u, s = f[11], f[12]
        tick_ns = _NS_PER_TICK
        lo = (u + s) * tick_ns
        if total >= 0 and lo <= total < lo + 2 * tick_ns:
            if u + s == 0:                      # calcru: no ticks -> all system time
                return TimeVal(0, 0), TimeVal.from_ns(total)
            ut = total * u // (u + s)
            return TimeVal.from_ns(ut), TimeVal.from_ns(total - ut)
        return TimeVal.from_ns(u * tick_ns), TimeVal.from_ns(s * tick_ns)

    def jail(self, p: LinuxProc, ino: int) -> str:
        """The hostname of p's UTS namespace ``ino``, one that is not ours (the caller
        checks, once per process of a scan): approximates a jail."""
        now = time.monotonic()
        hit = self._hostnames.get(ino)
        if hit and now - hit[0] < 1.0:
            return hit[1]
        name = self._hostname_in(p.pid) or f"uts:{ino}"
        name = name.replace(" ", "_") or f"uts:{ino}"
        self._hostnames[ino] = (now, name)
        return name

    def _hostname_in(self, pid: int) -> str | None:
        """setns(CLONE_NEWUTS) in a throw-away thread: uname() is per thread, and the
        thread's namespace goes with it, so no other thread is ever affected."""
        out: list[str] = []

        def run() -> None:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                fd = os.open(f"{self.root}/{pid}/ns/uts", _READ)
            except OSError:
                return
            try:
                if libc.setns(fd, 0x04000000) == 0:
                    out.append(os.uname().nodename)
            finally:
                os.close(fd)

        t = threading.Thread(target=run, name="bsdprocfs-uts", daemon=True)
        t.start()
        t.join(2.0)
        return out[0] if out else None

    def status(self, p: LinuxProc, extras: bool = True,
               guarded: tuple[bytes | None, int] | None = None) -> StatusRecord:
        """extras=False skips the ProcExtras extension (the status line never prints it).
        guarded: (wchan, UTS inode) as the caller may read them (/proc/PID/wchan and
        ns/uts are ptrace-guarded on Linux): the credential worker's reading, used
        instead of ours."""
        f = p.f
        ident = p.ident
        c = ident.creds
        pid = p.pid
        tty_nr = f[4]
        state = p.state
        # the leader's pid, or 0 once the leader is gone (FreeBSD clears s_leader)
        sid = f[3]
        total, wchan, uts, leader_alive = facts.status_io(
            self.root, pid, f[17], state != "R" and guarded is None,
            not ident.system and guarded is None, sid, self.by_pid)
        if guarded is not None:
            wchan = guarded[0] if state != "R" else None
            uts = guarded[1] if not ident.system else -1
        if sid != pid and not leader_alive:
            sid = 0
        utime, stime = self.cpu_times(p, total)
        start_us = (self.boot_ns() + ident.start_ticks * _NS_PER_TICK) // 1000
        tracer = p.tracer
        ext = None if not extras else ProcExtras(
            state=_KI_STAT.get(state, state),
            tpgid=f[5], nice=f[16], nthreads=f[17], traced=tracer != 0,
            tracer=self._tgid(tracer) if tracer else 0, rss_pages=f[21], vsz=f[20],
            system=ident.system, locked_pages=p.status_field(b"VmLck") not in (b"", b"0 kB"),
            tty_dev=tty_nr, page_size=PAGE_SIZE, start_ticks=ident.start_ticks,
            exiting=ident.zombie, lastcpu=f[36], priority=f[15])
        # positional, in StatusRecord's field order: keywords cost twice as much here
        return StatusRecord(
            self._full_comm(p) if len(p.comm) == 15 else p.comm[:MAXCOMLEN], pid, f[1],
            f[2], sid, self.tty_name(tty_nr) if tty_nr else None,
            tty_nr != 0, f[3] == pid,
            TimeVal(start_us // 1_000_000, start_us % 1_000_000), utime,
            stime, "nochan" if state == "R" else wmesg_for(
                "0" if wchan is None else wchan.decode("ascii", "replace"), state),
            c.euid, c.ruid, c.rgid, cr_groups(c.egid, c.groups),
            None if uts in (-1, self._own_uts) else self.jail(p, uts), ext)

    def guarded_status(self, pid: int) -> tuple[bytes | None, int]:
        """The ptrace-guarded parts of status, read with this process's credentials
        (the worker's): Linux prints 0 for a wchan we may not see, and refuses ns/uts."""
        _t, wchan, uts, _a = facts.status_io(self.root, pid, 1, True, True, 0, self.by_pid)
        return wchan, uts

    def _tgid(self, tid: int) -> int:
        """TracerPid is a thread id; FreeBSD names processes."""
        try:
            s = _read(f"{self.root}/{tid}/status", 4096)
            m = re.search(rb"\nTgid:\s*(\d+)", s)
            return int(m.group(1)) if m else tid
        except OSError:
            return tid

    # --------------------------------------------------------------- cmdline
    def _cmdline_raw(self, p: LinuxProc) -> bytes:
        if "cmdline" not in p.cache:
            p.cache["cmdline"] = _read_all(f"{self.root}/{p.pid}/cmdline")
        data: bytes = p.cache["cmdline"]
        return data

    def cmdline(self, p: LinuxProc) -> CmdlineRecord:
        if p.ident.system:
            return CmdlineRecord(())
        try:
            raw = self._cmdline_raw(p)
        except ProcessLookupError:
            raise fail(EIO, p.pid, "cmdline", "process exited") from None
        if not raw:
            return CmdlineRecord(())
        # setproctitle() may leave no final NUL; FreeBSD's p_args always has one.
        body = raw[:-1] if raw.endswith(b"\0") else raw
        return CmdlineRecord(tuple(body.split(b"\0")))

    # ---------------------------------------------------------------- rlimit
    def rlimit(self, p: LinuxProc) -> RlimitRecord:
        try:
            text = _read(f"{self.root}/{p.pid}/limits", 8192)
        except OSError:
            raise fail(EIO, p.pid, "rlimit", "limits unreadable") from None
        vals: dict[str, tuple[int, int]] = {}
        for line in text.split(b"\n")[1:]:
            ident = _LIMITS_ROWS.get(line[:26].rstrip())
            if ident:
                vals[ident] = (_lim(line[26:47]), _lim(line[47:68]))
        return RlimitRecord(tuple(
            Rlimit(i, *vals.get(i, (RLIM_INFINITY, RLIM_INFINITY))) for i in RLIMIT_IDENTS))

    # ------------------------------------------------------------------- map
    def _map_source(self, p: LinuxProc, fast: bool) -> bytes:
        name = "maps" if fast else "smaps"
        try:
            return _read_all(f"{self.root}/{p.pid}/{name}")
        except PermissionError:
            raise fail(EPERM, p.pid, "map", f"{name} not readable") from None
        except ProcessLookupError:
            raise fail(EIO, p.pid, "map", "process exited") from None

    def map(self, p: LinuxProc, fast: bool = False) -> MapRecord:
        if p.ident.system:
            return MapRecord(())
        return MapRecord(tuple(MapEntry(*e) for e in facts.map_entries(
            self._map_source(p, fast), p.pid, p.ident.start_ticks, p.ident.creds.ruid,
            PAGE_SIZE, fast)))

    def map_bytes(self, p: LinuxProc, type_names: tuple[bytes, ...],
                  fast: bool = False, anon_flags: int = 0x210) -> bytes | None:
        """The map node's bytes in one compiled pass over smaps: nodes/map.render of
        map()'s record, byte for byte (tests/test_linuxfacts.py), at a fraction of
        the cost (a 2,000-mapping process: one MapEntry and one line per mapping in
        Python cost 3x the kernel's smaps read).  type_names: the profile's name of
        each of MAP_TYPES; anon_flags: its OBJ_* flags of an anonymous object
        (Profile.map_flags).  None where only the pure twin exists: render the record."""
        render = getattr(facts, "map_render", None)
        if render is None or p.ident.system:
            return None
        data = self._map_source(p, fast)
        try:
            out: bytes = render(data, p.pid, p.ident.start_ticks, p.ident.creds.ruid,
                                PAGE_SIZE, fast, type_names, anon_flags)
        except ValueError:          # not the kernel's layout: the reference decides
            return None
        return out

    # --------------------------------------------------------- etype / osrel
    def brand(self, p: LinuxProc) -> elf.ElfBrand:
        if p.ident.system:
            return elf.ElfBrand("null", 0)
        try:
            fd = os.open(f"{self.root}/{p.pid}/exe", _READ)
        except OSError as e:
            raise fail(EIO if e.errno != EACCES else EACCES, p.pid, "etype",
                       f"executable unreadable: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns)
            hit = self._brands.get(key)
            if hit is None:
                try:
                    hit = elf.brand_of(fd)
                except (ValueError, OSError, IndexError):
                    hit = elf.ElfBrand("Not Available", 0)
                self._brands[key] = hit
            return hit
        finally:
            os.close(fd)

    def etype(self, p: LinuxProc) -> EtypeRecord:
        return EtypeRecord(self.brand(p).etype)

    def _exec_id(self, pid: int) -> tuple[int, int, float]:
        """The executed image (dev, inode, mtime): FreeBSD resets p_osrel at exec."""
        try:
            st = os.stat(f"{self.root}/{pid}/exe")
        except OSError:
            return (0, 0, 0.0)
        return (st.st_dev, st.st_ino, st.st_mtime)

    def osrel(self, p: LinuxProc) -> OsrelRecord:
        hit = self._osrel.get((p.pid, p.ident.start_ticks))
        if hit is not None and hit[0] == self._exec_id(p.pid):
            return OsrelRecord(hit[1])
        return OsrelRecord(self.brand(p).osrel)

    def set_osrel(self, p: LinuxProc, value: int) -> None:
        """Linux has no p_osrel: writes live in an overlay keyed by (pid, start) and
        valid for the image they were written for (an exec brings the ELF's own)."""
        with self._lock:
            self._osrel = {k: v for k, v in self._osrel.items()
                           if os.path.exists(f"{self.root}/{k[0]}")}
            self._osrel[(p.pid, p.ident.start_ticks)] = (self._exec_id(p.pid), value)

    # ------------------------------------------------------------------ file
    def binpath(self, p: LinuxProc) -> FileRecord:
        try:
            target = os.readlink(f"{self.root}/{p.pid}/exe")
        except (FileNotFoundError, ProcessLookupError):
            raise fail(EIO, p.pid, "file", "process exited") from None
        except PermissionError:
            raise fail(EACCES, p.pid, "file", "executable link unreadable") from None
        if target.endswith(" (deleted)"):
            raise fail(ENOENT, p.pid, "file", "the executable was deleted")
        return FileRecord(target)

    # ----------------------------------------------------------------- debug
    @property
    def debugger(self) -> Any:
        if self._debugger is None:
            from ..debug import get_debugger
            self._debugger = get_debugger()
        return self._debugger


_NO_CAPS = b"CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
_NO_AMB = b"CapAmb:\t0000000000000000"


def _holds_caps(status: bytes) -> bool:
    """Does /proc/PID/status show any inheritable, permitted, effective or ambient
    capability?  (Two substring tests: this runs on every lookup of a non-root task.)"""
    return _NO_CAPS not in status or (_NO_AMB not in status and b"CapAmb:" in status)


def _lim(field: bytes) -> int:
    v = field.strip()
    if v == b"unlimited" or not v:
        return RLIM_INFINITY
    n = int(v)
    return RLIM_INFINITY if n >= RLIM_INFINITY else n
