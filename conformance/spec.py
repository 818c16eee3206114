"""FreeBSD procfs facts the checks compare against, written from FreeBSD's source
(each rule names its entry in conformance/citations.toml), independently of
bsdprocfs's own tables, so the suite can judge bsdprocfs too."""

from __future__ import annotations

import errno
import platform
import signal
from dataclasses import dataclass

RLIMIT_IDENTS = ("cpu", "fsize", "data", "stack", "core", "rss", "memlock", "nproc", "nofile",
                 "sbsize", "vmem", "npts", "swap", "kqueues", "umtx", "pipebuf", "vmm")
MAP_TYPES_OBJ = ("default", "vnode", "swap", "device", "none")
MAP_TYPES_KVME = ("vnode", "swap", "phys", "dead", "device", "unknown", "none")


@dataclass(frozen=True)
class ProfileSpec:
    """What one release line does, each field from FreeBSD's source (the ids name
    conformance/citations.toml entries)."""

    name: str
    has_ctl: bool            # cite: nodes.ctl.10, ctl.release.11, nodes.12
    has_self_exe: bool       # cite: nodes.self_exe
    nlimits: int             # cite: rlimit.idents.10, rlimit.idents.12, rlimit.idents.vmm
    kvme: bool               # cite: map.type.objt, map.type.kvme
    osreldate: tuple[int, int]
    has_ioctl: bool = False  # cite: ioctl.node, ioctl.release.11, nodes.13
    #: pfs_add_node inserted at the head through 12.x (cite: pfs.readdir.prepend)
    prepend: bool = False
    #: read(2) of a directory (cite: pfs.read.notreg, vfs.read_dir)
    read_dir_errno: int = errno.EISDIR
    #: the most bytes a non-raw read returns (cite: pfs.read.maxphys, pfs.read.maxbufsiz)
    read_limit: int = (1 << 20) - 1
    #: chmod/chown/utimes: EOPNOTSUPP through 12.x, ignored later (cite: pfs.setattr)
    setattr_errno: int = 0
    #: procfs_ctl.c's own wait on a traced target: sleep while it is stopped, then EBUSY
    #: unless TRACE_WAIT_P (cite: ctl.wait); compat keeps "returns once stopped"
    ctl_source_wait: bool = False

    @property
    def rlimit_idents(self) -> tuple[str, ...]:
        return RLIMIT_IDENTS[: self.nlimits]

    @property
    def map_types(self) -> tuple[str, ...]:
        return MAP_TYPES_KVME if self.kvme else MAP_TYPES_OBJ

    @property
    def anon_type(self) -> str:
        """Type of touched anonymous memory: OBJT_DEFAULT/SWAP naming by era."""
        return "swap" if self.kvme else "default"

    @property
    def root_nodes(self) -> tuple[str, ...]:
        """The root's static nodes in readdir order (without "." and "..")."""
        nodes = ("curproc", "self") if self.has_self_exe else ("curproc",)
        return nodes[::-1] if self.prepend else nodes

    @property
    def pid_nodes(self) -> tuple[str, ...]:
        """A process directory's nodes in readdir order (without "." and "..")."""
        nodes = tuple(n.name for n in PID_NODES if n.present(self))
        return nodes[::-1] if self.prepend else nodes

    def readdir(self, static: tuple[str, ...], pids: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A whole readdir (with "." and ".."): creation order is ".", "..", the static
        nodes, then the procdir (expanded to pids); head insertion reverses it."""
        order = (".", "..", *(n for n in static))
        if self.prepend:
            return (*pids, *order[::-1])
        return (*order, *pids)


_OLD = dict(prepend=True, read_dir_errno=errno.EINVAL, read_limit=128 * 1024,
            setattr_errno=errno.EOPNOTSUPP)

PROFILES = {p.name: p for p in (
    ProfileSpec("freebsd-10", True, False, 13, False, (1000000, 1099999), True,
                ctl_source_wait=True, **_OLD),  # type: ignore[arg-type]
    ProfileSpec("freebsd-11", True, False, 15, False, (1100000, 1199999), True,
                ctl_source_wait=True, **_OLD),  # type: ignore[arg-type]
    ProfileSpec("freebsd-12", False, False, 15, False, (1200000, 1299999), True,
                **_OLD),  # type: ignore[arg-type]
    ProfileSpec("freebsd-13", False, False, 15, False, (1300000, 1399999)),
    # self/exe 14.1+, pipebuf 14.2+: the profile is the newest 14.x.
    ProfileSpec("freebsd-14", False, True, 16, True, (1400000, 1499999)),
    ProfileSpec("freebsd-15", False, True, 17, True, (1500000, 1599999)),
    ProfileSpec("compat", True, True, 17, True, (0, 0), True),
)}


def profile_for_osreldate(osreldate: int) -> str:
    for p in PROFILES.values():
        if p.osreldate[0] <= osreldate <= p.osreldate[1]:
            return p.name
    return "freebsd-15" if osreldate >= 1600000 else "freebsd-10"


def osrel_write(data: bytes) -> int | None:
    """procfs_doosrel's write loop over a C int (cite: osrel.write): the value stored,
    or None for EINVAL.  The overflow test is ``ov < osrel`` after a wrapping
    multiply, so some overflowing inputs are accepted with the wrapped value."""
    text = data.rstrip(b" \t\n\v\f\r")
    osrel = 0
    for c in text:
        if not 0x30 <= c <= 0x39:
            return None
        ov = (osrel * 10 + c - 0x30) & 0xFFFFFFFF
        ov = ov - (1 << 32) if ov >= 1 << 31 else ov
        if ov < osrel:
            return None
        osrel = ov
    return osrel


# ------------------------------------------------------------------ mem ioctls
#: sys/pioctl.h (cite: ioctl.numbers): number -> (name, bytes handed back); the _IOWINT
#: requests (1, 2, 3, 5) take an int by value.
PIOC = {1: ("PIOCBIS", 0), 2: ("PIOCBIC", 0), 3: ("PIOCSFL", 0), 4: ("PIOCWAIT", 32),
        5: ("PIOCCONT", 0), 6: ("PIOCSTATUS", 32), 7: ("PIOCGFL", 4)}
#: struct procfs_status on LP64: int, int, u_long, int (+pad), u_long (cite: ioctl.status)
PROCFS_STATUS_FMT = "=iiQi4xQ"
S_EXEC, S_SIG, S_SCE, S_SCX, S_EXIT = 0x01, 0x02, 0x04, 0x08, 0x20   # cite: ioctl.events
PF_LINGER, PF_ISUGID = 0x01, 0x02                                     # cite: ioctl.flags


def pioc_request(n: int, freebsd: bool) -> int:
    """pioctl.h's request n encoded by FreeBSD's sys/ioccom.h (IOC_VOID 0x20000000 with
    sizeof(int) for _IOWINT, IOC_OUT 0x40000000 for _IOR) or by Linux's
    <asm-generic/ioctl.h> (_IO, and _IOR with direction bit 31)."""
    out = PIOC[n][1]
    if freebsd:
        return (0x40000000 | out << 16 if out else 0x20000000 | 4 << 16) | ord("p") << 8 | n
    return (2 << 30 | out << 16 if out else 0) | ord("p") << 8 | n


#: OBJ_* bits (cite: map.flags.objt, map.flags.kvme)
OBJ_NOSPLIT_OBJT, OBJ_TMPFS_NODE_OBJT, OBJ_ONEMAPPING_OBJT = 0x10, 0x200, 0x2000
OBJ_ANON, OBJ_SWAP = 0x10, 0x200


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str            # "file" or "link"
    mode: int
    attr: bool           # has an attr callback: P_SUGID target -> mode 0
    vis: str | None      # None, "notsystem", "candebug"
    rd: bool
    wr: bool

    def present(self, prof: ProfileSpec) -> bool:
        if self.name == "ctl":
            return prof.has_ctl
        if self.name == "exe":
            return prof.has_self_exe
        return True


PID_NODES = (
    NodeSpec("cmdline", "file", 0o444, False, None, True, False),
    NodeSpec("ctl", "file", 0o200, True, None, False, True),
    NodeSpec("dbregs", "file", 0o600, True, "candebug", True, True),
    NodeSpec("etype", "file", 0o444, False, None, True, False),
    NodeSpec("fpregs", "file", 0o600, True, "candebug", True, True),
    NodeSpec("map", "file", 0o444, False, "notsystem", True, False),
    NodeSpec("mem", "file", 0o600, True, "candebug", True, True),
    NodeSpec("note", "file", 0o200, True, "candebug", False, True),
    NodeSpec("notepg", "file", 0o200, True, "candebug", False, True),
    NodeSpec("regs", "file", 0o600, True, "candebug", True, True),
    NodeSpec("rlimit", "file", 0o444, False, None, True, False),
    NodeSpec("status", "file", 0o444, False, None, True, False),
    NodeSpec("osrel", "file", 0o600, True, "candebug", True, True),
    NodeSpec("file", "link", 0o444, False, "notsystem", False, False),
    NodeSpec("exe", "link", 0o444, False, "notsystem", False, False),
)
NODE = {n.name: n for n in PID_NODES}
ALL_NODE_NAMES = tuple(n.name for n in PID_NODES)

CTL_WORDS = ("attach", "detach", "step", "run", "wait")
#: procfs_ctl.c signal names, in table order (31).
SIGNAL_NAMES = ("hup", "int", "quit", "ill", "trap", "abrt", "iot", "emt", "fpe", "kill", "bus",
                "segv", "sys", "pipe", "alrm", "term", "urg", "stop", "tstp", "cont", "chld",
                "ttin", "ttou", "io", "xcpu", "xfsz", "vtalrm", "prof", "winch", "info", "usr1",
                "usr2")


def host_signal(name: str) -> int | None:
    """The host's number for a FreeBSD signal name (None: no such signal here)."""
    alias = {"iot": "SIGABRT", "io": "SIGIO"}.get(name, "SIG" + name.upper())
    sig = getattr(signal, alias, None)
    return int(sig) if sig is not None else None


def regset_sizes(machine: str | None = None) -> dict[str, int]:
    m = (machine or platform.machine()).lower()
    if m in ("x86_64", "amd64"):     # cite: reg.amd64, fpreg.amd64, dbreg.amd64
        return {"regs": 176, "fpregs": 512, "dbregs": 128}
    if m in ("aarch64", "arm64"):
        # fpreg 528: UNVERIFIED (missing: an arm64 reg.h read or compiler run)
        return {"regs": 272, "fpregs": 528, "dbregs": 520}
    if m in ("i386", "i486", "i586", "i686"):   # cite: reg.i386
        return {"regs": 76, "fpregs": 176, "dbregs": 32}
    return {}


def machine_arch(machine: str | None = None) -> str:
    m = (machine or platform.machine()).lower()
    return {"x86_64": "amd64", "arm64": "aarch64", "i486": "i386", "i586": "i386",
            "i686": "i386"}.get(m, m)


#: struct reg of a process blocked in read(fd, buf, n): (register width, {argument:
#: byte offset of the register holding it}).  amd64 r_rdi/r_rsi/r_rdx (the syscall
#: argument registers, which the kernel does not clobber); i386 r_ebx/r_ecx/r_edx
#: (Linux's int 0x80 convention: a shim on Linux shows them; FreeBSD i386 passes
#: arguments on the stack, so native i386 holds no argument in registers: not judged
#: there); aarch64 x1/x2 (x0 carries the return value once the call was interrupted).
READ_ARG_REGS: dict[str, tuple[int, dict[str, int]]] = {
    "amd64": (8, {"fd": 64, "buf": 72, "n": 96}),
    "i386": (4, {"fd": 28, "buf": 36, "n": 32}),
    "aarch64": (8, {"buf": 8, "n": 16}),
}


#: amd64 struct reg offsets used by the write round trip (r_r11 is clobbered by syscall).
AMD64_R11 = 32
SIGNED_CHAR = platform.machine().lower() in ("x86_64", "amd64", "i386", "i486", "i586", "i686")


def escape_comm(comm: bytes, signed_char: bool = SIGNED_CHAR) -> bytes:
    """procfs_status.c: bytes < 33, > 126 and '\\' as "\\%03o" of a plain char."""
    out = b""
    for c in comm or b"\0":
        if c < 33 or c > 126 or c == 0x5C:
            v = (c - 256) & 0xFFFFFFFF if signed_char and c >= 0x80 else c
            out += b"\\%03o" % v
        else:
            out += bytes([c])
    return out


ERRNO_NAMES = {v: k for k, v in errno.errorcode.items()}
EOPNOTSUPP = errno.EOPNOTSUPP
EOF = object()
