"""regs/fpregs/dbregs (sizes, offset rules, EBUSY, write round trips), mem
(read/write/EFAULT), note/notepg and the osrel write grammar (spec 7, 10-12)."""

from __future__ import annotations

import errno
import os
import platform
import struct
import sys

import pytest

from bsdprocfs_conformance.spec import READ_ARG_REGS, machine_arch, osrel_write, regset_sizes
from bsdprocfs_conformance.targets import read, write
from bsdprocfs_conformance.util import expect_errno, need_ctl, need_node

SIZES = regset_sizes()
REGSETS = ("regs", "fpregs", "dbregs")
AMD64 = platform.machine().lower() in ("x86_64", "amd64")
#: (offset, 8-byte value) of a field whose change is harmless while stopped in a
#: syscall: r_r11 (clobbered by syscall), XMM15 low half, DR0 (not enabled in DR7).
MODIFY = {"regs": 32, "fpregs": 160 + 15 * 16, "dbregs": 0}


def _need(prof, regset):
    need_node(prof, regset)
    if regset not in SIZES:
        pytest.skip(f"register layout unknown for {platform.machine()}")


@pytest.fixture(scope="module")
def stopped(pool):
    return pool.get("stopped")


def _rel(s, node):
    return f"{s.pid}/{node}"


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_size(target, prof, stopped, node):
    _need(prof, node)
    assert len(read(target, _rel(stopped, node), 4096)) == SIZES[node]


def _read_arg_regs(prof):
    arch = machine_arch()
    if arch not in READ_ARG_REGS:
        pytest.skip(f"argument registers unknown for {platform.machine()}")
    if arch == "i386" and sys.platform.startswith("freebsd"):
        pytest.skip("FreeBSD i386 passes system call arguments on the stack")
    return READ_ARG_REGS[arch]


@pytest.mark.procfs("regs", "regs")
@pytest.mark.parametrize("arg", ["fd", "buf", "n"])
@pytest.mark.parametrize("how", ["stopped", "traced"])
def test_regs_read_args(target, prof, pool, how, arg):
    """A subject blocked in read(0, buf, 3001) and then stopped (SIGSTOP, or ctl attach):
    each argument register holds its known value at its own offset of struct reg."""
    _need(prof, "regs")
    width, offs = _read_arg_regs(prof)
    if arg not in offs:
        pytest.skip(f"{machine_arch()}: the {arg} argument is not left in a register")
    if how == "traced":
        need_ctl(prof)
    s = pool.traced(target) if how == "traced" else pool.get(how)
    fd, buf, n = s.truth["read_args"]
    regs = read(target, _rel(s, "regs"), 4096)
    got = int.from_bytes(regs[offs[arg]:offs[arg] + width], "little")
    assert got == {"fd": fd, "buf": buf, "n": n}[arg], f"{arg} register at {offs[arg]}"


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("op", ["read", "write"])
@pytest.mark.parametrize("node", REGSETS)
def test_regset_running(target, prof, pool, node, op):
    """regs/fpregs need a stopped target (EBUSY); dbregs reads are allowed while running."""
    _need(prof, node)
    rel = _rel(pool.get("running"), node)
    if op == "read":
        if node == "dbregs":
            assert len(read(target, rel, 4096)) == SIZES[node]
        else:
            expect_errno(errno.EBUSY, read, target, rel, 4096)
    else:
        expect_errno(errno.EBUSY, write, target, rel, b"\0" * SIZES[node])


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_offset_read(target, prof, stopped, node):
    _need(prof, node)
    assert read(target, _rel(stopped, node), SIZES[node], 8) == b"", "offset != 0 reads EOF"


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_offset_write(target, prof, stopped, node):
    _need(prof, node)
    assert write(target, _rel(stopped, node), b"\0" * 8, 8) == 0, "offset != 0 writes nothing"


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_partial_read(target, prof, stopped, node):
    _need(prof, node)
    full = read(target, _rel(stopped, node), 4096)
    assert read(target, _rel(stopped, node), 16) == full[:16]


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_write_same(target, prof, stopped, node):
    _need(prof, node)
    rel = _rel(stopped, node)
    full = read(target, rel, 4096)
    assert write(target, rel, full) == SIZES[node]
    assert read(target, rel, 4096) == full


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_write_roundtrip(target, prof, stopped, node):
    _need(prof, node)
    if not AMD64:
        pytest.skip("field offsets are given for amd64 only")
    rel = _rel(stopped, node)
    full = read(target, rel, 4096)
    off = MODIFY[node]
    value = stopped.truth["maps"]["rw"][0] if node == "dbregs" else 0x1234_5678_9ABC
    new = full[:off] + struct.pack("<Q", value) + full[off + 8:]
    try:
        assert write(target, rel, new) == SIZES[node]
        got = read(target, rel, 4096)
        assert struct.unpack_from("<Q", got, off)[0] == value
    finally:
        write(target, rel, full)
    assert read(target, rel, 4096) == full


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_oversized_write(target, prof, stopped, node):
    _need(prof, node)
    rel = _rel(stopped, node)
    full = read(target, rel, 4096)
    assert write(target, rel, full + b"\xff" * 24) == SIZES[node], "extra bytes not consumed"
    assert read(target, rel, 4096) == full


@pytest.mark.procfs("*", "regs")
@pytest.mark.parametrize("node", REGSETS)
def test_regset_short_write(target, prof, stopped, node):
    _need(prof, node)
    rel = _rel(stopped, node)
    full = read(target, rel, 4096)
    assert write(target, rel, full[:8]) == 8
    assert read(target, rel, 4096) == full


# ---------------------------------------------------------------------------- mem
@pytest.fixture(scope="module")
def memsub(pool):
    return pool.get("sleeping")


def _maps(s):
    return s.truth["maps"]


mem = pytest.mark.procfs("mem", "mem")


@mem
@pytest.mark.parametrize("where", ["start", "page_boundary", "three_pages"])
def test_mem_read(target, prof, memsub, where):
    need_node(prof, "mem")
    m = _maps(memsub)
    page = m["page"]
    pat = bytes.fromhex(m["pattern"])
    body = (pat * (3 * page // len(pat) + 1))[: 3 * page]
    off, size = {"start": (0, 64), "page_boundary": (page - 16, 32),
                 "three_pages": (0, 3 * page)}[where]
    assert read(target, f"{memsub.pid}/mem", size, m["rw"][0] + off) == body[off:off + size]


@mem
@pytest.mark.parametrize("where", ["hole", "straddle"])
def test_mem_read_efault(target, prof, memsub, where):
    need_node(prof, "mem")
    m = _maps(memsub)
    addr = m["hole"] if where == "hole" else m["hole"] - 8
    expect_errno(errno.EFAULT, read, target, f"{memsub.pid}/mem", 16, addr)


@mem
def test_mem_read_zero(target, prof, memsub):
    need_node(prof, "mem")
    assert read(target, f"{memsub.pid}/mem", 0, _maps(memsub)["rw"][0]) == b""


@mem
def test_mem_negative_offset(target, prof, memsub):
    need_node(prof, "mem")
    expect_errno(errno.EINVAL, read, target, f"{memsub.pid}/mem", 8, -4096)


@mem
@pytest.mark.parametrize("region", ["rw", "cow"])
def test_mem_write(target, prof, memsub, region):
    """Writes land in the target (read-only private pages through copy-on-write)."""
    need_node(prof, "mem")
    addr = _maps(memsub)[region][0] + 100
    rel = f"{memsub.pid}/mem"
    old = read(target, rel, 24, addr)
    data = b"written-through-procfs!!"
    try:
        assert write(target, rel, data, addr) == len(data)
        assert read(target, rel, len(data), addr) == data
        assert bytes.fromhex(memsub.cmd(f"peek {addr} {len(data)}")) == data
    finally:
        if region == "rw":
            write(target, rel, old, addr)


@mem
@pytest.mark.parametrize("subject", ["sugid", "dropped", "split"])
def test_mem_root_reads_sugid(target, prof, pool, subject):
    """Privilege passes p_candebug before P_SUGID is looked at: root debugs a set-id
    process (its debug nodes are only mode 0, which root's vaccess ignores)."""
    need_node(prof, "mem")
    if not pool.root or os.geteuid() != 0:
        pytest.skip("set-id subjects and root's privilege need root")
    s = pool.get(subject)
    m = _maps(s)
    assert read(target, f"{s.pid}/mem", 64, m["rw"][0]) == bytes.fromhex(m["pattern"])[:64]
    assert len(read(target, f"{s.pid}/dbregs", 4096)) == SIZES.get("dbregs", 0) or not SIZES


@mem
def test_mem_write_efault(target, prof, memsub):
    need_node(prof, "mem")
    expect_errno(errno.EFAULT, write, target, f"{memsub.pid}/mem", b"x" * 8, _maps(memsub)["hole"])


# ------------------------------------------------------------------ note / notepg
@pytest.mark.procfs("*", "note")
@pytest.mark.parametrize("payload", [b"hello", b"x" * 100, b"\n"])
@pytest.mark.parametrize("node", ["note", "notepg"])
def test_note_write(target, prof, memsub, node, payload):
    need_node(prof, node)
    expect_errno(errno.EOPNOTSUPP, write, target, f"{memsub.pid}/{node}", payload)
    assert memsub.cmd("ping") == "pong", "nothing is delivered"


# ------------------------------------------------------------------------- osrel
#: (written bytes, value stored or None for EINVAL); the wrapped-int cases follow
#: procfs_doosrel's ``ov = osrel * 10 + digit; if (ov < osrel)`` (cite: osrel.write)
OSREL_CASES = [(b"1400097\n", 1400097), (b"12", 12), (b"12\t \n", 12), (b"007", 7),
               (b"\n", 0), (b"  \n", 0), (b"2147483647", 2147483647),
               (b"12a", None), (b" 12", None), (b"+5", None), (b"-5", None), (b"0x10", None),
               (b"2147483648", None), (b"1 2", None), (b"9" * 20, None),
               (b"4772185890", 477218594), (b"47721858900", 477218644),
               (b"9544371770", 954437178)]
assert all(osrel_write(d) == w for d, w in OSREL_CASES), "the table follows the C loop"


@pytest.mark.procfs("osrel", "write")
@pytest.mark.parametrize("data,want", OSREL_CASES, ids=[repr(c[0])[2:-1] for c in OSREL_CASES])
def test_osrel_write(target, memsub, data, want):
    rel = f"{memsub.pid}/osrel"
    orig = read(target, rel)
    try:
        if want is None:                 # EINVAL: not all digits, or signed overflow
            expect_errno(errno.EINVAL, write, target, rel, data)
            assert read(target, rel) == orig, "a rejected write changes nothing"
        else:
            assert write(target, rel, data) == len(data)
            assert read(target, rel) == b"%d\n" % want
    finally:
        write(target, rel, orig)
