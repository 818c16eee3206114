"""etype/osrel from ELF images built by the test: both classes, both brands, notes or not.

pyelftools is the independent oracle that the fixtures are well-formed.
"""

from __future__ import annotations

import struct

import pytest
from elftools.elf.elffile import ELFFile

from bsdprocfs.elf import brand_of_path


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)   # noqa: E731
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def build(path, is64: bool, osabi: int, notes: bytes) -> None:
    if is64:
        ehsize, phentsize = 64, 56
        phoff = ehsize
        hdr = (b"\x7fELF" + bytes([2, 1, 1, osabi]) + b"\0" * 8 +
               struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, ehsize, phentsize,
                           1, 0, 0, 0))
        noff = phoff + phentsize
        ph = struct.pack("<IIQQQQQQ", 4, 4, noff, 0, 0, len(notes), len(notes), 4)
    else:
        ehsize, phentsize = 52, 32
        phoff = ehsize
        hdr = (b"\x7fELF" + bytes([1, 1, 1, osabi]) + b"\0" * 8 +
               struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0, phoff, 0, 0, ehsize, phentsize,
                           1, 0, 0, 0))
        noff = phoff + phentsize
        ph = struct.pack("<IIIIIIII", 4, noff, 0, 0, len(notes), len(notes), 4, 4)
    path.write_bytes(hdr + ph + notes)


GNU_ABI = note(b"GNU", 1, struct.pack("<IIII", 0, 3, 2, 0))
FREEBSD_ABI = note(b"FreeBSD", 1, struct.pack("<I", 1403000))
BUILD_ID = note(b"GNU", 3, b"\x12" * 20)
GO = note(b"Go", 4, b"abcd")


@pytest.mark.parametrize("is64, osabi, notes, etype, osrel, nnotes", [
    (True, 0, GNU_ABI, "Linux ELF64", 197120, 1),
    (False, 0, GNU_ABI, "Linux ELF32", 197120, 1),
    (True, 0, BUILD_ID, "Linux ELF64", 0, 1),
    (True, 0, GO, "Linux ELF64", 0, 1),
    (False, 0, b"", "Linux ELF32", 0, 0),
    (True, 9, FREEBSD_ABI, "FreeBSD ELF64", 1403000, 1),
    (False, 9, FREEBSD_ABI, "FreeBSD ELF32", 1403000, 1),
    (True, 0, FREEBSD_ABI + note(b"FreeBSD", 4, b"\0" * 4), "FreeBSD ELF64", 1403000, 2),
    (True, 9, b"", "FreeBSD ELF64", 0, 0),
    (True, 3, BUILD_ID + GNU_ABI, "Linux ELF64", 197120, 2),
    (True, 0, note(b"GNU", 1, struct.pack("<IIII", 3, 10, 1, 0)), "Linux ELF64", 0, 1),
])
def test_brand_and_osrel(tmp_path, is64, osabi, notes, etype, osrel, nnotes):
    f = tmp_path / "bin"
    build(f, is64, osabi, notes)
    with open(f, "rb") as fh:
        elf = ELFFile(fh)
        assert elf.elfclass == (64 if is64 else 32)
        seen = [n.n_type for s in elf.iter_segments() if s.header.p_type == "PT_NOTE"
                for n in s.iter_notes()]
        assert len(seen) == nnotes
    b = brand_of_path(str(f))
    assert (b.etype, b.osrel) == (etype, osrel)


def test_not_elf(tmp_path):
    f = tmp_path / "script"
    f.write_bytes(b"#!/bin/sh\necho hi\n" + b"\0" * 60)
    with pytest.raises(ValueError):
        brand_of_path(str(f))
