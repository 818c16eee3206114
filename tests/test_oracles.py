"""Oracles nobody here wrote: procps ps for ids and tty, getrusage for times."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import needs_ps

BSDPROCFS = [sys.executable, "-m", "bsdprocfs"]


def ps_snapshot() -> dict[int, tuple[str, ...]]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,tty=,euid=,ruid="],
                         capture_output=True, text=True, check=True).stdout
    snap = {}
    for line in out.splitlines():
        f = line.split()
        snap[int(f[0])] = tuple(f[1:])
    return snap


def leader_alive(sid: int) -> bool:
    try:
        with open(f"/proc/{sid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return False
    r = st[st.rindex(b")") + 2:].split()
    return r[0] not in (b"Z", b"X") and int(r[3]) == sid


@needs_ps
def test_every_process_agrees_with_procps_ps():
    before = ps_snapshot()
    pids = sorted(before)
    # One CLI run per process, as a user would call it; batched through one shell.
    script = "\n".join(f"bsdprocfs_cat {p}" for p in pids)
    out = subprocess.run(
        ["sh", "-c", f'bsdprocfs_cat() {{ {" ".join(BSDPROCFS)} cat "$1" status || echo "GONE $1"; }}\n{script}'],
        capture_output=True, check=False).stdout
    after = ps_snapshot()
    lines = out.split(b"\n")
    compared = 0
    for line in lines:
        if not line or line.startswith(b"GONE"):
            continue
        f = line.split(b" ")
        pid = int(f[1])
        if pid not in before or before.get(pid) != after.get(pid):
            continue                    # started, ended or changed between snapshots
        ppid, pgid, sid, tty, euid, ruid = before[pid]
        ours_ppid, ours_pgid, ours_sid = f[2].decode(), f[3].decode(), f[4].decode()
        ours_tty = f[5].decode()
        # ... wchan euid ruid rgid[,groups] jail: the ids counted from the end
        ours_euid, ours_ruid = f[-4].decode(), f[-3].decode()
        assert ours_ppid == ppid, (pid, line)
        assert ours_pgid == pgid, (pid, line)
        expected_sid = sid if (sid == "0" or int(sid) == pid or leader_alive(int(sid))) else "0"
        assert ours_sid == expected_sid, (pid, line)
        assert ours_tty == ("-" if tty == "?" else tty), (pid, line)
        assert ours_euid == euid, (pid, line)
        assert ours_ruid == ruid, (pid, line)
        compared += 1
    assert compared >= 5, "too few processes compared"


def test_cli_cat_matches_api_for_own_shell():
    import bsdprocfs
    p = subprocess.run([*BSDPROCFS, "cat", str(os.getpid()), "rlimit"], capture_output=True,
                       check=True)
    assert p.stdout == bsdprocfs.ProcFS().read(os.getpid(), "rlimit")
