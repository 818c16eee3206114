"""FreeBSD register struct layouts (spec section 10) and the ctl grammar: pure tests.

The independent oracle for amd64 and i386 ``struct reg`` is python-ptrace's own
FreeBSD definition (ptrace/binding/freebsd_struct.py); its module is guarded by
the CPU it runs on, so the i386 branch is exec'd from the source with the guard
forced.
"""

from __future__ import annotations

import ctypes
import errno
import struct

import pytest

from bsdprocfs.errors import ParseError, ProcfsError
from bsdprocfs.nodes import ctl as n_ctl
from bsdprocfs.nodes import dbregs as n_dbregs
from bsdprocfs.nodes import fpregs as n_fpregs
from bsdprocfs.nodes import module_for
from bsdprocfs.nodes import regs as n_regs
from bsdprocfs.profiles import get_profile
from bsdprocfs.ptrace import layouts as L


def _freebsd_reg(x86_64: bool) -> type[ctypes.Structure]:
    import ptrace.binding.freebsd_struct as fb
    with open(fb.__file__) as f:
        src = f.read()
    guard = "from ptrace.cpu_info import CPU_X86_64"
    assert guard in src
    ns: dict[str, object] = {}
    exec(compile(src.replace(guard, f"CPU_X86_64 = {x86_64}"), fb.__file__, "exec"), ns)
    return ns["reg"]  # type: ignore[return-value]


@pytest.mark.parametrize("arch,kind", sorted(L.SIZES))
def test_sizes_match_spec(arch, kind):
    assert L.codec(arch, kind).size == L.SIZES[(arch, kind)]


@pytest.mark.parametrize("arch,x86_64", [("amd64", True), ("i386", False)])
def test_reg_layout_matches_python_ptrace_freebsd_struct(arch, x86_64):
    reg = _freebsd_reg(x86_64)
    if arch == "i386" and ctypes.sizeof(ctypes.c_uint) != 4:
        pytest.skip("c_uint is not 32-bit here")
    assert ctypes.sizeof(reg) == L.SIZES[(arch, "regs")]
    ours = L.fields(arch, "regs")
    assert [n for n, _c, _k in ours] == ["r_" + n for n, _t in reg._fields_]
    for name, ctype in reg._fields_:
        fld = getattr(reg, name)
        assert L.offset_of(arch, "regs", "r_" + name) == fld.offset, name
        assert struct.calcsize("<" + dict((n, c) for n, c, _k in ours)["r_" + name]) == \
            ctypes.sizeof(ctype), name
    # values: render a record with distinct field values, read it back through ctypes
    rs = L.zero(arch, "regs")
    vals = {}
    for i, (name, code, _k) in enumerate(ours):
        vals[name] = (0x1111 * (i + 1)) & ((1 << (8 * struct.calcsize(code))) - 1)
    rs = rs.replace(**vals)
    c = reg.from_buffer_copy(n_regs.render(rs))
    for name, _t in reg._fields_:
        assert getattr(c, name) == vals["r_" + name], name


def test_amd64_reg_offsets_from_spec_table():
    for name, off in (("r_r15", 0), ("r_rax", 112), ("r_trapno", 120), ("r_fs", 124),
                      ("r_gs", 126), ("r_err", 128), ("r_es", 132), ("r_ds", 134),
                      ("r_rip", 136), ("r_cs", 144), ("r_rflags", 152), ("r_rsp", 160),
                      ("r_ss", 168)):
        assert L.offset_of("amd64", "regs", name) == off
    assert struct.calcsize(L.codec("amd64", "regs").format) == struct.calcsize("<15QIHHIHH5Q")


def test_amd64_fpreg_and_dbreg_offsets():
    assert L.offset_of("amd64", "fpregs", "fpr_acc") == 32
    assert L.offset_of("amd64", "fpregs", "fpr_xacc") == 160
    assert L.offset_of("amd64", "fpregs", "fpr_spare") == 416
    dr = list(range(16))
    data = n_dbregs.render(L.zero("amd64", "dbregs").replace(dr=dr))
    assert struct.unpack("<16Q", data) == tuple(dr)


def test_aarch64_layouts():
    assert L.offset_of("aarch64", "regs", "lr") == 240
    assert L.offset_of("aarch64", "regs", "sp") == 248
    assert L.offset_of("aarch64", "regs", "elr") == 256
    assert L.offset_of("aarch64", "regs", "spsr") == 264
    assert L.offset_of("aarch64", "fpregs", "fp_sr") == 512
    assert L.offset_of("aarch64", "fpregs", "fp_cr") == 516
    assert L.offset_of("aarch64", "dbregs", "db_breakregs[0].dbr_addr") == 8
    assert L.offset_of("aarch64", "dbregs", "db_watchregs[0].dbw_addr") == 8 + 16 * 16
    rs = L.zero("aarch64", "regs").replace(x=list(range(100, 130)), lr=7, sp=8, elr=9,
                                           spsr=0x60000000)
    data = n_regs.render(rs)
    assert struct.unpack_from("<Q", data, 29 * 8)[0] == 129
    assert struct.unpack_from("<4Q", data, 240) == (7, 8, 9, 0x60000000)
    assert n_regs.parse(data, arch="aarch64") == rs


def test_i386_layouts():
    assert L.offset_of("i386", "regs", "r_eip") == 13 * 4
    assert L.offset_of("i386", "fpregs", "fpr_acc") == 28
    assert L.offset_of("i386", "fpregs", "fpr_ex_sw") == 108
    rs = L.zero("i386", "regs").replace(r_eip=0x8048000, r_esp=0xbffff000, r_cs=0x1f)
    data = n_regs.render(rs)
    assert struct.unpack_from("<I", data, 52)[0] == 0x8048000
    assert n_regs.parse(data, arch="i386") == rs


@pytest.mark.parametrize("arch", ["amd64", "i386", "aarch64"])
@pytest.mark.parametrize("kind", ["regs", "fpregs", "dbregs"])
def test_render_parse_round_trip(arch, kind):
    size = L.codec(arch, kind).size
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    mod = module_for(kind)
    rec = mod.parse(data, get_profile("compat"), arch=arch)
    assert mod.render(rec, get_profile("compat")) == data
    assert rec.to_json()["struct"] == L.STRUCT_NAMES[kind]


@pytest.mark.parametrize("bad", [b"", b"\0" * 175, b"\0" * 177])
def test_parse_rejects_wrong_size(bad):
    with pytest.raises(ParseError) as ei:
        n_regs.parse(bad, arch="amd64")
    assert ei.value.node == "regs"
    assert "176 bytes" in str(ei.value)


def test_merge_write_overlays_prefix():
    cur = L.zero("amd64", "regs").replace(r_rax=5, r_rip=0x1000)
    new, n = n_regs.merge_write(cur, struct.pack("<Q", 0xAA))
    assert n == 8 and new["r_r15"] == 0xAA and new["r_rip"] == 0x1000
    new, n = n_regs.merge_write(cur, bytes(300))
    assert n == 176 and new["r_rip"] == 0
    new, n = n_fpregs.merge_write(L.zero("amd64", "fpregs"), b"\x7f\x03")
    assert n == 2 and new["fpr_env"][0] == 0x37F


@pytest.mark.parametrize("word", n_ctl.COMMANDS + tuple(n_ctl.SIGNALS))
@pytest.mark.parametrize("suffix", [b"", b"\n", b" \t\r\n\v\f"])
def test_ctl_words_accepted_with_trailing_space(word, suffix):
    cmd = n_ctl.parse(word.encode() + suffix)
    assert cmd.word == word
    assert cmd.is_signal == (word in n_ctl.SIGNALS)
    assert n_ctl.parse_strict(n_ctl.render(cmd)) == cmd


def test_ctl_signal_numbers_are_freebsd():
    assert len(n_ctl.SIGNALS) == 32          # 31 signals, iot an alias of abrt
    assert n_ctl.SIGNALS["iot"] == n_ctl.SIGNALS["abrt"] == 6
    assert n_ctl.SIGNALS["usr1"] == 30 and n_ctl.SIGNALS["info"] == 29
    assert n_ctl.SIGNALS["stop"] == 17 and n_ctl.SIGNALS["cont"] == 19


@pytest.mark.parametrize("bad", [b"Attach", b"STEP", b" step", b"attach\0", b"ste",
                                 b"steps", b"sigterm", b"", b"\n", b"\xffstep", b"9"])
def test_ctl_unknown_words_are_eopnotsupp(bad):
    with pytest.raises(ProcfsError) as ei:
        n_ctl.parse(bad)
    assert ei.value.errno == errno.EOPNOTSUPP
