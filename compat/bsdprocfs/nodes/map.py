"""map: one line per vm_map entry (procfs_map.c), 15 fields:

``0x%lx 0x%lx %d %d %p %s%s%s %d %d 0x%x %s %s %s %s %s %d\\n``
start end resident private_resident obj rwx ref_count shadow_count flags
COW|NCOW NC|NNC type path CH|NCH charged_uid.  Paths are not escaped, so a
parser takes 12 fields from the left and 2 from the right.
"""

from __future__ import annotations

import re

from ..errors import ParseError
from ..profiles import Profile, get_profile
from ..records import MapEntry, MapRecord
from ._text import check_canonical, split_lines, to_int

NODE = "map"
_HEX = re.compile(rb"0x(?:0|[1-9a-f][0-9a-f]*)\Z")
_PROT = re.compile(rb"[r-][w-][x-]\Z")
_LEFT = ("start", "end", "resident", "private_resident", "obj", "prot", "ref_count",
         "shadow_count", "flags", "cow", "needs_copy", "type")


def _ptr(v: int) -> bytes:
    return b"0x%x" % v if v else b"0"


def render_entry(e: MapEntry, prof: Profile) -> bytes:
    # cite: map.format
    return b"0x%x 0x%x %d %d %s %s %d %d 0x%x %s %s %s %s %s %d\n" % (
        e.start, e.end, e.resident, e.private_resident, _ptr(e.obj), e.prot.encode(),
        e.ref_count, e.shadow_count, prof.map_flags(e.type, e.flags),
        b"COW" if e.cow else b"NCOW",
        b"NC" if e.needs_copy else b"NNC", prof.map_type_name(e.type).encode(),
        b"-" if e.path is None else e.path, b"CH" if e.charged else b"NCH", e.charged_uid)


_LINE = b"0x%x 0x%x %d %d %s %s %d %d 0x%x %s %s %s %s %s %d\n"


def render(rec: MapRecord, profile: Profile | str | None = None) -> bytes:
    """render_entry for every entry, with the per-entry method calls hoisted out
    (a 2,000-entry map is rendered on every read): the bytes are the same."""
    prof = get_profile(profile)
    kvme = prof.kvme_map_types
    types: dict[str, bytes] = {}
    prots: dict[str, bytes] = {}
    out = []
    for e in rec.entries:
        t = types.get(e.type)
        if t is None:
            t = types[e.type] = prof.map_type_name(e.type).encode()
        pr = prots.get(e.prot)
        if pr is None:
            pr = prots[e.prot] = e.prot.encode()
        out.append(_LINE % (
            e.start, e.end, e.resident, e.private_resident, b"0x%x" % e.obj if e.obj else b"0",
            pr, e.ref_count, e.shadow_count,
            e.flags if kvme else prof.map_flags(e.type, e.flags),
            b"COW" if e.cow else b"NCOW",
            b"NC" if e.needs_copy else b"NNC", t, b"-" if e.path is None else e.path,
            b"CH" if e.charged else b"NCH", e.charged_uid))
    return b"".join(out)


def _hex(field: str, off: int, tok: bytes) -> int:
    if not _HEX.match(tok):
        raise ParseError(NODE, field, off, f"expected lowercase 0x-hex, got {tok[:40]!r}")
    return int(tok, 16)


def parse(data: bytes, profile: Profile | str | None = None) -> MapRecord:
    prof = get_profile(profile)
    entries = []
    fields: list[tuple[int, str]] = []
    for off, line in split_lines(NODE, data):
        toks = []
        pos = off
        for t in line.split(b" "):
            toks.append((pos, t))
            pos += len(t) + 1
        if len(toks) < 15:
            raise ParseError(NODE, _LEFT[min(len(toks), 11)], pos - 1,
                             f"expected 15 fields, found {len(toks)}")
        left, path_toks, right = toks[:12], toks[12:-2], toks[-2:]
        fields += [(o, n) for (o, _), n in zip(left, _LEFT, strict=True)]
        fields += [(path_toks[0][0], "path"), (right[0][0], "charged"),
                   (right[1][0], "charged_uid")]
        start = _hex("start", *left[0])
        end = _hex("end", *left[1])
        if end < start:
            raise ParseError(NODE, "end", left[1][0], "end below start")
        resident = to_int(NODE, "resident", *left[2], signed=False)
        private = to_int(NODE, "private_resident", *left[3], signed=False)
        o, t = left[4]
        obj = 0 if t == b"0" else _hex("obj", o, t)
        o, t = left[5]
        if not _PROT.match(t):
            raise ParseError(NODE, "prot", o, f"expected three of r/w/x or -, got {t[:10]!r}")
        ref = to_int(NODE, "ref_count", *left[6])
        shadow = to_int(NODE, "shadow_count", *left[7])
        flags = _hex("flags", *left[8])
        o, t = left[9]
        if t not in (b"COW", b"NCOW"):
            raise ParseError(NODE, "cow", o, f"expected COW or NCOW, got {t[:10]!r}")
        cow = t == b"COW"
        o, t = left[10]
        if t not in (b"NC", b"NNC"):
            raise ParseError(NODE, "needs_copy", o, f"expected NC or NNC, got {t[:10]!r}")
        nc = t == b"NC"
        o, t = left[11]
        typ = t.decode("ascii", "replace")
        if typ not in prof.map_types:
            raise ParseError(NODE, "type", o, f"{typ!r} is not a {prof.name} map type "
                             f"({', '.join(prof.map_types)})")
        path = b" ".join(t for _, t in path_toks)
        o, t = right[0]
        if t not in (b"CH", b"NCH"):
            raise ParseError(NODE, "charged", o, f"expected CH or NCH, got {t[:10]!r}")
        uid = to_int(NODE, "charged_uid", *right[1])
        entries.append(MapEntry(start, end, resident, private, obj, prot_str(left[5][1]), ref,
                                shadow, flags, cow, nc, typ, None if path == b"-" else path,
                                t == b"CH", uid))
    rec = MapRecord(tuple(entries))
    check_canonical(NODE, data, render(rec, prof), fields)
    return rec


def prot_str(tok: bytes) -> str:
    return tok.decode("ascii")
