"""status: one line, procfs_status.c.

``<comm> <pid> <ppid> <pgid> <sid> <tty> <flags> <s>,<us> <s>,<us> <s>,<us>
<wmesg> <euid> <ruid> <rgid>{,<gid>}* <jail>\\n``
"""

from __future__ import annotations

import os
import re

from ..errors import ParseError
from ..profiles import Profile
from ..records import StatusRecord, TimeVal
from ._text import check_canonical, to_int

NODE = "status"

#: `*pc` is a plain char: signed on x86 (bytes >= 0x80 print as 32-bit %o).  uname(2)
#: rather than platform.machine(): the same string, without importing platform.
SIGNED_CHAR = os.uname().machine.lower() in {"x86_64", "amd64", "i386", "i486", "i586", "i686"}

_OCT = re.compile(rb"[0-7]{3}")
_OCT_SIGNED = re.compile(rb"37777777[67][0-7]{2}")


#: bytes procfs_status.c prints as they are (33..126 except backslash).
_PLAIN = bytes(c for c in range(33, 127) if c != 0x5C)


def escape_comm(comm: bytes, signed_char: bool = SIGNED_CHAR) -> bytes:
    """Octal-escape like the do/while loop in procfs_status.c (empty -> \\000;
    cite: status.comm)."""
    if comm and not comm.translate(None, _PLAIN):
        return comm                      # nothing to escape (the common case), C speed
    out = bytearray()
    for c in comm or b"\0":
        if c < 33 or c > 126 or c == 0x5C:
            v = (c - 256) & 0xFFFFFFFF if (signed_char and c >= 0x80) else c
            out += b"\\%03o" % v
        else:
            out.append(c)
    return bytes(out)


def unescape_comm(tok: bytes, base: int = 0, signed_char: bool = SIGNED_CHAR) -> bytes:
    out = bytearray()
    i = 0
    while i < len(tok):
        c = tok[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        m = _OCT_SIGNED.match(tok, i + 1) if signed_char else None
        if m:
            out.append(int(m.group(), 8) & 0xFF)
            i = m.end()
            continue
        m = _OCT.match(tok, i + 1)
        if not m or int(m.group(), 8) > 0o377:
            raise ParseError(NODE, "comm", base + i, "backslash not followed by an octal escape")
        out.append(int(m.group(), 8))
        i = m.end()
    if out == b"\0":
        return b""
    return bytes(out)


def _tv(t: TimeVal) -> bytes:
    return b"%d,%d" % (t.sec, t.usec)


_FLAGS = {(False, False): b"noflags", (True, False): b"ctty", (False, True): b"sldr",
          (True, True): b"ctty,sldr"}


def render(rec: StatusRecord, profile: Profile | None = None, *,
           signed_char: bool = SIGNED_CHAR) -> bytes:
    # One %-format for the whole line: this runs once per process in a full scan.
    # cite: status.ids, status.tty, status.flags, status.times, status.wmesg,
    # status.creds, status.groups, status.jail
    start, ut, st = rec.start, rec.utime, rec.stime
    if start is not None:
        times = b"%d,%d %d,%d %d,%d" % (start.sec, start.usec, ut.sec, ut.usec, st.sec, st.usec)
    else:
        times = b"-1,-1 -1,-1 -1,-1"
    groups = tuple(rec.groups)
    tty, jail = rec.tty, rec.jail
    return b"%s %d %d %d %d %s %s %s %s %d %d %d%s %s\n" % (
        escape_comm(rec.comm, signed_char), rec.pid, rec.ppid, rec.pgid, rec.sid,
        _b(tty) if tty else b"-", _FLAGS[rec.ctty, rec.sldr], times, _b(rec.wmesg),
        rec.euid, rec.ruid, rec.rgid, b",%d" * len(groups) % groups,
        _b(jail) if jail else b"-")


def _b(s: str) -> bytes:
    try:
        return s.encode()        # strict UTF-8 is the C fast path (measured 4x faster)
    except UnicodeEncodeError:   # lone surrogates: bytes that came from the system
        return s.encode("utf-8", "surrogateescape")


_FIELDS_LEFT = ("comm", "pid", "ppid", "pgid", "sid", "tty", "flags", "start", "utime", "stime")


def _timeval(field: str, off: int, tok: bytes) -> tuple[int, int]:
    a, sep, b = tok.partition(b",")
    if not sep:
        raise ParseError(NODE, field, off, f"expected <sec>,<usec>, got {tok[:40]!r}")
    sec = to_int(NODE, field, off, a)
    usec = to_int(NODE, field, off + len(a) + 1, b)
    if not (-1 <= usec < 1_000_000):
        raise ParseError(NODE, field, off + len(a) + 1, f"microseconds out of range: {usec}")
    return sec, usec


def parse(data: bytes, profile: Profile | None = None, *,
          signed_char: bool = SIGNED_CHAR) -> StatusRecord:
    if not data.endswith(b"\n"):
        raise ParseError(NODE, "line", len(data), "missing final newline")
    line = data[:-1]
    if b"\n" in line:
        raise ParseError(NODE, "line", line.index(b"\n"), "status is a single line")
    toks = []
    pos = 0
    for t in line.split(b" "):
        toks.append((pos, t))
        pos += len(t) + 1
    if len(toks) < 15:
        raise ParseError(NODE, _FIELDS_LEFT[min(len(toks), 9)] if len(toks) < 10 else "wmesg",
                         len(line), f"expected at least 15 fields, found {len(toks)}")
    left, right = toks[:10], toks[-4:]
    wm_toks = toks[10:-4]
    fields = [(off, name) for (off, _), name in zip(left, _FIELDS_LEFT, strict=True)]
    fields += [(wm_toks[0][0], "wmesg")] + [
        (off, name) for (off, _), name in zip(right, ("euid", "ruid", "groups", "jail"),
                                               strict=True)]
    (o, comm_t) = left[0]
    comm = unescape_comm(comm_t, o, signed_char)
    pid, ppid, pgid, sid = (to_int(NODE, n, off, t) for (off, t), n in
                            zip(left[1:5], _FIELDS_LEFT[1:5], strict=True))
    o, tty_t = left[5]
    o, fl = left[6]
    if fl not in (b"ctty", b"sldr", b"ctty,sldr", b"noflags"):
        raise ParseError(NODE, "flags", o, f"expected ctty, sldr, ctty,sldr or noflags, got {fl!r}")
    tvs = [_timeval(n, off, t) for (off, t), n in
           zip(left[7:10], ("start", "utime", "stime"), strict=True)]
    if all(tv == (-1, -1) for tv in tvs):
        start = None
        utime = stime = TimeVal(-1, -1)
    else:
        start = TimeVal(*tvs[0])
        utime, stime = TimeVal(*tvs[1]), TimeVal(*tvs[2])
    wmesg = b" ".join(t for _, t in wm_toks)
    if not wmesg:
        raise ParseError(NODE, "wmesg", wm_toks[0][0], "empty wait message")
    euid = to_int(NODE, "euid", right[0][0], right[0][1])
    ruid = to_int(NODE, "ruid", right[1][0], right[1][1])
    o, g = right[2]
    parts = g.split(b",")
    rgid = to_int(NODE, "rgid", o, parts[0])
    groups = []
    p = o + len(parts[0]) + 1
    for part in parts[1:]:
        groups.append(to_int(NODE, "groups", p, part))
        p += len(part) + 1
    o, jail_t = right[3]
    if not jail_t:
        raise ParseError(NODE, "jail", o, "empty jail field")
    rec = StatusRecord(
        comm=comm, pid=pid, ppid=ppid, pgid=pgid, sid=sid,
        tty=None if tty_t == b"-" else tty_t.decode("utf-8", "surrogateescape"),
        ctty=b"ctty" in fl, sldr=b"sldr" in fl, start=start, utime=utime, stime=stime,
        wmesg=wmesg.decode("utf-8", "surrogateescape"), euid=euid, ruid=ruid, rgid=rgid,
        groups=tuple(groups), jail=None if jail_t == b"-" else jail_t.decode(
            "utf-8", "surrogateescape"))
    check_canonical(NODE, data, render(rec, profile, signed_char=signed_char), fields)
    return rec
