"""The FreeBSD backend against directory trees that mimic a native /proc.

It cannot run on this Linux machine against a real kernel; these trees hold
files rendered from records plus lines hand-checked against the spec, and the
API must serve them back byte for byte.
"""

from __future__ import annotations

import errno
import os

import pytest

import bsdprocfs
from bsdprocfs.access import Reader
from bsdprocfs.backends.freebsd import FreeBSDBackend

# Hand-written, checked field by field against freebsd-procfs.md §2, §4, §5, §6, §7.
STATUS = b"sh 1234 1200 1234 1200 pts/0 ctty,sldr 1715000000,123456 0,3906 0,7812 wait 1001 1001 1001,1001,0 -\n"
KPROC = b"idle 10 0 0 0 - noflags 1715000000,0 0,0 1234,5 nochan 0 0 0,0 -\n"
RLIMIT_14 = b"".join(b"%s -1 -1\n" % i for i in (
    b"cpu", b"fsize", b"data", b"stack", b"core", b"rss", b"memlock", b"nproc", b"nofile",
    b"sbsize", b"vmem", b"npts", b"swap", b"kqueues", b"umtx", b"pipebuf"))
RLIMIT_13 = RLIMIT_14.rsplit(b"pipebuf", 1)[0]
MAP_14 = (b"0x200000 0x201000 1 0 0xfffff80012345678 r-- 2 0 0x0 COW NNC vnode /bin/sh NCH -1\n"
          b"0x800000 0x820000 4 4 0xfffff800abcdef00 rw- 1 0 0x3000 COW NNC swap - CH 1001\n"
          b"0x7fffdf000 0x7fffff000 0 0 0 --- 0 0 0x0 NCOW NNC none - NCH -1\n")
MAP_13 = MAP_14.replace(b" swap ", b" default ")


def make_tree(tmp_path, rlimit=RLIMIT_14, map_=MAP_14, sugid=False):
    root = tmp_path / "proc"
    root.mkdir()
    d = root / "1234"
    d.mkdir()
    files = {"status": STATUS, "cmdline": b"sh\0-c\0echo hi\0", "rlimit": rlimit,
             "map": map_, "etype": b"FreeBSD ELF64\n", "osrel": b"1403000\n",
             "regs": b"\x01" * 176, "mem": b"", "note": b"", "notepg": b""}
    for name, data in files.items():
        (d / name).write_bytes(data)
    os.chmod(d / "regs", 0 if sugid else 0o600)
    os.symlink("/bin/sh", d / "file")
    k = root / "10"
    k.mkdir()
    (k / "status").write_bytes(KPROC)
    (k / "cmdline").write_bytes(b"")
    (k / "etype").write_bytes(b"null\n")
    os.symlink("1234", root / "curproc")
    return root


@pytest.fixture
def tree14(tmp_path):
    return make_tree(tmp_path)


def fs_for(root, source, profile):
    fs = bsdprocfs.ProcFS(backend="linux", profile=profile)
    fs.backend = FreeBSDBackend(str(root), profile=source)
    fs.tree = bsdprocfs.tree.ProcTree(fs.backend, fs.profile)
    return fs


READER = Reader(pid=1234, uid=1001, gid=1001, groups=(0,))


def test_native_nodes_are_served_byte_for_byte(tree14):
    fs = fs_for(tree14, "freebsd-14", "freebsd-14")
    assert fs.backend.native
    for node, data in (("status", STATUS), ("rlimit", RLIMIT_14), ("map", MAP_14),
                       ("etype", b"FreeBSD ELF64\n"), ("osrel", b"1403000\n"),
                       ("cmdline", b"sh\0-c\0echo hi\0")):
        assert fs.read(1234, node, reader=READER) == data, node
    assert fs.readlink(1234, "file", reader=READER) == "/bin/sh"


def test_records_are_parsed_from_native_bytes(tree14):
    fs = fs_for(tree14, "freebsd-14", "compat")
    st = fs.record(1234, "status", reader=READER)
    assert (st.pid, st.sid, st.tty, st.ctty, st.sldr) == (1234, 1200, "pts/0", True, True)
    assert st.groups == (1001, 0)
    # A newer profile than the kernel: the 17th limit is added as infinite.
    assert fs.read(1234, "rlimit", reader=READER) == RLIMIT_14 + b"vmm -1 -1\n"


def test_old_kernel_map_names_translate_between_profiles(tmp_path):
    root = make_tree(tmp_path, rlimit=RLIMIT_13, map_=MAP_13)
    as13 = fs_for(root, "freebsd-13", "freebsd-13")
    assert as13.read(1234, "map", reader=READER) == MAP_13
    as14 = fs_for(root, "freebsd-13", "freebsd-14")
    assert as14.read(1234, "map", reader=READER) == MAP_14


def test_kernel_process_is_psystem(tree14):
    fs = fs_for(tree14, "freebsd-14", "freebsd-14")
    listing = fs.listdir(10, reader=READER)
    assert "map" not in listing and "file" not in listing and "regs" not in listing
    assert fs.read(10, "cmdline", reader=READER) == b""
    assert fs.read(10, "etype", reader=READER) == b"null\n"


def test_sugid_detected_from_mode_zero(tmp_path):
    fs = fs_for(make_tree(tmp_path, sugid=True), "freebsd-14", "freebsd-14")
    assert fs.stat(1234, "regs", reader=Reader(1, 0, 0)).mode == 0
    assert fs.stat(1234, "status", reader=Reader(1, 0, 0)).mode == 0o444


def test_regs_pass_through_native_node(tree14):
    fs = fs_for(tree14, "freebsd-14", "freebsd-14")
    assert fs.read(1234, "regs", reader=READER) == b"\x01" * 176
    assert fs.read(1234, "regs", offset=8, reader=READER) == b""


def test_missing_pid_and_malformed_native_output(tree14):
    fs = fs_for(tree14, "freebsd-14", "freebsd-14")
    with pytest.raises(OSError) as ei:
        fs.read(4321, "status", reader=READER)
    assert ei.value.errno == errno.ENOENT
    (tree14 / "1234" / "status").write_bytes(STATUS.replace(b"ctty,sldr", b"bogus"))
    with pytest.raises(OSError) as ei:
        fs.read(1234, "status", reader=READER)
    assert ei.value.errno == errno.EIO


def test_root_listing_from_native_tree(tree14):
    fs = fs_for(tree14, "freebsd-14", "freebsd-14")
    names = fs.listdir(reader=READER)
    assert names[:2] == ["curproc", "self"]
    assert sorted(names[2:]) == ["10", "1234"]      # kernel (readdir) order is kept as is
