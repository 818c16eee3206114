"""bsdprocfs w: FreeBSD w(1) layout, logins from utmp, WHAT through the shim."""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from _ttyhelp import reap, spawn_on_pty

from bsdprocfs.tools import w
from conftest import needs_root, proc_state, wait_for

BIN = [sys.executable, "-m", "bsdprocfs"]
GOLDEN = pathlib.Path(__file__).parent / "golden"
TEST_USER = "bsdpfs_ps"
UTMP_LOCK = "/tmp/bsdprocfs-test-utmp.lock"


def test_uptime_wording():
    """w.c pr_header(): rounding to the minute past 60 s, FreeBSD's plurals."""
    assert w.uptime_text(1) == " 1 sec,"
    assert w.uptime_text(59) == " 59 secs,"
    assert w.uptime_text(89) == " 1 min,"          # 89 s + 30 rounds to 1 min
    assert w.uptime_text(150) == " 3 mins,"
    assert w.uptime_text(3600) == " 1 hr,"
    assert w.uptime_text(7200 + 120) == "  2:02,"
    assert w.uptime_text(86400) == " 1 day, 0 sec,"
    assert w.uptime_text(2 * 86400 + 5 * 3600 + 7 * 60) == " 2 days,  5:07,"
    assert w.uptime_text(3 * 86400 + 3600) == " 3 days, 1 hr,"


def test_header_line(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    now = 9 * 3600 + 5 * 60
    assert w.header(now, 2 * 86400 + 3 * 3600 + 4 * 60, 1, (0.0, 0.5, 1.25)) == (
        " 9:05AM  up 2 days,  3:04, 1 user, load averages: 0.00, 0.50, 1.25")
    assert w.header(now + 12 * 3600, 59, 3, (1, 2, 3)).startswith(" 9:05PM  up 59 secs, 3 users,")


def test_idle_and_login_fields(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert w.pr_idle(59) == ("     - ", 0)
    assert w.pr_idle(60 * 7) == ("     7 ", 0)
    assert w.pr_idle(3600 * 2 + 60 * 3) == ("  2:03 ", 0)
    assert w.pr_idle(36 * 3600) == (" 1day  ", 0)
    assert w.pr_idle(12 * 86400) == (" 12days ", 1)
    now = 10 * 86400 + 15 * 3600
    assert w.pr_attime(now - 60, now) == (" 2:59PM", 0)
    assert w.pr_attime(now - 86400, now) == ("Sat03PM", 0)     # not today
    assert w.pr_attime(now - 8 * 86400, now) == ("03Jan70", 0)  # over a week


def test_golden_layout(monkeypatch):
    """The column header and one row as w.c prints them (tests/golden/w.txt)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    now = 10 * 86400 + 15 * 3600
    ents = [w.Entry(w.Utmp(w.USER_PROCESS, 1, "pts/0", b"ts/0", "alice", "10.0.0.1", now - 600),
                    0, 30, "10.0.0.1", None, "vi w.c"),
            w.Entry(w.Utmp(w.USER_PROCESS, 2, "ttyv0", b"v0", "root", "", now - 2 * 86400),
                    0, 40 * 3600, "-", None, "-")]
    got = "\n".join(w.render(ents, now, 2, 3 * 86400 + 3600 + 60, (0.1, 0.2, 0.3), True, 79))
    assert got + "\n" == (GOLDEN / "w.txt").read_text()


def test_utmp_round_trip(tmp_path):
    rec = w.Utmp(w.USER_PROCESS, 42, "pts/9", b"ts/9", "bob", "host.example", 1234567890, 5)
    path = tmp_path / "utmp"
    path.write_bytes(rec.pack() * 2)
    assert len(rec.pack()) == 384
    assert w.read_utmp(str(path)) == [rec, rec]
    assert w.read_utmp(str(tmp_path / "missing")) == []


@pytest.fixture
def login():
    """A 'login' on a fresh pty: sleep as the session leader and foreground job."""
    subprocess.run(["useradd", "-M", TEST_USER], capture_output=True)
    p, master, name = spawn_on_pty(["sleep", "1000"])
    try:
        wait_for(lambda: pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(b"sleep\0")
                 and proc_state(p.pid) == "S")
        line = name.removeprefix("/dev/")
        rec = w.Utmp(w.USER_PROCESS, p.pid, line, line[-4:].encode(), TEST_USER,
                     "testhost", int(time.time()) - 120)
        yield p, line, rec
    finally:
        reap(p)
        os.close(master)


def _row_for(lines: list[str], line: str) -> str:
    rows = [ln for ln in lines if ln.startswith(TEST_USER) and f" {line} " in ln]
    assert len(rows) == 1, lines
    return rows[0]


@pytest.mark.timeout(30)
def test_w_shows_login_from_a_utmp_file(tmp_path, login):
    p, line, rec = login
    utmp = tmp_path / "utmp"
    utmp.write_bytes(rec.pack())
    out = subprocess.run(BIN + ["w", "-n", "--utmp", str(utmp)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert " up " in out[0] and ", 1 user, load averages: " in out[0]
    assert out[1].split() == ["USER", "TTY", "FROM", "LOGIN@", "IDLE", "WHAT"]
    row = _row_for(out, line)
    assert row.split()[:3] == [TEST_USER, line, "testhost"]
    assert row.endswith("sleep 1000")
    data = json.loads(subprocess.run(BIN + ["w", "--json", "-n", "--utmp", str(utmp)],
                                     capture_output=True, text=True, check=True).stdout)
    assert data[0]["tty"] == line and data[0]["what"] == "sleep 1000"
    assert data[0]["pid"] == p.pid and data[0]["user"] == TEST_USER
    # -h drops both header lines; a USER argument filters rows.
    out = subprocess.run(BIN + ["w", "-h", "-n", "--utmp", str(utmp)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == 1 and out[0].startswith(TEST_USER)
    out = subprocess.run(BIN + ["w", "-n", "--utmp", str(utmp), "nobody_else"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 2 and ", 1 user," in out[0]


@needs_root
@pytest.mark.timeout(30)
def test_w_reads_the_default_utmp(login):
    """Writes a real record into /var/run/utmp (restored afterwards, under a lock
    so parallel test workers never interleave)."""
    p, line, rec = login
    path = pathlib.Path(w.DEFAULT_UTMP)
    with open(UTMP_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = path.read_bytes() if path.exists() else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((saved or b"") + rec.pack())
            out = subprocess.run(BIN + ["w", "-n"], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
        finally:
            if saved is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(saved)
    row = _row_for(out, line)
    assert row.endswith("sleep 1000")
