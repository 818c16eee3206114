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
