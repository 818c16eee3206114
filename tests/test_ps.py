"""bsdprocfs ps: FreeBSD ps(1) over the shim, checked against procps and FreeBSD's rules."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from _ttyhelp import TRACER, python_child, reap, spawn_on_pty

from bsdprocfs.cli import main
from bsdprocfs.records import ProcExtras, StatusRecord, TimeVal
from bsdprocfs.tools import ps
from conftest import needs_ps, needs_root, proc_state, wait_for

BIN = [sys.executable, "-m", "bsdprocfs"]
GOLDEN = pathlib.Path(__file__).parent / "golden"
TEST_USER = "bsdpfs_ps"


def run_ps(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(["ps", *argv])
    cap = capsys.readouterr()
    run_ps.err = cap.err
    return rc, cap.out.splitlines()


def ps_json(capsys, *argv: str) -> list[dict]:
    rc = main(["ps", "--json", *argv])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    return json.loads(out)


def field_of(capsys, pid: int, kw: str) -> str:
    rows = ps_json(capsys, "-p", str(pid), "-o", kw)
    assert len(rows) == 1, rows
    return rows[0][kw]


@pytest.fixture
def test_user():
    subprocess.run(["useradd", "-M", TEST_USER], capture_output=True)
    import pwd
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pytest.skip(f"cannot create user {TEST_USER}")


# ------------------------------------------------------------- vs procps
def _tt_of_procps(tty: str) -> str:
    if tty == "?":
        return "-"
    for pre in ("tty", "cua"):
        if tty.startswith(pre):
            tty = tty[3:]
    return tty[4:] if tty.startswith("pts/") else tty


def _procps() -> dict[int, tuple[str, ...]]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,tty=,uid=,stat=,comm="],
                         capture_output=True, text=True, check=True,
                         errors="surrogateescape").stdout
    rows = {}
    for line in out.splitlines():
        f = line.split(None, 7)
        rows[int(f[0])] = tuple(f[1:7]) + (f[7] if len(f) > 7 else "",)
    return rows


@needs_ps
@pytest.mark.timeout(60)
def test_all_processes_agree_with_procps():
    before = _procps()
    # comm is raw bytes (other tests' subjects have names with high bytes): keep them
    ours_out = subprocess.run(BIN + ["ps", "-ax", "-o", "pid,ppid,pgid,sid,tt,uid,comm",
                                     "-ww"], capture_output=True, text=True, check=True,
                              errors="surrogateescape").stdout
    after = _procps()
    lines = ours_out.splitlines()
    assert lines[0].split() == ["PID", "PPID", "PGID", "SID", "TT", "UID", "COMMAND"]
    ours = {}
    for line in lines[1:]:
        f = line.split(None, 6)
        ours[int(f[0])] = f[1:]
    stable = [p for p in before if after.get(p) == before[p]]
    leaders = {p for p, r in before.items() if int(r[2]) == p and not r[5].startswith("Z")}
    compared = 0
    for pid in stable:
        if pid not in ours:
            continue                     # our own short-lived helpers, or thread races
        ppid, pgid, sid, tty, uid, _stat, comm = before[pid]
        o_ppid, o_pgid, o_sid, o_tt, o_uid, o_comm = (ours[pid] + [""])[:6]
        assert (o_ppid, o_pgid, o_uid) == (ppid, pgid, uid), (pid, ours[pid], before[pid])
        # FreeBSD s_leader: 0 once the session leader has gone.
        assert o_sid == sid or (o_sid == "0" and int(sid) not in leaders), (pid, o_sid, sid)
        assert o_tt == _tt_of_procps(tty), (pid, o_tt, tty)
        # procps: the kernel's 15-byte comm (kernel threads: full name); ours: FreeBSD's
        # 19-byte p_comm, rebuilt from argv[0] when Linux cut it at 15.
        # procps shows each byte it cannot print as '?'
        o_comm = "".join("?" if ("\udc80" <= c <= "\udcff" or not c.isprintable()) else c
                         for c in o_comm)
        if comm.startswith("kworker/") and "-" in comm:
            # a workqueue worker's name carries the workqueue it is running right now:
            # the kernel rewrites it, so it can change and change back between snapshots
            o_comm, comm = o_comm.split("-", 1)[0], comm.split("-", 1)[0]
        assert o_comm == comm[:19] or (len(comm) == 15 and o_comm.startswith(comm)), (
            pid, o_comm, comm)
        compared += 1
    assert compared >= 10 and 1 in ours
    # Every process procps saw in both snapshots is in ours (pid 2's children included).
    missing = [p for p in stable if p not in ours]
    assert not missing, missing


# ------------------------------------------------------------ STAT letters
@pytest.fixture
def kids():
    started: list[subprocess.Popen] = []
    yield started
    for p in reversed(started):
        try:
            p.send_signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        reap(p)


@pytest.mark.timeout(30)
def test_stat_stopped_and_zombie(capsys, kids):
    stopped = subprocess.Popen(["sleep", "1000"])
    kids.append(stopped)
    os.kill(stopped.pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(stopped.pid) == "T")
    assert field_of(capsys, stopped.pid, "state") == "T"

    zombie = subprocess.Popen(["true"])
    kids.append(zombie)
    wait_for(lambda: proc_state(zombie.pid) == "Z")
    rows = ps_json(capsys, "-p", str(zombie.pid), "-o", "pid,state,command,comm")
    assert rows == [{"pid": str(zombie.pid), "state": "Z", "command": "<defunct>",
                     "comm": "true"}]
    # procfs itself still hides the zombie (the ps extension is the only way in).
    from bsdprocfs import ProcFS
    assert zombie.pid not in ProcFS(backend="linux").pids()


@pytest.mark.timeout(30)
def test_stat_session_leader_and_nice(capsys, kids):
    leader = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    niced = subprocess.Popen(["nice", "-n", "5", "sleep", "1000"])
    kids += [leader, niced]
    for p in (leader, niced):
        wait_for(lambda p=p: proc_state(p.pid) == "S" and pathlib.Path(
            f"/proc/{p.pid}/cmdline").read_bytes().startswith(b"sleep\0"))
    assert field_of(capsys, leader.pid, "state") == "Ss"
    assert field_of(capsys, niced.pid, "state") == "SN"
    assert field_of(capsys, niced.pid, "nice") == "5"


@needs_root
@pytest.mark.timeout(30)
def test_stat_raised_priority(capsys, kids):
    p = subprocess.Popen(["nice", "-n", "-5", "sleep", "1000"])
    kids.append(p)
    wait_for(lambda: pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(b"sleep\0")
             and proc_state(p.pid) == "S")
    assert field_of(capsys, p.pid, "state") == "S<"
    assert ps_json(capsys, "-p", str(p.pid), "-o", "ni") == [{"nice": "-5"}]   # alias


@pytest.mark.timeout(30)
def test_stat_foreground_on_pty(capsys, kids):
    p, master, name = spawn_on_pty(["sleep", "1000"])
    kids.append(p)
    try:
        wait_for(lambda: pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(b"sleep\0")
                 and proc_state(p.pid) == "S")
        row = ps_json(capsys, "-p", str(p.pid), "-o", "pid,tt,state,tty,tpgid,tsid,sid")[0]
        assert row["state"] == "Ss+"
        assert row["tt"] == name.removeprefix("/dev/pts/")
        assert row["tty"] == name.removeprefix("/dev/")
        assert row["tpgid"] == row["tsid"] == row["sid"] == str(p.pid)
        # -t selects by terminal, in any of FreeBSD's three spellings.
        for spelling in (name, name[5:], name.removeprefix("/dev/pts/")):
            rows = ps_json(capsys, "-t", spelling, "-o", "pid")
            assert [r["pid"] for r in rows] == [str(p.pid)]
    finally:
        reap(p)
        os.close(master)


@pytest.mark.timeout(30)
def test_stat_multithreaded_has_no_extra_letter(capsys, kids):
    p = python_child("import threading, time\n"
                     "for _ in range(3): threading.Thread(target=time.sleep, args=(1000,),"
                     " daemon=True).start()\n"
                     "print('up', flush=True)\ntime.sleep(1000)", stdout=subprocess.PIPE)
    kids.append(p)
    assert p.stdout.readline() == b"up\n"
    wait_for(lambda: proc_state(p.pid) == "S")
    row = ps_json(capsys, "-p", str(p.pid), "-o", "state,nlwp")[0]
    # FreeBSD's state() has no multithreading letter (procps' 'l' is Linux-only);
    # the thread count is the nlwp keyword.
    assert row == {"state": "S", "nlwp": "4"}


@pytest.mark.timeout(30)
def test_stat_traced(capsys, kids):
    target = subprocess.Popen(["sleep", "1000"])
    kids.append(target)
    wait_for(lambda: proc_state(target.pid) == "S")
    tracer = subprocess.Popen([sys.executable, "-c", TRACER, str(target.pid)],
                              stdout=subprocess.PIPE)
    kids.insert(0, tracer)
    assert tracer.stdout.readline() == b"attached\n"
    wait_for(lambda: proc_state(target.pid) == "S")
    row = ps_json(capsys, "-p", str(target.pid), "-o", "state,tracer")[0]
    assert row == {"state": "SX", "tracer": str(tracer.pid)}
    reap(tracer)                              # the kernel detaches on tracer exit
    kids.remove(tracer)
    wait_for(lambda: field_of(capsys, target.pid, "state") == "S")


@needs_root
@pytest.mark.timeout(30)
def test_stat_locked_pages(capsys, kids):
    p = python_child("import ctypes, time\nassert ctypes.CDLL(None).mlockall(1) == 0\n"
                     "print('up', flush=True)\ntime.sleep(1000)", stdout=subprocess.PIPE)
    kids.append(p)
    assert p.stdout.readline() == b"up\n"
    wait_for(lambda: proc_state(p.pid) == "S")
    assert field_of(capsys, p.pid, "state") == "SL"


# -------------------------------------------------------------- selection
@pytest.mark.timeout(60)
def test_default_selection_is_own_processes_on_a_terminal(tmp_path, kids):
    """Run on a pty: lists the pty's processes (itself included, in the
    foreground), not ours, which have no terminal."""
    out = tmp_path / "ps.out"
    script = f"{' '.join(BIN)} ps > {out}; echo done >> {out}.done"
    p, master, name = spawn_on_pty(["sh", "-c", script])
    kids.append(p)
    try:
        wait_for(lambda: (tmp_path / "ps.out.done").exists(), timeout=30)
    finally:
        reap(p)
        os.close(master)
    lines = out.read_text().splitlines()
    assert lines[0].split() == ["PID", "TT", "STAT", "TIME", "COMMAND"]
    tt = name.removeprefix("/dev/pts/")
    rows = [ln.split(None, 4) for ln in lines[1:]]
    # Our uid's processes that have a terminal (other tests' ptys may show up too).
    assert rows and all(r[1] != "-" for r in rows)
    assert str(os.getpid()) not in [r[0] for r in rows]
    mine = [r for r in rows if "bsdprocfs ps" in r[4] and r[1] == tt]
    assert mine and mine[0][2].endswith("+"), rows
    assert any(r[2] == "Ss" or r[2] == "Ss+" for r in rows if r[4].startswith("sh -c"))


@pytest.mark.timeout(30)
def test_user_selection_and_columns(capsys, kids, test_user):
    p = subprocess.Popen(["setpriv", f"--reuid={test_user.pw_uid}",
                          f"--regid={test_user.pw_gid}", "--clear-groups",
                          "sleep", "1000"])
    kids.append(p)
    wait_for(lambda: pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes().startswith(b"sleep\0"))
    rows = ps_json(capsys, "-U", TEST_USER, "-o", "user,pid,uid,ruser,command")
    assert {"user": TEST_USER, "pid": str(p.pid), "uid": str(test_user.pw_uid),
            "ruser": TEST_USER, "command": "sleep 1000"} in rows
    assert all(r["user"] == TEST_USER for r in rows)
    # -a -x shows it too; the default (own processes with a tty) does not.
    assert str(p.pid) in [r["pid"] for r in ps_json(capsys, "-ax", "-o", "pid")]
    assert str(p.pid) not in [r["pid"] for r in ps_json(capsys, "-o", "pid")]
    rc, lines = run_ps(capsys, "-U", "no_such_user_bsdpfs")
    assert rc == 1 and lines == []


def test_pid_list_and_formats(capsys):
    me = os.getpid()
    rc, lines = run_ps(capsys, "-p", f"{me},1", "-ww")
    assert rc == 0
    assert lines[0].split() == ["PID", "TT", "STAT", "TIME", "COMMAND"]
    assert [ln.split()[0] for ln in lines[1:]] == ["1", str(me)]     # sorted by pid
    rc, lines = run_ps(capsys, "-u", "-p", str(me))
    assert lines[0].split() == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TT", "STAT",
                                "STARTED", "TIME", "COMMAND"]
    rc, lines = run_ps(capsys, "-j", "-p", str(me))
    assert lines[0].split() == ["USER", "PID", "PPID", "PGID", "SID", "JOBC", "STAT", "TT",
                                "TIME", "COMMAND"]
    rc, lines = run_ps(capsys, "-l", "-p", str(me))
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "PRI", "NI", "VSZ", "RSS",
                                "MWCHAN", "STAT", "TT", "TIME", "COMMAND"]
    rc, lines = run_ps(capsys, "-o", "pid=,comm=", "-p", str(me))
    assert lines[0].split() == [",comm="]    # FreeBSD: "kw=" takes the rest as header
    rc, lines = run_ps(capsys, "-o", "pid=", "-p", str(me))
    assert lines == [str(me)]                # every header empty: no header line
    rc, lines = run_ps(capsys, "-o", "pid,bogus", "-p", str(me))
    assert rc == 1 and lines[0].strip() == "PID"
    assert "bogus: keyword not found" in run_ps.err


def test_width_truncates_only_the_last_column(capsys, monkeypatch):
    me = os.getpid()
    monkeypatch.setenv("COLUMNS", "40")
    rc, lines = run_ps(capsys, "-p", str(me), "-o", "pid,command")
    assert len(lines[1]) == 40
    rc, lines = run_ps(capsys, "-ww", "-p", str(me), "-o", "pid,command")
    assert len(lines[1]) > 40 and "python" in lines[1]
    rc, wlines = run_ps(capsys, "-w", "-p", str(me), "-o", "pid,command")
    assert len(wlines[1]) <= 131


def test_time_and_tt_helpers():
    assert ps.printtime(0) == "0:00.00"
    assert ps.printtime(4_995_000) == "0:05.00"       # rounded to hundredths
    assert ps.printtime(61_234_567) == "1:01.23"
    assert ps.printtime(3_600_000_000) == "60:00.00"
    assert ps.elapsed(59) == "00:59" and ps.elapsed(3661) == "01:01:01"
    assert ps.elapsed(90061) == "  1-01:01:01"
    assert ps.fmt_argv((b"/bin/sleep", b"10"), b"sleep") == "/bin/sleep 10"
    assert ps.fmt_argv((b"python3", b"x.py"), b"bsdprocfs") == "python3 x.py (bsdprocfs)"
    assert ps.fmt_argv((b"sshd: root@pts/0",), b"sshd") == "sshd: root@pts/0 (sshd)"
    assert ps.fmt_argv((), b"kthreadd") == "[kthreadd]"
    assert ps.fmt_argv((b"a\nb",), b"a\nb") == "a\\nb"


# ----------------------------------------------------------------- golden
def _ki(pid, *, tty=None, comm=b"sh", args=(b"-sh",), state="S", sldr=False, pgid=None,
        tpgid=-1, nice=0, uid=0, cpu_us=0, start=0, rss=0, vsz=0, system=False,
        zombie=False, ppid=1, sid=None):
    st = StatusRecord(comm=comm, pid=pid, ppid=ppid, pgid=pgid or pid,
                      sid=sid or (pid if sldr else 1),
                      tty=tty, ctty=tty is not None, sldr=sldr, start=TimeVal(start, 0),
                      utime=TimeVal.from_us(cpu_us), stime=TimeVal(0, 0), wmesg="ttyin",
                      euid=uid, ruid=uid, rgid=0, groups=(0,), jail=None)
    ex = ProcExtras(state=state, tpgid=tpgid, nice=nice, rss_pages=rss, vsz=vsz,
                    system=system, tty_dev=0x8800 if tty else 0, page_size=4096)
    return ps.KInfo(st, ex, args, zombie=zombie)


GOLDEN_PROCS = [
    _ki(1, comm=b"init", args=(b"/sbin/init",), sldr=True, cpu_us=110_000, ppid=0),
    _ki(12, comm=b"idle", args=(), system=True, state="R", cpu_us=99_999_990_000),
    _ki(741, tty="ttyv0", comm=b"getty", args=(b"/usr/libexec/getty", b"Pc", b"ttyv0"),
        sldr=True, tpgid=741, rss=300, vsz=13_000_000),
    _ki(1023, tty="pts/0", comm=b"sh", args=(b"-sh",), sldr=True, tpgid=1040, cpu_us=30_000,
        rss=900, vsz=14_000_000),
    _ki(1040, tty="pts/0", comm=b"ps", args=(b"ps",), state="R", tpgid=1040, ppid=1023,
        sid=1023,
        rss=700, vsz=13_500_000),
    _ki(1041, tty="pts/0", comm=b"sleep", args=(), zombie=True, state="Z", ppid=1023,
        pgid=1023, tpgid=1040, sid=1023),
]


@pytest.mark.parametrize("name,fmt", [
    ("ps_default", ps.DFMT), ("ps_u", ps.UFMT), ("ps_j", ps.JFMT), ("ps_l", ps.LFMT),
    ("ps_o", "pid,ppid,pgid,sid,tt,uid,comm")])
def test_golden_layouts(name, fmt, monkeypatch):
    """Headers, right/left justification, dynamic widths and the unpadded last
    column, as bin/ps builds them (see tests/golden/README)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    cols: list[ps.Column] = []
    ps.parsefmt(fmt, cols, False, [])
    kis = sorted(GOLDEN_PROCS, key=ps.pscomp_key)
    ps._fill_jobc(kis)
    ctx = ps.Ctx(now=3600.0, mempages=262144)
    got = "\n".join(ps.render(kis, cols, ctx, 79)) + "\n"
    assert got == (GOLDEN / f"{name}.txt").read_text()


def test_vis_fast_path_encodes_as_the_per_character_rule():
    """_vis returns printable text as is; that must be exactly what the per-character
    strvis rule gives, for any argv bytes (control, backslash, undecodable, UTF-8)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bsdprocfs.tools.ps import _vis, _vis_each

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: t.encode()),
           st.booleans(), st.booleans(), st.booleans(), st.booleans())
    def check(b: bytes, tab: bool, nl: bool, cstyle: bool, noslash: bool) -> None:
        s = b.decode("utf-8", "surrogateescape")
        kw = {"tab": tab, "nl": nl, "cstyle": cstyle, "noslash": noslash}
        assert _vis(s, **kw) == _vis_each(s, **kw)

    check()
    assert _vis("a\\b", tab=False, nl=True, cstyle=True, noslash=False) == "a\\\\b"
    assert _vis("sleep 60", tab=False, nl=True, cstyle=True, noslash=False) == "sleep 60"
