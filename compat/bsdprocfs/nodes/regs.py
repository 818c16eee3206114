"""regs: ``struct reg``: the general registers of the first thread (raw node).

The bytes are FreeBSD's <machine/reg.h> struct for the host architecture
(amd64, i386 or aarch64; layouts in ptrace/layouts.py); a write overlays the
user bytes on the current struct (see :func:`merge_write`).
"""

from __future__ import annotations

from ..profiles import Profile
from ..ptrace.layouts import RegSet, overlay, pack, parse_struct

NODE = "regs"


def render(rec: RegSet, profile: Profile | None = None) -> bytes:
    return pack(rec)


def parse(data: bytes, profile: Profile | None = None, arch: str | None = None) -> RegSet:
    return parse_struct(NODE, data, arch)


def merge_write(cur: RegSet, data: bytes) -> tuple[RegSet, int]:
    """procfs_doregs write: read, overlay min(len, sizeof) bytes, write back."""
    return overlay(cur, data)
