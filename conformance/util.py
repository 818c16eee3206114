"""Helpers shared by the checks: profile gates, errno assertions, parsers."""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

import pytest

from .matrix import NOT_PROVIDED
from .spec import ProfileSpec


def copy_readable(src: str, dst: str) -> None:
    """Copy a pure-Python package where an unprivileged user can import it (the
    checkout or venv may sit below a directory that user cannot search)."""
    if not os.path.isdir(dst):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for top, _dirs, files in os.walk(dst):
        os.chmod(top, 0o755)
        for f in files:
            os.chmod(os.path.join(top, f), 0o644)


def need_node(prof: ProfileSpec, name: str) -> None:
    ok = (prof.has_self_exe if name == "self" else True if name == "curproc"
          else name in prof.pid_nodes)
    if not ok:
        pytest.skip(f"{NOT_PROVIDED} {prof.name}: no {name} node")


def need_ctl(prof: ProfileSpec) -> None:
    if not prof.has_ctl:
        pytest.skip(f"{NOT_PROVIDED} {prof.name}: no ctl file (removed after 10.x)")


def ename(e: int) -> str:
    return errno.errorcode.get(e, str(e)) if e else "success"


def expect_errno(want: int, fn: Any, *args: Any, **kw: Any) -> Any:
    """Call fn; assert it fails with ``want`` (0: assert it succeeds, return its value)."""
    try:
        v = fn(*args, **kw)
    except OSError as e:
        assert e.errno == want, f"expected {ename(want)}, got {ename(e.errno or 0)}: {e}"
        return None
    assert want == 0, f"expected {ename(want)}, but the call succeeded and returned {v!r:.200}"
    return v


@dataclass
class Status:
    comm: bytes
    pid: int
    ppid: int
    pgid: int
    sid: int
    tty: str
    flags: str
    start: tuple[int, int]
    ut: tuple[int, int]
    st: tuple[int, int]
    wmesg: str
    euid: int
    ruid: int
    rgid: int
    groups: list[int]
    jail: str


_TV = re.compile(rb"(-?\d+),(-?\d+)\Z")
_INT = re.compile(rb"(0|-?[1-9]\d*)\Z")


def _int(tok: bytes, what: str) -> int:
    assert _INT.match(tok), f"status {what}: {tok!r} is not a decimal integer"
    return int(tok)


def _tv(tok: bytes, what: str) -> tuple[int, int]:
    m = _TV.match(tok)
    assert m, f"status {what}: {tok!r} is not <sec>,<usec>"
    sec, usec = int(m.group(1)), int(m.group(2))
    assert (sec, usec) == (-1, -1) or 0 <= usec < 1_000_000, f"{what}: usec {usec} out of range"
    assert not m.group(2).startswith(b"0") or m.group(2) == b"0", f"{what}: usec zero-padded"
    return sec, usec


def parse_status(data: bytes) -> Status:
    """The FreeBSD status grammar (spec section 2), strictly: one line, single spaces."""
    assert data.endswith(b"\n"), f"status lacks its final newline: {data[-40:]!r}"
    line = data[:-1]
    assert b"\n" not in line, "status must be one line"
    t = line.split(b" ")
    assert len(t) >= 15 and all(t[:10]) and all(t[-4:]), f"status fields: {line!r}"
    assert re.fullmatch(rb"(?:[!-\[\]-~]|\\[0-7]{3,11})+", t[0]), f"comm not escaped: {t[0]!r}"
    assert t[6] in (b"ctty", b"sldr", b"ctty,sldr", b"noflags"), f"flags {t[6]!r}"
    creds = t[-2].split(b",")
    wm = b" ".join(t[10:-4])
    assert wm, "empty wmesg"
    return Status(
        comm=t[0], pid=_int(t[1], "pid"), ppid=_int(t[2], "ppid"), pgid=_int(t[3], "pgid"),
        sid=_int(t[4], "sid"), tty=t[5].decode("utf-8", "replace"), flags=t[6].decode(),
        start=_tv(t[7], "start"), ut=_tv(t[8], "utime"), st=_tv(t[9], "stime"),
        wmesg=wm.decode("utf-8", "replace"), euid=_int(t[-4], "euid"),
        ruid=_int(t[-3], "ruid"), rgid=_int(creds[0], "rgid"),
        groups=[_int(g, "groups") for g in creds[1:]], jail=t[-1].decode("utf-8", "replace"))


_HEX = rb"0x(?:0|[1-9a-f][0-9a-f]*)"
#: field 5 is %p: FreeBSD's kernel printf gives a NULL pointer as "0", others as 0x<hex>
MAP_LINE = re.compile(
    rb"(" + _HEX + rb") (" + _HEX + rb") (\d+) (\d+) (0|0x[1-9a-f][0-9a-f]*) ([r-][w-][x-]) "
    rb"(-?\d+) (-?\d+) (" + _HEX + rb") (COW|NCOW) (NC|NNC) ([a-z]+) (.+) (CH|NCH) (-?\d+)\Z")


@dataclass
class MapLine:
    start: int
    end: int
    resident: int
    private: int
    obj: int
    prot: str
    ref_count: int
    flags: int
    cow: bool
    type: str
    path: bytes
    charged: bool
    uid: int


def parse_map(data: bytes) -> list[MapLine]:
    assert not data or data.endswith(b"\n"), "map lacks its final newline"
    out = []
    for ln in data.split(b"\n")[:-1]:
        m = MAP_LINE.match(ln)
        assert m, f"map line does not match the 15-field grammar: {ln!r}"
        g = m.groups()
        out.append(MapLine(int(g[0], 16), int(g[1], 16), int(g[2]), int(g[3]),
                           0 if g[4] == b"0" else int(g[4], 16), g[5].decode(), int(g[6]),
                           int(g[8], 16), g[9] == b"COW", g[11].decode(), g[12],
                           g[13] == b"CH", int(g[14])))
    return out


def elf_osrel(path: bytes | str) -> int:
    """p_osrel at exec from the ELF brand note (spec section 7); 0 without one."""
    import struct
    with open(path, "rb") as f:
        data = f.read(1 << 16)
        if data[:4] != b"\x7fELF":
            return 0
        is64, le = data[4] == 2, data[5] == 1
        e = "<" if le else ">"
        if is64:
            phoff, = struct.unpack_from(e + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
        else:
            phoff, = struct.unpack_from(e + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 0x2A)
        for i in range(phnum):
            off = phoff + i * phentsize
            f.seek(off)
            ph = f.read(phentsize)
            if struct.unpack_from(e + "I", ph, 0)[0] != 4:          # PT_NOTE
                continue
            if is64:
                p_off, = struct.unpack_from(e + "Q", ph, 8)
                p_size, = struct.unpack_from(e + "Q", ph, 32)
            else:
                p_off, p_size = struct.unpack_from(e + "I", ph, 4)[0], struct.unpack_from(
                    e + "I", ph, 16)[0]
            f.seek(p_off)
            notes = f.read(p_size)
            pos = 0
            while pos + 12 <= len(notes):
                namesz, descsz, ntype = struct.unpack_from(e + "III", notes, pos)
                name = notes[pos + 12: pos + 12 + namesz].rstrip(b"\0")
                dpos = pos + 12 + ((namesz + 3) & ~3)
                desc = notes[dpos: dpos + descsz]
                pos = dpos + ((descsz + 3) & ~3)
                if ntype == 1 and name == b"GNU" and descsz == 16:
                    osn, a, b, c = struct.unpack(e + "4I", desc)
                    if osn == 0:
                        return (a << 16) + (b << 8) + c
                if ntype == 1 and name == b"FreeBSD" and descsz == 4:
                    return int(struct.unpack(e + "I", desc)[0])
    return 0


_GETDENTS64 = {"x86_64": 217, "amd64": 217, "aarch64": 61, "arm64": 61, "i386": 220,
               "i686": 220}


def dirents(path: str) -> list[tuple[str, int]] | None:
    """(name, d_fileno) of every entry, "." and ".." included, in readdir order (Linux
    getdents64; None where this host has no known system-call number for it)."""
    import ctypes
    import platform
    import struct
    nr = _GETDENTS64.get(platform.machine().lower())
    if nr is None or os.uname().sysname != "Linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    out: list[tuple[str, int]] = []
    try:
        buf = ctypes.create_string_buffer(1 << 16)
        while True:
            n = libc.syscall(nr, fd, buf, len(buf))
            if n < 0:
                raise OSError(ctypes.get_errno(), "getdents64")
            if n == 0:
                return out
            pos = 0
            while pos < n:
                ino, _off, reclen = struct.unpack_from("=QqH", buf.raw, pos)
                name = buf.raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
                out.append((name.decode("utf-8", "surrogateescape"), ino))
                pos += reclen
    finally:
        os.close(fd)
