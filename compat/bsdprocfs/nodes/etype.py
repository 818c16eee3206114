"""etype: sv_name of the process's sysentvec, e.g. ``Linux ELF64`` (cite: etype.format)."""

from __future__ import annotations

from ..errors import ParseError
from ..profiles import Profile
from ..records import EtypeRecord

NODE = "etype"

#: sv_name strings of upstream sysentvecs (CheriBSD's "FreeBSD ELF64C" excluded).
KNOWN = ("FreeBSD ELF64", "FreeBSD ELF64 V2", "FreeBSD ELF32", "Linux ELF64", "Linux ELF32",
         "null", "FreeBSD a.out", "Not Available")


def render(rec: EtypeRecord, profile: Profile | None = None) -> bytes:
    return rec.name.encode() + b"\n"


def parse(data: bytes, profile: Profile | None = None) -> EtypeRecord:
    if not data.endswith(b"\n"):
        raise ParseError(NODE, "sv_name", len(data), "missing final newline")
    name = data[:-1]
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError as e:
        raise ParseError(NODE, "sv_name", e.start, "non-ASCII byte") from None
    if text not in KNOWN:
        raise ParseError(NODE, "sv_name", 0, f"unknown sysentvec name {text[:40]!r}; "
                         f"known: {', '.join(KNOWN)}")
    return EtypeRecord(text)
