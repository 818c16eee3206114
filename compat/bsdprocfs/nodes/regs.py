"""regs: ``struct reg``: the general registers of the first thread (raw node;
cite: reg.amd64, reg.i386).

The struct layout, the read-whole-at-offset-0 rule and the write overlay are shared
with the other register nodes (nodes/_regset.py).
"""

from __future__ import annotations

from ._regset import merge_write, parser, render

NODE = "regs"
parse = parser(NODE)

__all__ = ["NODE", "merge_write", "parse", "render"]
