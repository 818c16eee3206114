"""fpregs: ``struct fpreg``: the FPU state (amd64: the 512-byte FXSAVE image;
cite: fpreg.amd64).

The struct layout, the read-whole-at-offset-0 rule and the write overlay are shared
with the other register nodes (nodes/_regset.py).
"""

from __future__ import annotations

from ._regset import merge_write, parser, render

NODE = "fpregs"
parse = parser(NODE)

__all__ = ["NODE", "merge_write", "parse", "render"]
