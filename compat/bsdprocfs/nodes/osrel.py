"""osrel: read ``%d\\n`` of p_osrel; write grammar of procfs_doosrel."""

from __future__ import annotations

from ..errors import EINVAL, ParseError, fail
from ..profiles import Profile
from ..records import OsrelRecord
from ._text import check_canonical, to_int

NODE = "osrel"
INT_MAX = 2**31 - 1
_SPACE = b" \t\n\v\f\r"


def render(rec: OsrelRecord, profile: Profile | None = None) -> bytes:
    return b"%d\n" % rec.osrel          # cite: osrel.read


def parse(data: bytes, profile: Profile | None = None) -> OsrelRecord:
    if not data.endswith(b"\n"):
        raise ParseError(NODE, "osrel", len(data), "missing final newline")
    v = to_int(NODE, "osrel", 0, data[:-1])
    if not -(2**31) <= v <= INT_MAX:
        raise ParseError(NODE, "osrel", 0, f"{v} does not fit a signed int")
    rec = OsrelRecord(v)
    check_canonical(NODE, data, render(rec), [(0, "osrel")])
    return rec


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def parse_write(data: bytes, pid: object = None) -> int:
    """The value a write(2) stores: sbuf_trim (trailing isspace()), then procfs_doosrel's
    loop over int: ``ov = osrel * 10 + *pp++ - '0'; if (ov < osrel) return (EINVAL)``
    (cite: osrel.write).  The int wraps, so some overflowing inputs pass the check and
    store the wrapped value (``4772185890`` stores 477218594); empty stores 0."""
    text = data.rstrip(_SPACE)
    osrel = 0
    for i, c in enumerate(text):
        if not 0x30 <= c <= 0x39:
            raise fail(EINVAL, pid, NODE, f"byte {i} ({bytes([c])!r}) is not a decimal digit")
        ov = _int32(osrel * 10 + (c - 0x30))
        if ov < osrel:
            raise fail(EINVAL, pid, NODE, "the value decreased: signed overflow")
        osrel = ov
    return osrel
