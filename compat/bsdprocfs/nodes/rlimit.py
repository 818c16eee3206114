"""rlimit: ``<ident> <cur> <max>\\n`` for each RLIMIT_*, -1 for infinity
(cite: rlimit.format)."""

from __future__ import annotations

from ..errors import ParseError
from ..profiles import Profile, get_profile
from ..records import RLIM_INFINITY, Rlimit, RlimitRecord
from ._text import check_canonical, split_lines, to_int

NODE = "rlimit"


def _val(v: int) -> bytes:
    return b"-1" if v >= RLIM_INFINITY or v < 0 else b"%d" % v


def render(rec: RlimitRecord, profile: Profile | str | None = None) -> bytes:
    prof = get_profile(profile)
    idents = prof.rlimit_idents
    if len(rec.limits) < len(idents):
        raise ValueError(f"rlimit record has {len(rec.limits)} limits, "
                         f"profile {prof.name} prints {len(idents)}")
    out = []
    for want, lim in zip(idents, rec.limits, strict=False):
        if lim.ident != want:
            raise ValueError(f"rlimit record out of order: {lim.ident!r} where {want!r} belongs")
        out.append(b"%s %s %s\n" % (want.encode(), _val(lim.cur), _val(lim.max)))
    return b"".join(out)


def parse(data: bytes, profile: Profile | str | None = None) -> RlimitRecord:
    prof = get_profile(profile)
    idents = prof.rlimit_idents
    lines = split_lines(NODE, data)
    limits = []
    fields: list[tuple[int, str]] = []
    for i, (off, line) in enumerate(lines):
        parts = line.split(b" ")
        if i >= len(idents):
            raise ParseError(NODE, "line", off,
                             f"profile {prof.name} has {len(idents)} limits, found more")
        want = idents[i]
        if len(parts) != 3:
            raise ParseError(NODE, want, off, f"expected '<ident> <cur> <max>', got {line[:60]!r}")
        if parts[0] != want.encode():
            raise ParseError(NODE, "ident", off, f"expected {want!r}, got {parts[0][:30]!r}")
        o_cur = off + len(parts[0]) + 1
        o_max = o_cur + len(parts[1]) + 1
        cur = to_int(NODE, f"{want}.cur", o_cur, parts[1])
        mx = to_int(NODE, f"{want}.max", o_max, parts[2])
        for o, v, fname in ((o_cur, cur, "cur"), (o_max, mx, "max")):
            if v < -1 or v >= RLIM_INFINITY:
                raise ParseError(NODE, f"{want}.{fname}", o, f"value out of range: {v}")
        limits.append(Rlimit(want, RLIM_INFINITY if cur == -1 else cur,
                             RLIM_INFINITY if mx == -1 else mx))
        fields += [(off, "ident"), (o_cur, f"{want}.cur"), (o_max, f"{want}.max")]
    if len(limits) != len(idents):
        raise ParseError(NODE, "line", len(data),
                         f"profile {prof.name} has {len(idents)} limits, found {len(limits)}")
    rec = RlimitRecord(tuple(limits))
    check_canonical(NODE, data, render(rec, prof), fields)
    return rec
