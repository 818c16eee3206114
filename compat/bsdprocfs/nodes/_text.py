"""Shared strictness for text nodes: a parse is only accepted if it re-renders
to the very same bytes; the first differing byte names the field."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..errors import ParseError

INT_RE = re.compile(rb"-?(?:0|[1-9][0-9]*)\Z")
UINT_RE = re.compile(rb"(?:0|[1-9][0-9]*)\Z")


def to_int(node: str, field: str, offset: int, tok: bytes, signed: bool = True) -> int:
    if not (INT_RE if signed else UINT_RE).match(tok):
        raise ParseError(node, field, offset, f"expected a decimal integer, got {tok[:40]!r}")
    return int(tok)


def check_canonical(node: str, data: bytes, rendered: bytes,
                    fields: Sequence[tuple[int, str]]) -> None:
    """Raise at the first byte where ``rendered`` departs from ``data``.

    ``fields`` lists (start offset, field name) in ascending order.
    """
    if rendered == data:
        return
    n = min(len(data), len(rendered))
    i = next((k for k in range(n) if data[k] != rendered[k]), n)
    name = fields[0][1] if fields else "?"
    for start, fname in fields:
        if start <= i:
            name = fname
    what = ("unexpected trailing bytes" if i == len(rendered)
            else "input ends early" if i == len(data)
            else f"found {data[i:i+1]!r} where the canonical form has {rendered[i:i+1]!r}")
    raise ParseError(node, name, i, f"not in canonical FreeBSD form: {what}")


def split_lines(node: str, data: bytes, line_field: str = "line") -> list[tuple[int, bytes]]:
    """Lines with their offsets; every line must end in exactly one LF."""
    if data and not data.endswith(b"\n"):
        raise ParseError(node, line_field, len(data), "missing final newline")
    out = []
    pos = 0
    for raw in data.split(b"\n")[:-1] if data else []:
        out.append((pos, raw))
        pos += len(raw) + 1
    return out


def tokens(line: bytes, base: int) -> list[tuple[int, bytes]]:
    """Single-space separated tokens with absolute offsets (empty tokens kept)."""
    out = []
    pos = base
    for tok in line.split(b" "):
        out.append((pos, tok))
        pos += len(tok) + 1
    return out


Renderer = Callable[[object], bytes]
