"""FreeBSD's <machine/reg.h> structs (reg, fpreg, dbreg) per architecture.

A layout is data: an ordered list of (field, struct code, count).  A count > 1
is a C array (a list of ints in the record); an ``Ns`` code is a byte array.
The node modules (nodes/regs.py, fpregs.py, dbregs.py) render and parse a
:class:`RegSet` with these; the debugger fills a RegSet from the host's
registers.  Layouts are from the spec (freebsd-procfs.md section 10).
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass, field
from typing import Any

Fields = tuple[tuple[str, str, int], ...]


def _arr(name: str, code: str, n: int) -> tuple[str, str, int]:
    return (name, code, n)


AMD64: dict[str, Fields] = {
    "regs": tuple((f"r_{n}", "Q", 1) for n in (
        "r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rdi", "rsi", "rbp", "rbx",
        "rdx", "rcx", "rax")) + (
        ("r_trapno", "I", 1), ("r_fs", "H", 1), ("r_gs", "H", 1), ("r_err", "I", 1),
        ("r_es", "H", 1), ("r_ds", "H", 1)) + tuple(
        (f"r_{n}", "Q", 1) for n in ("rip", "cs", "rflags", "rsp", "ss")),
    "fpregs": (_arr("fpr_env", "Q", 4), ("fpr_acc", "128s", 1), ("fpr_xacc", "256s", 1),
               _arr("fpr_spare", "Q", 12)),
    "dbregs": (_arr("dr", "Q", 16),),
}

I386: dict[str, Fields] = {
    "regs": tuple((f"r_{n}", "I", 1) for n in (
        "fs", "es", "ds", "edi", "esi", "ebp", "isp", "ebx", "edx", "ecx", "eax", "trapno",
        "err", "eip", "cs", "eflags", "esp", "ss", "gs")),
    "fpregs": (_arr("fpr_env", "I", 7), ("fpr_acc", "80s", 1), ("fpr_ex_sw", "I", 1),
               ("fpr_pad", "64s", 1)),
    "dbregs": (_arr("dr", "I", 8),),
}

# arm64: fpreg is 528 bytes because __uint128_t aligns the struct to 16 (computed in
# the spec, UNVERIFIED by a compiler): the 8 trailing bytes are padding.
AARCH64: dict[str, Fields] = {
    "regs": (_arr("x", "Q", 30), ("lr", "Q", 1), ("sp", "Q", 1), ("elr", "Q", 1),
             ("spsr", "Q", 1)),
    "fpregs": (("fp_q", "512s", 1), ("fp_sr", "I", 1), ("fp_cr", "I", 1), ("_pad", "8s", 1)),
    "dbregs": (("db_debug_ver", "B", 1), ("db_nbkpts", "B", 1), ("db_nwtpts", "B", 1),
               ("db_pad", "5s", 1),
               *((f"db_breakregs[{i}].{f}", c, 1) for i in range(16)
                 for f, c in (("dbr_addr", "Q"), ("dbr_ctrl", "I"), ("dbr_pad", "I"))),
               *((f"db_watchregs[{i}].{f}", c, 1) for i in range(16)
                 for f, c in (("dbw_addr", "Q"), ("dbw_ctrl", "I"), ("dbw_pad", "I"))),
               ),
}

ARCHES: dict[str, dict[str, Fields]] = {"amd64": AMD64, "i386": I386, "aarch64": AARCH64}

#: sizeof of every struct, as the spec states them (checked by tests).
SIZES = {("amd64", "regs"): 176, ("amd64", "fpregs"): 512, ("amd64", "dbregs"): 128,
         ("i386", "regs"): 76, ("i386", "fpregs"): 176, ("i386", "dbregs"): 32,
         ("aarch64", "regs"): 272, ("aarch64", "fpregs"): 528, ("aarch64", "dbregs"): 520}


def host_arch() -> str:
    """FreeBSD's MACHINE_ARCH name for this process (amd64, i386 or aarch64). A 32-bit
    Python on a 64-bit kernel (Debian 13's i386 userland on its amd64 kernel) is i386:
    ptrace answers it with the 32-bit structs."""
    m = platform.machine().lower()
    if m in ("x86_64", "amd64"):
        return "i386" if struct.calcsize("P") == 4 else "amd64"
    if m in ("aarch64", "arm64"):
        return "aarch64"
    if m in ("i386", "i486", "i586", "i686", "x86"):
        return "i386"
    return m


@dataclass(frozen=True)
class RegSet:
    """One FreeBSD register struct as named values (arrays as lists, bytes as bytes)."""

    arch: str
    kind: str                        # "regs", "fpregs" or "dbregs"
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def replace(self, **changes: Any) -> RegSet:
        return RegSet(self.arch, self.kind, {**self.values, **changes})

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: byte arrays as lower-case hex strings."""
        return {"arch": self.arch, "struct": STRUCT_NAMES[self.kind],
                **{k: (v.hex() if isinstance(v, bytes) else v)
                   for k, v in self.values.items() if not k.startswith("_")}}


STRUCT_NAMES = {"regs": "reg", "fpregs": "fpreg", "dbregs": "dbreg"}


def fields(arch: str, kind: str) -> Fields:
    try:
        return ARCHES[arch][kind]
    except KeyError:
        raise ValueError(f"no FreeBSD struct {kind} layout for architecture {arch!r}") from None


def codec(arch: str, kind: str) -> struct.Struct:
    fmt = "<" + "".join(f"{n}{c}" if n > 1 else c for _, c, n in fields(arch, kind))
    return struct.Struct(fmt)


def zero(arch: str, kind: str) -> RegSet:
    return unpack(arch, kind, bytes(codec(arch, kind).size))


def pack(rs: RegSet) -> bytes:
    flat: list[Any] = []
    for name, _code, n in fields(rs.arch, rs.kind):
        v = rs.values[name]
        if n > 1:
            if len(v) != n:
                raise ValueError(f"{rs.kind}.{name}: expected {n} values, got {len(v)}")
            flat.extend(v)
        else:
            flat.append(v)
    return codec(rs.arch, rs.kind).pack(*flat)


def unpack(arch: str, kind: str, data: bytes) -> RegSet:
    c = codec(arch, kind)
    if len(data) != c.size:
        raise ValueError(f"struct {STRUCT_NAMES[kind]} ({arch}) is {c.size} bytes, got "
                         f"{len(data)}")
    flat = list(c.unpack(data))
    values: dict[str, Any] = {}
    i = 0
    for name, _code, n in fields(arch, kind):
        values[name] = flat[i:i + n] if n > 1 else flat[i]
        i += n
    return RegSet(arch, kind, values)


def offset_of(arch: str, kind: str, name: str) -> int:
    """Byte offset of a field (the index into an array field is not accepted)."""
    fmt = "<"
    for fname, code, n in fields(arch, kind):
        if fname == name:
            return struct.calcsize(fmt)
        fmt += f"{n}{code}" if n > 1 else code
    raise KeyError(name)


def parse_struct(node: str, data: bytes, arch: str | None = None) -> RegSet:
    """The node-level parse: exactly sizeof bytes, else a ParseError naming the offset."""
    from ..errors import ParseError
    a = arch or host_arch()
    size = codec(a, node).size
    if len(data) != size:
        raise ParseError(node, STRUCT_NAMES[node], min(len(data), size),
                         f"struct {STRUCT_NAMES[node]} ({a}) is {size} bytes, got {len(data)}")
    return unpack(a, node, data)


def overlay(cur: RegSet, data: bytes) -> tuple[RegSet, int]:
    """FreeBSD's raw regset write: the user bytes replace the first min(len, sizeof)
    bytes of the current struct; returns the new struct and the bytes consumed."""
    buf = bytearray(pack(cur))
    n = min(len(data), len(buf))
    buf[:n] = data[:n]
    return unpack(cur.arch, cur.kind, bytes(buf)), n
