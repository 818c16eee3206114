"""Tables for the terminal (wrapped to its width) and as Markdown (for files).

Plain text only, no library: importing this costs nothing measurable, and the
output reads the same on any terminal, in a log or through ``less``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

GAP = "  "


def _fit(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Column widths summing to at most ``room``: every column keeps its floor (its
    longest word, so words do not break), and the room left is shared in proportion
    to what each column would still like to have."""
    if sum(natural) <= room:
        return natural
    left = room - sum(floors)
    if left <= 0:
        return floors
    want = [n - f for n, f in zip(natural, floors, strict=True)]
    total = sum(want)
    widths = [f + left * w // total for f, w in zip(floors, want, strict=True)]
    spare = room - sum(widths)
    for i in sorted(range(len(widths)), key=lambda i: -want[i]):     # hand out the rest
        if spare <= 0:
            break
        if widths[i] < natural[i]:
            widths[i] += 1
            spare -= 1
    return widths


def _wrap(cell: str, width: int) -> list[str]:
    out: list[str] = []
    for para in cell.split("\n"):
        out += textwrap.wrap(para, width, break_long_words=True, break_on_hyphens=False) or [""]
    return out


def text(head: Sequence[str], rows: Sequence[Sequence[str]], width: int = 80,
         floor: int = 6) -> str:
    """Rows laid out in ``width`` columns: cells too wide wrap inside their column;
    when any row wraps, rows are separated by a blank line so each stays readable."""
    cols = len(head)
    grid = [list(map(str, head))] + [[str(c) for c in r] for r in rows]
    natural = [max(max((len(ln) for ln in r[i].split("\n")), default=0) for r in grid) or 1
               for i in range(cols)]
    # no word breaks (unless one word is wider than `floor`... and the terminal)
    floors = [min(natural[i], max([min(len(w), max(floor, 1)) for r in grid
                                   for w in r[i].split()] or [1]))
              for i in range(cols)]
    widths = _fit(natural, floors, width - len(GAP) * (cols - 1))
    wrapped = [[_wrap(c, w) for c, w in zip(r, widths, strict=True)] for r in grid]
    tall = any(len(c) > 1 for r in wrapped[1:] for c in r)
    out: list[str] = []
    for n, r in enumerate(wrapped):
        if n == 1:
            out.append(GAP.join("-" * w for w in widths))
        elif n > 1 and tall:
            out.append("")
        for k in range(max(len(c) for c in r)):
            line = GAP.join((c[k] if k < len(c) else "").ljust(w)
                            for c, w in zip(r, widths, strict=True))
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table ('|' inside a cell escaped)."""
    def cell(c: object) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def paragraph(s: str, width: int = 80, indent: str = "") -> str:
    """One note wrapped to ``width``, continuation lines indented under its text."""
    return "\n".join(textwrap.wrap(s, width, initial_indent=indent,
                                   subsequent_indent=indent + "  ", break_long_words=False,
                                   break_on_hyphens=False)) + "\n"
