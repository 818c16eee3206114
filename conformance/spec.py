"""FreeBSD procfs facts the checks compare against, written from the spec
(/work/shared/spec/freebsd-procfs.md), independently of bsdprocfs's own tables,
so the suite can judge bsdprocfs too.  UNVERIFIED spec points are marked."""

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
    name: str
    has_ctl: bool
    has_self_exe: bool
    nlimits: int
    kvme: bool
    osreldate: tuple[int, int]

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
        return ("curproc", "self") if self.has_self_exe else ("curproc",)

    @property
    def pid_nodes(self) -> tuple[str, ...]:
        return tuple(n.name for n in PID_NODES if n.present(self))


PROFILES = {p.name: p for p in (
    # 10.4 rlimits end at kqueues (UNVERIFIED release of kqueues/umtx).
    ProfileSpec("freebsd-10", True, False, 14, False, (1000000, 1099999)),
    ProfileSpec("freebsd-13", False, False, 15, False, (1300000, 1399999)),
    # self/exe 14.1+, pipebuf 14.2+ (UNVERIFIED boundaries): profile = newest 14.x.
    ProfileSpec("freebsd-14", False, True, 16, True, (1400000, 1499999)),
    ProfileSpec("freebsd-15", False, True, 17, True, (1500000, 1599999)),
    ProfileSpec("compat", True, True, 17, True, (0, 0)),
)}


def profile_for_osreldate(osreldate: int) -> str:
    for p in PROFILES.values():
        if p.osreldate[0] <= osreldate <= p.osreldate[1]:
            return p.name
    return "freebsd-15" if osreldate >= 1600000 else "freebsd-13" if osreldate >= 1100000 \
        else "freebsd-10"


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
    if m in ("x86_64", "amd64"):
        return {"regs": 176, "fpregs": 512, "dbregs": 128}
    if m in ("aarch64", "arm64"):
        return {"regs": 272, "fpregs": 528, "dbregs": 520}   # fpreg 528: UNVERIFIED padding
    if m in ("i386", "i486", "i586", "i686"):
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
