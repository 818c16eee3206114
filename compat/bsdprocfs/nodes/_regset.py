"""What regs, fpregs and dbregs share: each is FreeBSD's <machine/reg.h> struct for the
host architecture (amd64, i386 or aarch64; layouts in ptrace/layouts.py), read whole at
offset 0, and a write overlays the user bytes on the current struct."""

from __future__ import annotations

from collections.abc import Callable

from ..profiles import Profile
from ..ptrace.layouts import RegSet, overlay, pack, parse_struct


def render(rec: RegSet, profile: Profile | None = None) -> bytes:
    return pack(rec)


def merge_write(cur: RegSet, data: bytes) -> tuple[RegSet, int]:
    """procfs_do{regs,fpregs,dbregs} write: read, overlay min(len, sizeof) bytes, write
    back (the caller writes the result through ptrace)."""
    return overlay(cur, data)


def parser(node: str) -> Callable[..., RegSet]:
    def parse(data: bytes, profile: Profile | None = None, arch: str | None = None) -> RegSet:
        return parse_struct(node, data, arch)
    return parse
