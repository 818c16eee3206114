"""The compiled twin (_linuxfacts.c) and the pure-Python reference (_linuxparse.py)
give the same answers for the same /proc, and the facts are the right ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsdprocfs.backends import _linuxparse as pure
from bsdprocfs.backends import linux

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

try:
    from bsdprocfs.backends import _linuxfacts as compiled  # type: ignore[attr-defined]
except ImportError:
    compiled = None

needs_compiled = pytest.mark.skipif(compiled is None, reason="_linuxfacts was not built "
                                    "(no C compiler or Python headers at install time)")
TWINS = [pytest.param(pure, id="pure"),
         pytest.param(compiled, id="compiled", marks=needs_compiled)]
PY = sys.executable


def _can_build() -> bool:
    inc = sysconfig.get_paths().get("include") or ""
    return os.path.exists(os.path.join(inc, "Python.h")) and any(
        os.access(os.path.join(d, "gcc"), os.X_OK) for d in os.environ["PATH"].split(":"))


def test_compiled_twin_is_built_and_used_where_a_compiler_is():
    if not _can_build():
        pytest.skip("no gcc or Python headers: the pure twin serves, as designed")
    assert compiled is not None, "setup.py's optional extension failed to build"
    expected = pure if os.environ.get("BSDPROCFS_PURE") == "1" else compiled
    assert linux.facts is expected


def test_pure_switch_selects_the_reference():
    out = subprocess.run(
        [PY, "-c", "from bsdprocfs.backends import linux; print(linux.facts.__name__)"],
        env={**os.environ, "BSDPROCFS_PURE": "1"}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "bsdprocfs.backends._linuxparse"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@needs_compiled
def test_parsers_agree_on_every_process():
    n = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat, status = _read(f"/proc/{name}/stat"), _read(f"/proc/{name}/status")
        except OSError:
            continue
        assert compiled.parse_stat(stat) == pure.parse_stat(stat), stat
        ids = pure.parse_status_ids(status)
        assert ids is not None and ids[0] == int(name)
        assert compiled.parse_status_ids(status) == ids
        n += 1
    assert n > 5


STAT_TAIL = (b" S 1 2 3 0 -1 4194560 100 0 0 0 7 8 0 0 20 0 1 0 12345 1000000 200 "
             b"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_comm_is_cut_at_the_last_paren(comm):
    """comm may hold ')', '(', spaces and newlines: both twins take the LAST ')'."""
    line = b"4242 (" + comm + b")" + STAT_TAIL
    got = compiled.parse_stat(line)
    assert got == pure.parse_stat(line)
    assert got[0] == comm
    assert got[1][0] == ord("S") and got[1][1] == 1 and got[1][22] == (1 << 64) - 1


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_stat_fails_alike(data):
    outcomes = []
    for twin in (compiled, pure):
        try:
            outcomes.append(twin.parse_stat(data))
        except ValueError:
            outcomes.append("ValueError")
    assert outcomes[0] == outcomes[1], data


STATUS = (b"Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nNgid:\t0\nPid:\t7\n"
          b"PPid:\t1\nTracerPid:\t3\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nFDSize:\t64\n"
          b"Groups:\t10 20 30 \nNStgid:\t7\n")


@needs_compiled
@pytest.mark.parametrize("status, expected", [
    (STATUS, (7, 3, 1, 2, 3, 5, 6, 7, (10, 20, 30))),
    (STATUS.replace(b"Groups:\t10 20 30 ", b"Groups:\t"), (7, 3, 1, 2, 3, 5, 6, 7, ())),
    (STATUS.replace(b"TracerPid:\t3\n", b""), None),           # a line missing
    (STATUS.replace(b"Uid:\t1\t2\t3\t4", b"Uid:\t1\t2"), None),  # too few ids
    (STATUS.replace(b"Groups:\t10 20 30 ", b"Groups:\t10 x"), None),
    (STATUS.replace(b"Groups:\t10 20 30 ", b"Groups:\t" + b" ".join(
        b"%d" % g for g in range(2000))), (7, 3, 1, 2, 3, 5, 6, 7, tuple(range(2000)))),
])
def test_status_ids_alike(status, expected):
    assert pure.parse_status_ids(status) == expected
    assert compiled.parse_status_ids(status) == expected


@pytest.fixture
def stopped():
    """A sleeping child stopped with SIGSTOP: none of its /proc facts change."""
    p = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(p.pid, signal.SIGSTOP)
        for _ in range(500):
            if _read(f"/proc/{p.pid}/stat").rsplit(b")", 1)[1][1:2] == b"T":
                break
            time.sleep(0.01)
        yield p
    finally:
        p.kill()
        p.wait()


@needs_compiled
def test_snapshot_and_status_io_agree_on_a_stopped_process(stopped):
    base = f"/proc/{stopped.pid}"
    a, b = compiled.snapshot(base), pure.snapshot(base)
    assert a == b
    comm, f, owner_uid, owner_gid, status, ids = a
    assert comm == b"sleep" and chr(f[0]) == "T" and f[1] == os.getpid()
    assert (owner_uid, owner_gid) == (os.geteuid(), os.getegid())
    assert ids is not None and ids[0] == stopped.pid and status.startswith(b"Name:\tsleep\n")
    sid = f[3]
    for by_pid in (True, False):
        args = ("/proc", stopped.pid, 1, True, True, sid, by_pid)
        got = compiled.status_io(*args)
        assert got == pure.status_io(*args), by_pid
        total, wchan, uts, leader_alive = got
        assert total >= 0 and wchan == b"do_signal_stop"
        assert uts == os.stat(f"{base}/ns/uts").st_ino
        assert leader_alive is (sid != 0)           # our own session's leader lives
    # the CPU-time clock and schedstat count the same run time for one thread
    assert (compiled.status_io("/proc", stopped.pid, 1, False, False, 0, True)[0]
            == int(_read(f"{base}/schedstat").split()[0]))


@pytest.mark.parametrize("twin", TWINS)
def test_vanished_process_raises_file_not_found(twin):
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(FileNotFoundError) as e:
        twin.snapshot(f"/proc/{p.pid}")
    assert e.value.filename == f"/proc/{p.pid}/stat"
    never = (1 << 22) + 5                        # above any pid_max: never a process
    for by_pid in (True, False):
        assert twin.status_io("/proc", never, 1, True, True, p.pid, by_pid) == (
            -1, None, -1, False)
    with pytest.raises(ValueError):
        twin.snapshot("/proc/1\0x")


LEADER = """
import os, sys, time
os.setsid()
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(os.getpid(), child, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("by_pid", [True, False], ids=["by_pid", "by_stat"])
def test_leader_alive_then_zombie(twin, by_pid):
    """FreeBSD clears s_leader at exit: a zombie leader no longer leads (sid 0)."""
    p = subprocess.Popen([PY, "-c", LEADER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    leader, child = (int(x) for x in p.stdout.readline().split())
    try:
        assert twin.status_io("/proc", child, 1, False, False, leader, by_pid)[3] is True
        p.stdin.close()                           # the leader exits, unreaped: a zombie
        for _ in range(500):
            if _read(f"/proc/{leader}/stat").rsplit(b")", 1)[1][1:2] == b"Z":
                break
            time.sleep(0.01)
        assert twin.status_io("/proc", child, 1, False, False, leader, by_pid)[3] is False
        # a pid that leads no session (the child itself, asked as a leader of leader's)
        assert twin.status_io("/proc", leader, 1, False, False, child, by_pid)[3] is False
    finally:
        os.kill(child, signal.SIGKILL)
        p.wait()


THREAD_BURN = """
import sys, threading, time
def burn():
    t = time.thread_time()
    while time.thread_time() - t < 0.2:
        pass
th = threading.Thread(target=burn); th.start(); th.join()
live = threading.Thread(target=sys.stdin.read, daemon=True); live.start()
print("ok", flush=True)
live.join()
"""


@pytest.mark.parametrize("twin", TWINS)
def test_run_time_counts_exited_threads_by_pid(twin):
    """The CPU-time clock keeps an exited thread's time; schedstat of the live
    threads loses it (linux-mapping.md 1.5), which is why the clock is used."""
    p = subprocess.Popen([PY, "-c", THREAD_BURN], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    try:
        assert p.stdout.readline().strip() == b"ok"
        by_clock = twin.status_io("/proc", p.pid, 2, False, False, 0, True)[0]
        by_files = twin.status_io("/proc", p.pid, 2, False, False, 0, False)[0]
        assert by_clock >= 0.2e9
        assert by_files < by_clock - 0.15e9
    finally:
        p.stdin.close()
        p.wait()


@needs_compiled
def test_status_bytes_identical_through_either_twin(stopped, monkeypatch):
    from bsdprocfs import ProcFS
    fs = ProcFS(backend="linux")
    ours = fs.read(stopped.pid, "status")
    monkeypatch.setattr(linux, "facts", pure)
    assert fs.read(stopped.pid, "status") == ours
    monkeypatch.setattr(linux, "facts", compiled)
    assert fs.read(stopped.pid, "status") == ours     # one backend: one boot time
    assert ours.split(b" ")[0] == b"sleep" and b" stopped " in ours


# ------------------------------------------------------------------------ map
def _smaps_block(start: int, end: int, perms: str, dev: str, inode: int, name: bytes,
                 rss: int, pss: int, sc: int, sd: int, pc: int, pd: int, swap: int,
                 flags: str) -> bytes:
    head = b"%x-%x %s 00000000 %s %d" % (start, end, perms.encode(), dev.encode(), inode)
    if name:
        head += b" " * 10 + name
    vals = [("Size", end - start >> 10), ("KernelPageSize", 4), ("MMUPageSize", 4),
            ("Rss", rss), ("Pss", pss), ("Pss_Dirty", 0), ("Shared_Clean", sc),
            ("Shared_Dirty", sd), ("Private_Clean", pc), ("Private_Dirty", pd),
            ("Referenced", rss), ("Anonymous", 0), ("KSM", 0), ("LazyFree", 0),
            ("AnonHugePages", 0), ("ShmemPmdMapped", 0), ("FilePmdMapped", 0),
            ("Shared_Hugetlb", 0), ("Private_Hugetlb", 0), ("Swap", swap), ("SwapPss", 0),
            ("Locked", 0)]
    lines = [head] + [b"%-16s%8d kB" % (k.encode() + b":", v) for k, v in vals]
    lines += [b"THPeligible:    0", b"VmFlags: " + flags.encode()]
    return b"\n".join(lines) + b"\n"


NAMES = st.sampled_from([b"", b"[heap]", b"[stack]", b"[vdso]", b"[vvar]", b"[vsyscall]",
                         b"/usr/lib/libc.so.6", b"/tmp/a file (deleted)", b"/memfd:x (deleted)",
                         b"/SYSV00000000", b"/dev/zero (deleted)", b"/dev/nvidia0",
                         b"/dev/shm/x", b"anon_inode:[perf_event]", b"/dev/dri (deleted)",
                         b"[anon:some name]"])
KB = st.integers(0, 1 << 20)
VMA = st.tuples(st.integers(0, 1 << 30), st.integers(1, 64), st.sampled_from(
    ["rw-p", "r--p", "r-xp", "---p", "rw-s", "r--s"]), st.sampled_from(["00:00", "fd:01", "00:1b"]),
    st.sampled_from([0, 0, 123, 99999999]), NAMES, KB, KB, KB, KB, KB, KB, KB,
    st.sampled_from(["rd wr mr mw me ac sd", "rd mr mw me sd", "ac", "rd ex mr mw me"]))


def _smaps(vmas) -> bytes:
    out, at = [], 0x400000
    for gap, pages, perms, dev, inode, name, *kbs, flags in vmas:
        start = at + gap * 4096
        end = start + pages * 4096
        at = end
        out.append(_smaps_block(start, end, perms, dev, inode, name, *kbs, flags))
    return b"".join(out)


def _maps_of(smaps: bytes) -> bytes:
    return b"".join(ln + b"\n" for ln in smaps.split(b"\n") if ln[:1] in b"0123456789abcdef"
                    and ln)


def _reference_bytes(data: bytes, fast: bool, profile) -> bytes:
    from bsdprocfs.nodes import map as map_node
    from bsdprocfs.records import MapEntry, MapRecord
    rows = pure.map_entries(data, 4242, 777, 1000, 4096, fast)
    return map_node.render(MapRecord(tuple(MapEntry(*r) for r in rows)), profile)


def _type_names(profile) -> tuple[bytes, ...]:
    return tuple(profile.map_type_name(t).encode() for t in pure.MAP_TYPES)


def _anon_flags(profile) -> int:
    from bsdprocfs.profiles import OBJ_ANON, OBJ_SWAP
    return profile.map_flags("swap", OBJ_ANON | OBJ_SWAP)


@needs_compiled
@settings(max_examples=150, deadline=None)
@given(st.lists(VMA, min_size=1, max_size=12), st.booleans(),
       st.sampled_from(["compat", "freebsd-10", "freebsd-13", "freebsd-14"]))
def test_map_twins_agree_on_any_smaps(vmas, fast, profile_name):
    from bsdprocfs.profiles import get_profile
    profile = get_profile(profile_name)
    data = _smaps(vmas)
    if fast:
        data = _maps_of(data)
    rows = pure.map_entries(data, 4242, 777, 1000, 4096, fast)
    assert compiled.map_entries(data, 4242, 777, 1000, 4096, fast) == rows
    assert len(rows) == len(vmas)
    assert compiled.map_render(data, 4242, 777, 1000, 4096, fast, _type_names(profile),
                               _anon_flags(profile)) == _reference_bytes(data, fast, profile)


@needs_compiled
def test_map_rules_on_known_mappings():
    """The rules of linux-mapping.md section 3, through the compiled rows."""
    data = _smaps([
        (0, 4, "rw-p", "00:00", 0, b"[heap]", 8, 8, 0, 0, 0, 8, 0, "rd wr mr mw me ac sd"),
        (1, 1, "r-xp", "00:00", 0, b"[vdso]", 4, 2, 4, 0, 0, 0, 0, "rd ex mr mw me de sd"),
        (1, 2, "---p", "00:00", 0, b"", 0, 0, 0, 0, 0, 0, 0, "mr mw me sd"),
        (1, 2, "r--s", "fd:01", 77, b"/tmp/a b", 8, 4, 8, 0, 0, 0, 0, "rd mr me ms sd"),
        (1, 2, "rw-s", "00:01", 5, b"/memfd:x (deleted)", 4, 4, 0, 0, 0, 4, 0, "rd wr sd"),
        (1, 2, "rw-p", "00:00", 0, b"", 8, 2, 8, 0, 0, 0, 0, "rd wr mr mw me ac sd"),
    ])
    heap, vdso, guard, shared, memfd, forked = compiled.map_entries(
        data, 4242, 777, 1000, 4096, False)
    assert heap[5:] == ("rw-", 1, 0, 0x210, True, False, "swap", None, True, 1000)
    assert heap[2:4] == (2, 2) and heap[4] != 0
    assert vdso[11] == "phys" and vdso[6] == 2                   # round(Rss/Pss)
    assert guard[4] == 0 and guard[6] == 0 and guard[11] == "none"
    assert shared[11:13] == ("vnode", b"/tmp/a b") and not shared[9]
    assert memfd[11:13] == ("swap", None) and memfd[8] == 0
    assert forked[10] is True and forked[6] == 4                 # NC: pages still shared
    # the same object, the same pointer: across reads, twins and processes' files
    again = pure.map_entries(data, 4242, 777, 1000, 4096, False)
    assert [r[4] for r in again] == [r[4] for r in (heap, vdso, guard, shared, memfd, forked)]
    other = compiled.map_entries(data, 4343, 777, 1000, 4096, False)
    assert other[3][4] == shared[4] and other[0][4] != heap[4]   # files shared, anon not


@needs_compiled
def test_map_bad_number_fails_alike():
    data = _smaps([(0, 1, "rw-p", "00:00", 0, b"", 4, 4, 0, 0, 0, 4, 0, "ac")])
    bad = data.replace(b"Rss:                   4 kB", b"Rss:                   x kB")
    assert bad != data
    for twin in (pure, compiled):
        with pytest.raises(ValueError):
            twin.map_entries(bad, 1, 1, 0, 4096, False)
    with pytest.raises(ValueError):
        compiled.map_render(bad, 1, 1, 0, 4096, False, _type_names(_profile("compat")))


def _profile(name):
    from bsdprocfs.profiles import get_profile
    return get_profile(name)


MAPPER = """
import mmap, sys
ms = []
for i in range(300):
    m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
    if i % 2:
        m[0:1] = b"x"
    ms.append(m)
f = open(sys.argv[1], "rb")
ms.append(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ))
print("ok", flush=True)
sys.stdin.read()
"""


@needs_compiled
@pytest.mark.parametrize("profile", ["compat", "freebsd-10"])
def test_map_node_bytes_equal_the_record_rendering(tmp_path, profile):
    """The FUSE/API bytes (one compiled pass) equal render(record) of the very same
    smaps, for a real process.  One smaps snapshot feeds both: Pss, and so ref_count,
    moves whenever any other process maps the same library."""
    import bsdprocfs
    from bsdprocfs import ProcFS
    target = tmp_path / "mapped file"
    target.write_bytes(b"x" * 8192)
    p = subprocess.Popen([PY, "-c", MAPPER, str(target)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    try:
        assert p.stdout.readline().strip() == b"ok"
        fs = ProcFS(backend="linux", profile=profile)
        proc = fs.backend.lookup(p.pid)
        smaps = _read(f"/proc/{p.pid}/smaps")
        args = (smaps, p.pid, proc.ident.start_ticks, proc.ident.creds.ruid, linux.PAGE_SIZE,
                False)
        rows = pure.map_entries(*args)
        assert compiled.map_entries(*args) == rows
        from bsdprocfs.nodes import map as map_node
        from bsdprocfs.records import MapEntry, MapRecord
        reference = map_node.render(MapRecord(tuple(MapEntry(*r) for r in rows)), fs.profile)
        assert compiled.map_render(*args, _type_names(fs.profile),
                                   _anon_flags(fs.profile)) == reference
        assert len(rows) >= 300 and str(target).encode() in reference
        # the node itself takes the compiled pass, and the pure twin's path still works
        data = fs.read(p.pid, "map")
        assert len(bsdprocfs.parse("map", data, profile).entries) == len(rows)
        with linux_pure(fs):
            again = fs.read(p.pid, "map")
        assert len(bsdprocfs.parse("map", again, profile).entries) == len(rows)
    finally:
        p.kill()
        p.wait()


class linux_pure:
    """Within: the backend's facts are the pure twin's (the tree falls back to render)."""

    def __init__(self, fs) -> None:
        self.fs = fs

    def __enter__(self) -> None:
        self.saved = linux.facts
        linux.facts = pure

    def __exit__(self, *exc) -> None:
        linux.facts = self.saved


def test_status_ids_order_is_credentials_field_order():
    """linux.lookup builds Credentials(*ids[2:]): a reordered record must fail here."""
    import dataclasses

    from bsdprocfs.records import Credentials
    assert [f.name for f in dataclasses.fields(Credentials)] == [
        "ruid", "euid", "suid", "rgid", "egid", "sgid", "groups"]
    ids = pure.parse_status_ids(STATUS)
    assert ids is not None
    c = Credentials(*ids[2:])
    assert (c.ruid, c.euid, c.suid, c.rgid, c.egid, c.sgid, c.groups) == (
        1, 2, 3, 5, 6, 7, (10, 20, 30))


WORD = st.sampled_from([b"0", b"7", b"-2", b"+5", b"1_0", b"3x", b"-", b"--1", b"99999999999999999999999"])
SEP = st.sampled_from([b" ", b"\t", b"\r", b"  ", b"\x0b"])
VALUE = st.lists(st.tuples(SEP, WORD), max_size=5).map(lambda ws: b"".join(a + b for a, b in ws))


@needs_compiled
@settings(max_examples=600, deadline=None)
@given(st.lists(VALUE, min_size=5, max_size=5), st.booleans())
def test_status_ids_twins_agree_on_any_values(values, skeleton_ok):
    keys = [b"Tgid:", b"TracerPid:", b"Uid:", b"Gid:", b"Groups:"]
    if not skeleton_ok:
        keys[2] = b"Uid "
    data = b"Name:\tx\n" + b"".join(k + v + b"\n" for k, v in zip(keys, values, strict=True))
    assert compiled.parse_status_ids(data) == pure.parse_status_ids(data), data
