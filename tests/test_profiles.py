"""Each profile's node set, rlimit count and map vocabulary."""

from __future__ import annotations

import pytest

import bsdprocfs
from bsdprocfs.profiles import PROFILES, get_profile, profile_for_osreldate
from bsdprocfs.tree import PID_NODES, ROOT_NODES

ALL = ["cmdline", "ctl", "dbregs", "etype", "fpregs", "map", "mem", "note", "notepg", "regs",
       "rlimit", "status", "osrel", "file", "exe"]


@pytest.mark.parametrize("name, ctl, self_exe, n", [
    ("freebsd-10", True, False, 14), ("freebsd-13", False, False, 15),
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
        assert root[0] == "curproc"
        assert ("self" in root) == get_profile(name).has_self_exe


def test_map_vocabulary():
    assert "default" in get_profile("freebsd-13").map_types
    assert "default" not in get_profile("freebsd-14").map_types
    assert get_profile("freebsd-10").map_type_name("phys") == "default"
    assert get_profile("compat").map_type_name("phys") == "phys"


@pytest.mark.parametrize("rel, name", [(1004000, "freebsd-10"), (1302000, "freebsd-13"),
                                       (1203000, "freebsd-13"), (1403000, "freebsd-14"),
                                       (1500029, "freebsd-15"), (1600001, "freebsd-15")])
def test_profile_for_osreldate(rel, name):
    assert profile_for_osreldate(rel).name == name


def test_unverified_boundaries_are_stated():
    notes = " ".join(" ".join(p.notes) for p in PROFILES.values())
    assert notes.count("UNVERIFIED") >= 4


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("freebsd-9")
