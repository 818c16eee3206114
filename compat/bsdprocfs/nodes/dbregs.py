"""dbregs: ``struct dbreg``: the debug registers (amd64: DR0-DR15; reads allowed while
running; cite: dbreg.amd64).

The struct layout, the read-whole-at-offset-0 rule and the write overlay are shared
with the other register nodes (nodes/_regset.py).
"""

from __future__ import annotations

from ._regset import merge_write, parser, render

NODE = "dbregs"
parse = parser(NODE)

__all__ = ["NODE", "merge_write", "parse", "render"]
