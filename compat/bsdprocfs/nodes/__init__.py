"""One module per procfs node, each with a pure ``render`` and ``parse``.

``render(record, profile) -> bytes`` is what FreeBSD's fill function prints;
``parse(data, profile) -> record`` is its strict inverse: anything render
would not have produced raises :class:`bsdprocfs.errors.ParseError` naming the
field and byte offset, so ``render(parse(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: node name -> module name, for nodes that have a byte format.
FORMATS = {
    "status": "status", "cmdline": "cmdline", "rlimit": "rlimit", "map": "map",
    "etype": "etype", "osrel": "osrel", "file": "file", "exe": "file",
    "regs": "regs", "fpregs": "fpregs", "dbregs": "dbregs", "ctl": "ctl",
}


def module_for(node: str) -> ModuleType:
    try:
        name = FORMATS[node]
    except KeyError:
        raise ValueError(f"node {node!r} has no parseable format; "
                         f"known: {', '.join(sorted(FORMATS))}") from None
    return importlib.import_module(f"{__name__}.{name}")
