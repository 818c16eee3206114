"""render/parse of the text nodes: byte-exact round trips, escapes, strict diagnostics."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bsdprocfs
from bsdprocfs.errors import EINVAL, ParseError, ProcfsError
from bsdprocfs.nodes import cmdline, etype, map, osrel, rlimit, status
from bsdprocfs.profiles import PROFILES, get_profile
from bsdprocfs.records import (
    RLIM_INFINITY,
    CmdlineRecord,
    MapEntry,
    MapRecord,
    OsrelRecord,
    Rlimit,
    RlimitRecord,
    StatusRecord,
    TimeVal,
)

SAMPLE = b"sh 1234 1200 1234 1200 pts/0 ctty 1715000000,123456 0,3906 0,7812 wait 1001 1001 1001,1001,0 -\n"


def rec(**kw):
    base = dict(comm=b"sh", pid=1234, ppid=1200, pgid=1234, sid=1200, tty="pts/0", ctty=True,
                sldr=False, start=TimeVal(1715000000, 123456), utime=TimeVal(0, 3906),
                stime=TimeVal(0, 7812), wmesg="wait", euid=1001, ruid=1001, rgid=1001,
                groups=(1001, 0), jail=None)
    base.update(kw)
    return StatusRecord(**base)


# ------------------------------------------------------------------ status
def test_status_spec_sample_round_trips():
    r = status.parse(SAMPLE)
    assert r == rec()
    assert status.render(r) == SAMPLE


@pytest.mark.parametrize("comm, escaped", [
    (b"a b", rb"a\040b"), (b"back\\slash", rb"back\134slash"), (b"tab\t", rb"tab\011"),
    (b"", rb"\000"), (b"!~", b"!~"), (b"\x7f", rb"\177"), (b"a)b\nc", rb"a)b\012c"),
])
def test_comm_escapes(comm, escaped):
    assert status.escape_comm(comm) == escaped
    assert status.unescape_comm(escaped) == comm


def test_high_bytes_signed_char_form():
    assert status.escape_comm(b"\xc3", signed_char=True) == rb"\37777777703"
    assert status.escape_comm(b"\xc3", signed_char=False) == rb"\303"
    assert status.unescape_comm(rb"\37777777703", signed_char=True) == b"\xc3"
    assert status.unescape_comm(rb"\303", signed_char=False) == b"\xc3"
    # signed mode never prints a 3-digit escape >= 0200: parse refuses it
    line = status.render(rec(comm=b"\xc3\xa9"), signed_char=False)
    with pytest.raises(ParseError) as ei:
        status.parse(line, signed_char=True)
    assert ei.value.field == "comm"


@pytest.mark.parametrize("ctty, sldr, word", [
    (True, False, b" ctty "), (False, True, b" sldr "), (True, True, b" ctty,sldr "),
    (False, False, b" noflags "),
])
def test_flag_words(ctty, sldr, word):
    line = status.render(rec(ctty=ctty, sldr=sldr))
    assert word in line
    assert status.parse(line).ctty is ctty


def test_unpadded_microseconds_and_swapped_out():
    assert b" 1715000000,5 " in status.render(rec(start=TimeVal(1715000000, 5)))
    line = status.render(rec(start=None))
    assert b" -1,-1 -1,-1 -1,-1 " in line
    assert status.parse(line).start is None


def test_credentials_layout_and_jail():
    line = status.render(rec(euid=2001, ruid=2002, rgid=1002, groups=(1001, 5, 20, 100),
                             jail="jailed"))
    assert line.endswith(b" 2001 2002 1002,1001,5,20,100 jailed\n")


def test_wmesg_with_spaces_parses_from_the_right():
    line = status.render(rec(wmesg="sx lock"))
    r = status.parse(line)
    assert r.wmesg == "sx lock" and r.euid == 1001 and r.jail is None


@pytest.mark.parametrize("data, field", [
    (SAMPLE[:-1], "line"),
    (SAMPLE.replace(b" ctty ", b" tty "), "flags"),
    (SAMPLE.replace(b"1715000000,123456", b"1715000000,0123456"), "start"),
    (SAMPLE.replace(b" 1234 1200 1234", b" 1234 1200 x"), "pgid"),
    (SAMPLE.replace(b"sh ", rb"s\h "), "comm"),
    (SAMPLE.replace(b"sh ", rb"\101 "), "comm"),
    (SAMPLE.replace(b"1001,1001,0", b"1001,,0"), "groups"),
    (SAMPLE.replace(b" pts/0 ", b"  "), "tty"),
    (SAMPLE.replace(b" -\n", b" \n"), "jail"),
])
def test_status_rejects_malformed_with_field_and_offset(data, field):
    with pytest.raises(ParseError) as ei:
        status.parse(data)
    assert ei.value.field == field
    assert 0 <= ei.value.offset <= len(data)
    assert f"at byte {ei.value.offset}" in str(ei.value)


# b"\0" is excluded: procfs_status.c prints \000 for it and for an empty comm alike,
# so parse cannot tell the two apart (it returns b"").
comms = st.binary(min_size=0, max_size=19).filter(lambda c: c != b"\0")
ids = st.integers(0, 2**31 - 1)
tvs = st.builds(TimeVal, st.integers(0, 2**40), st.integers(0, 999_999))
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(comm=comms, pid=ids, ppid=ids, pgid=ids, sid=ids,
       tty=st.none() | st.sampled_from(["pts/0", "ttyv1", "pts/17"]),
       ctty=st.booleans(), sldr=st.booleans(), start=st.none() | tvs, utime=tvs, stime=tvs,
       wmesg=words, euid=ids, ruid=ids, rgid=ids, groups=st.lists(ids, max_size=6),
       jail=st.none() | words, signed=st.booleans())
def test_status_property_round_trip(comm, pid, ppid, pgid, sid, tty, ctty, sldr, start,
                                    utime, stime, wmesg, euid, ruid, rgid, groups, jail,
                                    signed):
    r = StatusRecord(comm, pid, ppid, pgid, sid, tty, ctty, sldr, start,
                     utime if start else TimeVal(-1, -1), stime if start else TimeVal(-1, -1),
                     wmesg, euid, ruid, rgid, tuple(groups), jail)
    data = status.render(r, signed_char=signed)
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    back = status.parse(data, signed_char=signed)
    assert status.render(back, signed_char=signed) == data
    assert back.comm == comm and back.groups == tuple(groups)


# ----------------------------------------------------------------- cmdline
def test_cmdline_round_trip_and_nul_rule():
    r = CmdlineRecord((b"python3", b"-c", b"", b"x y"))
    data = cmdline.render(r)
    assert data == b"python3\0-c\0\0x y\0"
    assert cmdline.parse(data) == r
    assert cmdline.render(CmdlineRecord(())) == b""
    with pytest.raises(ParseError) as ei:
        cmdline.parse(b"abc")
    assert ei.value.offset == 3


@given(st.lists(st.binary().filter(lambda b: b"\0" not in b), min_size=1, max_size=8))
def test_cmdline_property(args):
    data = cmdline.render(CmdlineRecord(tuple(args)))
    assert cmdline.render(cmdline.parse(data)) == data


# ------------------------------------------------------------------ rlimit
def limits(n, **over):
    idents = get_profile("compat").rlimit_idents
    return RlimitRecord(tuple(Rlimit(i, *over.get(i, (RLIM_INFINITY, RLIM_INFINITY)))
                              for i in idents[:n]))


@pytest.mark.parametrize("profile, n, last", [
    ("freebsd-10", 13, "swap"), ("freebsd-11", 15, "umtx"), ("freebsd-12", 15, "umtx"),
    ("freebsd-13", 15, "umtx"), ("freebsd-14", 16, "pipebuf"),
    ("freebsd-15", 17, "vmm"), ("compat", 17, "vmm"),
])
def test_rlimit_lines_per_profile(profile, n, last):
    data = rlimit.render(limits(17, nofile=(64, 128)), profile)
    lines = data.splitlines()
    assert len(lines) == n
    assert lines[-1] == f"{last} -1 -1".encode()
    assert b"nofile 64 128" in lines
    assert rlimit.render(rlimit.parse(data, profile), profile) == data


def test_rlimit_infinity_is_minus_one_and_rejects_numbers_for_it():
    data = rlimit.render(limits(17, cpu=(100, RLIM_INFINITY)))
    assert data.startswith(b"cpu 100 -1\n")
    bad = data.replace(b"cpu 100 -1", b"cpu 100 9223372036854775807")
    with pytest.raises(ParseError) as ei:
        rlimit.parse(bad)
    assert ei.value.field == "cpu.max"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.replace(b"fsize", b"fsiz"), "ident"),
    (lambda d: d.replace(b"data -1 -1\n", b""), "ident"),
    (lambda d: d[:-1], "line"),
    (lambda d: d.replace(b"core -1 -1", b"core -1  -1"), "core"),
    (lambda d: d + b"extra 1 1\n", "line"),
    (lambda d: d.replace(b"stack -1 -1", b"stack 01 -1"), "stack.cur"),
])
def test_rlimit_malformed(mutate, field):
    with pytest.raises(ParseError) as ei:
        rlimit.parse(mutate(rlimit.render(limits(17))))
    assert ei.value.field == field


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**63 - 2) | st.just(RLIM_INFINITY),
                          st.integers(0, 2**63 - 2) | st.just(RLIM_INFINITY)),
                min_size=17, max_size=17), st.sampled_from(sorted(PROFILES)))
def test_rlimit_property(vals, profile):
    idents = get_profile("compat").rlimit_idents
    r = RlimitRecord(tuple(Rlimit(i, c, m) for i, (c, m) in zip(idents, vals, strict=True)))
    data = rlimit.render(r, profile)
    assert rlimit.render(rlimit.parse(data, profile), profile) == data


# --------------------------------------------------------------------- map
def entry(**kw):
    base = dict(start=0x400000, end=0x401000, resident=1, private_resident=0,
                obj=0xFFFFF80012345678, prot="r-x", ref_count=2, shadow_count=0, flags=0,
                cow=True, needs_copy=False, type="vnode", path=b"/bin/sh", charged=False,
                charged_uid=-1)
    base.update(kw)
    return MapEntry(**base)


def test_map_line_format_all_15_fields():
    line = map.render(MapRecord((entry(),)))
    assert line == b"0x400000 0x401000 1 0 0xfffff80012345678 r-x 2 0 0x0 COW NNC vnode /bin/sh NCH -1\n"
    assert len(line.split()) == 15
    none = map.render(MapRecord((entry(obj=0, type="none", path=None, ref_count=0, prot="---",
                                       cow=True, charged=True, charged_uid=1001),)))
    assert none == b"0x400000 0x401000 1 0 0 --- 0 0 0x0 COW NNC none - CH 1001\n"


def test_map_type_names_per_profile():
    r = MapRecord((entry(type="swap", path=None, flags=0x210),))
    assert b" swap - " in map.render(r, "freebsd-14")
    assert b" default - " in map.render(r, "freebsd-13")
    assert map.parse(map.render(r, "freebsd-13"), "freebsd-13").entries[0].type == "default"
    with pytest.raises(ParseError) as ei:
        map.parse(map.render(r, "freebsd-13"), "freebsd-14")
    assert ei.value.field == "type"


def test_map_path_with_spaces():
    r = MapRecord((entry(path=b"/tmp/a b  c"),))
    assert map.parse(map.render(r)) == r


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.replace(b"0x400000 ", b"0X400000 ", 1), "start"),
    (lambda d: d.replace(b" r-x ", b" rx- ".replace(b"rx-", b"rxx")), "prot"),
    (lambda d: d.replace(b" COW ", b" COWS "), "cow"),
    (lambda d: d.replace(b" NNC ", b" N "), "needs_copy"),
    (lambda d: d.replace(b" NCH ", b" XCH "), "charged"),
    (lambda d: d.replace(b" 0x0 ", b" 0 "), "flags"),
    (lambda d: d.replace(b" 0xfffff80012345678 ", b" 0xFFFFF80012345678 "), "obj"),
    (lambda d: d.replace(b" /bin/sh NCH -1", b" NCH -1"), "type"),
])
def test_map_malformed(mutate, field):
    data = map.render(MapRecord((entry(),)))
    with pytest.raises(ParseError) as ei:
        map.parse(mutate(data))
    assert ei.value.field == field


paths = st.none() | st.binary(min_size=1, max_size=40).filter(
    lambda b: b"\n" not in b and b != b"-").map(lambda b: b"/" + b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(
    MapEntry, start=st.integers(0, 2**47), end=st.integers(2**47, 2**48),
    resident=st.integers(0, 10**6), private_resident=st.integers(0, 10**6),
    obj=st.integers(0, 2**64 - 1), prot=st.sampled_from(["rwx", "r--", "---", "rw-", "r-x"]),
    ref_count=st.integers(0, 100), shadow_count=st.integers(0, 5), flags=st.integers(0, 2**20),
    cow=st.booleans(), needs_copy=st.booleans(),
    type=st.sampled_from(["vnode", "swap", "phys", "dead", "device", "unknown", "none"]),
    path=paths, charged=st.booleans(), charged_uid=st.integers(-1, 65535)), max_size=6))
def test_map_property(entries):
    data = map.render(MapRecord(tuple(entries)))
    back = map.parse(data)
    assert map.render(back) == data
    assert back == MapRecord(tuple(entries))


# ------------------------------------------------------------- etype/osrel
@pytest.mark.parametrize("name", ["FreeBSD ELF64", "FreeBSD ELF32", "Linux ELF64",
                                  "Linux ELF32", "null"])
def test_etype_names(name):
    data = f"{name}\n".encode()
    assert etype.render(etype.parse(data)) == data


def test_etype_rejects_unknown():
    with pytest.raises(ParseError):
        etype.parse(b"Plan9 ELF\n")
    with pytest.raises(ParseError):
        etype.parse(b"Linux ELF64")


@pytest.mark.parametrize("data, value", [
    (b"1400097\n", 1400097), (b"0\n", 0), (b"197120\n", 197120)])
def test_osrel_read_format(data, value):
    assert osrel.parse(data) == OsrelRecord(value)
    assert osrel.render(OsrelRecord(value)) == data


@pytest.mark.parametrize("written, stored", [
    (b"1400097", 1400097), (b"1400097\n", 1400097), (b"42 \t\n", 42), (b"", 0), (b"\n", 0),
    (b"   ", 0), (b"2147483647", 2**31 - 1), (b"007", 7),
    # procfs_doosrel's `ov = osrel * 10 + digit; if (ov < osrel)` over a wrapping int
    # (citation osrel.write): these overflow, wrap upward and are stored
    (b"4772185890", 477218594), (b"47721858900", 477218644), (b"9544371770", 954437178),
    (b"14316557660", 1431655772),
])
def test_osrel_write_grammar_accepts(written, stored):
    assert osrel.parse_write(written) == stored


@pytest.mark.parametrize("written", [b"12a", b" 12", b"-1", b"+5", b"0x10", b"2147483648",
                                     b"99999999999999999999", b"1 2"])
def test_osrel_write_grammar_rejects(written):
    with pytest.raises(ProcfsError) as ei:
        osrel.parse_write(written)
    assert ei.value.errno == EINVAL


@given(st.integers(0, 2**31 - 1))
def test_osrel_property(v):
    assert osrel.parse(osrel.render(OsrelRecord(v))).osrel == v
    assert osrel.parse_write(b"%d\n" % v) == v


def test_public_parse_render_entry_points():
    r = bsdprocfs.parse("status", SAMPLE, "freebsd-14")
    assert bsdprocfs.render("status", r, "freebsd-14") == SAMPLE
    with pytest.raises(ValueError):
        bsdprocfs.parse("nosuchnode", b"")
