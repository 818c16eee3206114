"""The hot-path shortcuts (records.fast_init, the cached Reader, map's hoisted render)
must behave exactly like what they replace."""

from __future__ import annotations

import dataclasses
import inspect
import os

import pytest

from bsdprocfs import records
from bsdprocfs.access import Reader
from bsdprocfs.nodes import map as n_map
from bsdprocfs.profiles import PROFILES

RECORD_TYPES = [obj for obj in vars(records).values()
                if isinstance(obj, type) and dataclasses.is_dataclass(obj)] + [Reader]


def _sample(cls: type) -> object:
    args = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            continue
        args[f.name] = 7 if "int" in str(f.type) else ("x" if "str" in str(f.type) else ())
    return cls(**args)


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
def test_fast_init_keeps_the_frozen_dataclass_contract(cls):
    assert len(RECORD_TYPES) >= 14
    params = inspect.signature(cls).parameters
    fields = dataclasses.fields(cls)
    assert list(params) == [f.name for f in fields]
    for f in fields:                    # same defaults as the dataclass declares
        want = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert params[f.name].default == want
    a, b = _sample(cls), _sample(cls)
    assert a == b and hash(a) == hash(b)
    first = fields[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, first, 1)
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert dataclasses.replace(a) == a


def test_fast_init_positional_and_keyword_agree():
    tv = records.TimeVal(3, 4)
    assert tv == records.TimeVal(sec=3, usec=4) and tv.total_us == 3_000_004
    rec = records.StatusRecord(b"sh", 1, 0, 1, 1, None, False, True, tv, tv, tv, "nochan",
                               0, 0, 0, (0,), None)
    assert rec.extras is None
    # extras is compare=False: records differing only there are equal
    assert rec == dataclasses.replace(rec, extras=records.ProcExtras(state="R"))
    with pytest.raises(TypeError):
        records.TimeVal(1)              # a missing argument still fails like the original


def test_reader_current_is_cached_but_follows_fork():
    r = Reader.current()
    assert r is Reader.current()
    assert (r.pid, r.uid, r.gid, r.groups) == (os.getpid(), os.geteuid(), os.getegid(),
                                               tuple(os.getgroups()))
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:                      # pragma: no cover - the child reports through the pipe
        try:
            os.write(wfd, b"%d" % Reader.current().pid)
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        got = int(os.read(rfd, 64))
    finally:
        os.close(rfd)
        os.waitpid(child, 0)
    assert got == child != r.pid


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_map_render_matches_render_entry(profile):
    prof = PROFILES[profile]
    entries = []
    for i, (typ, path) in enumerate([("vnode", b"/bin/sh"), ("swap", None), ("phys", None),
                                     ("none", None), ("device", b"/dev/null"),
                                     ("vnode", b"/tmp/a b"), ("swap", None)]):
        entries.append(records.MapEntry(
            0x1000 * (i + 1), 0x1000 * (i + 2), i, i // 2, 0 if typ == "none" else 0xFFF0 + i,
            ("r-x", "rw-", "---", "r--")[i % 4], i % 3, 0, 0x210 if typ == "swap" else 0,
            i % 2 == 0, i == 1, typ, path, i % 3 == 0, 0 if i % 3 == 0 else -1))
    rec = records.MapRecord(tuple(entries))
    want = b"".join(n_map.render_entry(e, prof) for e in rec.entries)
    assert n_map.render(rec, prof) == want
    # parse gives the profile's type names (OBJT-era "default"), which render back as is
    assert n_map.render(n_map.parse(want, prof), prof) == want
