"""Each profile's node set, rlimit count and map vocabulary."""

from __future__ import annotations

import pytest

import bsdprocfs
from bsdprocfs.profiles import PROFILES, get_profile, profile_for_osreldate
from bsdprocfs.tree import PID_NODES, ROOT_NODES

ALL = ["cmdline", "ctl", "dbregs", "etype", "fpregs", "map", "mem", "note", "notepg", "regs",
       "rlimit", "status", "osrel", "file", "exe"]


@pytest.mark.parametrize("name, ctl, self_exe, n", [
    ("freebsd-10", True, False, 13), ("freebsd-11", True, False, 15),
    ("freebsd-12", False, False, 15), ("freebsd-13", False, False, 15),
    ("freebsd-14", False, True, 16), ("freebsd-15", False, True, 17),
    ("compat", True, True, 17),
])
def test_profile_node_sets(name, ctl, self_exe, n):
    p = get_profile(name)
    nodes = [x.name for x in PID_NODES if x.present(p)]
    roots = [x.name for x in ROOT_NODES if x.present(p)]
    expect = [x for x in ALL if (x != "ctl" or ctl) and (x != "exe" or self_exe)]
    assert nodes == expect
    assert roots == (["curproc", "self"] if self_exe else ["curproc"])
    assert len(p.rlimit_idents) == n


def test_listing_through_api_follows_profile():
    import os
    for name in PROFILES:
        fs = bsdprocfs.ProcFS(profile=name)
        listing = fs.listdir(os.getpid())
        assert ("ctl" in listing) == get_profile(name).has_ctl
        assert ("exe" in listing) == get_profile(name).has_self_exe
        root = fs.listdir()
        prof = get_profile(name)
        # pfs_add_node: head insertion through 12.x puts the pids before curproc
        assert root[-1 if prof.readdir_prepend else 0] == "curproc"
        assert ("self" in root) == prof.has_self_exe
        nodes = [n.name for n in PID_NODES if n.present(prof)]
        assert listing == (nodes[::-1] if prof.readdir_prepend else nodes)


def test_map_vocabulary():
    assert "default" in get_profile("freebsd-13").map_types
    assert "default" not in get_profile("freebsd-14").map_types
    assert get_profile("freebsd-10").map_type_name("phys") == "default"
    assert get_profile("compat").map_type_name("phys") == "phys"


@pytest.mark.parametrize("rel, name", [(1004000, "freebsd-10"), (1302000, "freebsd-13"),
                                       (1203000, "freebsd-12"), (1103000, "freebsd-11"),
                                       (1403000, "freebsd-14"), (1500029, "freebsd-15"),
                                       (1600001, "freebsd-15"), (903000, "freebsd-10")])
def test_profile_for_osreldate(rel, name):
    assert profile_for_osreldate(rel).name == name


def test_unverified_boundaries_are_stated():
    notes = " ".join(" ".join(p.notes) for p in PROFILES.values())
    assert notes.count("UNVERIFIED") >= 4


def test_every_release_line_has_a_profile():
    assert sorted(PROFILES) == ["compat"] + [f"freebsd-{n}" for n in range(10, 16)]
    for p in PROFILES.values():
        assert p.cites, f"{p.name} names no citation for its boundaries"


@pytest.mark.parametrize("name, ctl, ioctl", [
    ("freebsd-10", True, True), ("freebsd-11", True, True), ("freebsd-12", False, True),
    ("freebsd-13", False, False), ("freebsd-14", False, False), ("freebsd-15", False, False),
])
def test_ctl_and_ioctl_boundaries(name, ctl, ioctl):
    """ctl: in 11.3's procfs_ctl.c, gone from 12.0's procfs.c; the mem ioctls: still in
    12.0's procfs.c, gone from the 13-CURRENT tree (citations ctl.release.11, nodes.12,
    nodes.13)."""
    p = get_profile(name)
    assert (p.has_ctl, p.has_ioctl) == (ctl, ioctl)


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("freebsd-9")
