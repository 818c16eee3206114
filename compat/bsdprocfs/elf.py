"""etype and osrel from an ELF image: class, OS ABI and the ABI-tag note.

Hand-rolled instead of pyelftools: measured here at 25-34 µs per binary vs
1.3-26.5 ms for ELFFile+iter_notes (plus an 82 ms import), and pyelftools keys
notes by type alone so it mislabels FreeBSD's type-1 note.  The tests use
pyelftools as the independent oracle for what this reads.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

ELFOSABI_FREEBSD = 9
PT_NOTE = 4
NT_ABI_TAG = 1          # NT_FREEBSD_ABI_TAG and NT_GNU_ABI_TAG share the number


@dataclass(frozen=True)
class ElfBrand:
    etype: str          # sv_name as FreeBSD would report it
    osrel: int


def _notes(buf: bytes, endian: str):
    pos = 0
    while pos + 12 <= len(buf):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", buf, pos)
        pos += 12
        name = buf[pos:pos + namesz]
        pos += (namesz + 3) & ~3
        desc = buf[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        yield name.rstrip(b"\0"), ntype, desc


def brand_of(fd: int) -> ElfBrand:
    """Read the ELF header, program headers and PT_NOTE segments of an open file."""
    head = os.pread(fd, 64, 0)
    if len(head) < 52 or head[:4] != b"\x7fELF":
        raise ValueError("not an ELF image")
    is64 = head[4] == 2
    endian = "<" if head[5] == 1 else ">"
    osabi = head[7]
    if is64:
        phoff, = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(endian + "I", head, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
    phdrs = os.pread(fd, phentsize * min(phnum, 256), phoff)
    freebsd = osabi == ELFOSABI_FREEBSD
    osrel = None
    for i in range(min(phnum, 256)):
        base = i * phentsize
        if is64:
            p_type, = struct.unpack_from(endian + "I", phdrs, base)
            p_offset, = struct.unpack_from(endian + "Q", phdrs, base + 8)
            p_filesz, = struct.unpack_from(endian + "Q", phdrs, base + 32)
        else:
            p_type, p_offset = struct.unpack_from(endian + "II", phdrs, base)
            p_filesz, = struct.unpack_from(endian + "I", phdrs, base + 16)
        if p_type != PT_NOTE or p_filesz > 1 << 16:
            continue
        for name, ntype, desc in _notes(os.pread(fd, p_filesz, p_offset), endian):
            if ntype != NT_ABI_TAG:
                continue
            if name == b"FreeBSD" and len(desc) >= 4:
                freebsd = True
                osrel, = struct.unpack_from(endian + "I", desc)
            elif name == b"GNU" and len(desc) >= 16 and osrel is None:
                os_, a, b, c = struct.unpack_from(endian + "IIII", desc)
                if os_ == 0:            # GNU_ABI_LINUX: linux_trans_osrel
                    osrel = (a << 16) + (b << 8) + c
    bits = "64" if is64 else "32"
    return ElfBrand(f"{'FreeBSD' if freebsd else 'Linux'} ELF{bits}", osrel or 0)


def brand_of_path(path: str) -> ElfBrand:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return brand_of(fd)
    finally:
        os.close(fd)
