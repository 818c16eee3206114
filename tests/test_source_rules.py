"""Rules re-read from FreeBSD's source (conformance/citations.toml): each test here
failed on the code written from the hand-made spec."""

from __future__ import annotations

import errno
import mmap
import os
import subprocess
import time

import pytest

from bsdprocfs import ProcFS
from bsdprocfs.access import Policy, Reader, p_candebug, p_cansee
from bsdprocfs.backends.linux import cr_groups
from bsdprocfs.errors import ESRCH, ProcfsError
from bsdprocfs.nodes import map as n_map
from bsdprocfs.profiles import get_profile
from bsdprocfs.records import Credentials, MapEntry, MapRecord, ProcIdentity

ROOT = os.geteuid() == 0


def _target(ruid=2000, euid=2000, rgid=3000, egid=3000, groups=()):
    return ProcIdentity(4242, Credentials(ruid, euid, euid, rgid, egid, egid, groups),
                        False, False, False, 1)


# ------------------------------------------------------------------ p_cansee
NO_UIDS = Policy(see_other_uids=False)
NO_GIDS = Policy(see_other_gids=False)


def test_see_other_uids_compares_the_readers_real_uid():
    """cr_canseeotheruids: ``u1->cr_ruid != u2->cr_ruid`` (citation cansee.uids)."""
    setuid_reader = Reader(1, uid=1000, gid=1000, ruid=2000)        # euid 1000, ruid 2000
    assert p_cansee(setuid_reader, _target(ruid=2000), NO_UIDS) == 0
    assert p_cansee(setuid_reader, _target(ruid=1000, euid=1000), NO_UIDS) == ESRCH


def test_see_other_gids_ignores_the_targets_rgid():
    """<= 14: each of the reader's cr_groups against groupmember(target), which looks at
    the target's cr_groups (egid + supplementary) only (citation cansee.gids)."""
    reader = Reader(1, uid=1000, gid=3000, groups=(3000,))
    only_rgid = _target(rgid=3000, egid=5000, groups=(5000,))
    assert p_cansee(reader, only_rgid, NO_GIDS) == ESRCH
    assert p_cansee(reader, _target(rgid=7, egid=7, groups=(7, 3000)), NO_GIDS) == 0
    # nor the reader's rgid: it is not among the reader's cr_groups
    real_only = Reader(1, uid=1000, gid=9, groups=(9,), rgid=5000)
    assert p_cansee(real_only, _target(rgid=1, egid=5000, groups=(5000,)), NO_GIDS) == ESRCH


def test_see_other_gids_15_uses_real_group_sets():
    """15: the reader's rgid and supplementary groups against realgroupmember(target):
    the target's rgid and supplementary groups (citation cansee.gids.15)."""
    pol = Policy(see_other_gids=False, real_groups=True)
    reader = Reader(1, uid=1000, gid=9, groups=(), rgid=3000)
    assert p_cansee(reader, _target(rgid=3000, egid=5000, groups=()), pol) == 0
    assert p_cansee(reader, _target(rgid=5000, egid=3000, groups=()), pol) == ESRCH


def test_profile_15_switches_the_gid_rule():
    fs14, fs15 = ProcFS(profile="freebsd-14"), ProcFS(profile="freebsd-15")
    assert not fs14.tree.policy.real_groups and fs15.tree.policy.real_groups


def test_candebug_unchanged_for_the_plain_case():
    r = Reader(1, uid=2000, gid=3000, groups=(3000,))
    assert p_candebug(r, _target()) == 0
    assert p_candebug(r, _target(euid=0)) != 0


# ------------------------------------------------------------------ readdir
@pytest.mark.parametrize("name", ["freebsd-10", "freebsd-11", "freebsd-12"])
def test_readdir_head_insertion(name):
    """pfs_add_node through 12.0: ``pn->pn_next = parent->pn_nodes; parent->pn_nodes =
    pn`` (citations pfs.readdir.prepend, pfs.readdir.prepend.12)."""
    fs = ProcFS(profile=name)
    me = str(os.getpid())
    names = fs.tree.list_pid(os.getpid(), Reader.current())
    assert names[-2:] == ["..", "."]
    assert names[0] == "file" and names[-3] == "cmdline"
    root = fs.tree.list_root(Reader.current())
    assert root[-3:] == ["curproc", "..", "."]
    assert me in root[:-3] and all(n.isdigit() for n in root[:-3])


@pytest.mark.parametrize("name", ["freebsd-13", "freebsd-14", "freebsd-15", "compat"])
def test_readdir_creation_order(name):
    fs = ProcFS(profile=name)
    names = fs.tree.list_pid(os.getpid(), Reader.current())
    assert names[:3] == [".", "..", "cmdline"]
    assert fs.tree.list_root(Reader.current())[:3] == [".", "..", "curproc"]


# ------------------------------------------------------------------ map flags
def _anon(flags=0x210, typ="swap"):
    return MapRecord((MapEntry(0x1000, 0x2000, 1, 1, 0xfffff800deadbeef, "rw-", 1, 0, flags,
                               True, False, typ, None, True, 1000),))


@pytest.mark.parametrize("name", ["freebsd-10", "freebsd-11", "freebsd-12", "freebsd-13"])
def test_map_flags_objt_era(name):
    """0x210 is OBJ_NOSPLIT|OBJ_TMPFS_NODE in the OBJT era; an anonymous OBJT_DEFAULT
    object starts with OBJ_ONEMAPPING (citations map.flags.objt, map.flags.objt.alloc)."""
    line = n_map.render(_anon(), name)
    fields = line.split(b" ")
    assert (fields[8], fields[11]) == (b"0x2000", b"default")
    assert n_map.render_entry(_anon().entries[0], get_profile(name)) == line
    assert n_map.parse(line, name).entries[0].flags == 0x2000


@pytest.mark.parametrize("name", ["freebsd-14", "freebsd-15", "compat"])
def test_map_flags_kvme_era(name):
    fields = n_map.render(_anon(), name).split(b" ")
    assert (fields[8], fields[11]) == (b"0x210", b"swap")


def test_map_of_this_process_objt_flags():
    """Through the whole path (the compiled kvme renderer is bypassed for OBJT eras)."""
    buf = mmap.mmap(-1, 4 * 4096)
    buf[0:1] = b"x"
    try:
        data = ProcFS(profile="freebsd-13").read("curproc", "map")
        assert b" 0x210 " not in data
        assert b" default " in data and b" swap " not in data
    finally:
        buf.close()


# ------------------------------------------------------------------ status groups
def test_cr_groups_holds_the_egid_once():
    assert cr_groups(1000, (1000, 5)) == (1000, 5)
    assert cr_groups(1000, (5, 1000, 7)) == (1000, 5, 7)
    assert cr_groups(1000, (5,)) == (1000, 5)
    assert cr_groups(0, ()) == (0,)


@pytest.mark.skipif(not ROOT, reason="setting a child's groups needs root")
def test_status_groups_of_a_real_child():
    """initgroups-style credentials: Linux's Groups: already holds the primary group,
    FreeBSD's cr_groups hold it once as cr_groups[0] (citation status.groups)."""
    p = subprocess.Popen(["sleep", "30"], user=4321, group=4321, extra_groups=[4321, 5])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{p.pid}/status") as f:
                if "\nGid:\t4321" in f.read():
                    break
            time.sleep(0.01)
        line = ProcFS(profile="freebsd-14").read(p.pid, "status")
        creds = line.split(b" ")[-2]
        assert creds == b"4321,4321,5", line
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------ pseudofs limits
def _big_map():
    """Enough separate mappings that the map node passes 128 KiB."""
    maps = []
    for i in range(1600):
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ if i % 2 else
                      mmap.PROT_READ | mmap.PROT_WRITE)
        maps.append(m)
    return maps


def test_read_limit_maxphys_before_13():
    """pfs_read <= 12: ``if (buflen > MAXPHYS) buflen = MAXPHYS`` with an sbuf of buflen+1
    (citations pfs.read.maxphys, pfs.read.maxphys.12); later PFS_MAXBUFSIZ - 1."""
    maps = _big_map()
    try:
        old = ProcFS(profile="freebsd-12").read("curproc", "map")
        new = ProcFS(profile="freebsd-13").read("curproc", "map")
        assert len(new) > 128 * 1024
        assert len(old) == 128 * 1024
        assert new.startswith(old[:4096].split(b"\n")[0])
    finally:
        for m in maps:
            m.close()


def test_write_limit_only_from_13():
    """pfs_write gained ``if (uio->uio_resid > PFS_MAXBUFSIZ) PFS_RETURN (EIO)`` after
    12.0 (citation pfs.write.limit); before, the note fill answers EOPNOTSUPP."""
    big = b"x" * ((1 << 20) + 1)
    for name, want in (("freebsd-12", errno.EOPNOTSUPP), ("freebsd-14", errno.EIO)):
        with pytest.raises(ProcfsError) as ei:
            ProcFS(profile=name).write("curproc", "note", big)
        assert ei.value.errno == want, name
