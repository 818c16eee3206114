"""No caller can starve the others: an unprivileged user blocks 64 ctl ``wait``s
(one per SIGSTOPped sleep of its own, each a blocking write through the mount),
and root's reads of any status stay under 100 ms meanwhile; the user's 65th
blocking wait is refused at once with EAGAIN (the per-caller bound), and every
wait returns as soon as its target is continued.  Real mount, real user (nobody
through setpriv)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_fuse_common import needs_fuse

from bsdprocfs.fuse import mounted

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.timeout(180)]

NOBODY = 65534
N = 64                # ptrace/gate.MAX_WAITS_PER_CALLER

#: run as nobody: N sleeps, SIGSTOP each, a blocking "wait" on each one's ctl from its
#: own thread; report "blocked" once none returned for a while, then the 65th wait's
#: errno; on stdin EOF: SIGCONT all, join, report how the waits ended
USER = r"""
import errno, os, signal, subprocess, sys, threading, time
mnt, n = sys.argv[1], int(sys.argv[2])
sleeps = [subprocess.Popen(["sleep", "120"]) for _ in range(n + 1)]
for p in sleeps:
    os.kill(p.pid, signal.SIGSTOP)
for p in sleeps:
    while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.005)
results = []
def wait(pid):
    fd = os.open(f"{mnt}/{pid}/ctl", os.O_WRONLY)
    try:
        os.write(fd, b"wait")
        results.append(0)
    except OSError as e:
        results.append(e.errno)
    finally:
        os.close(fd)
threads = [threading.Thread(target=wait, args=(p.pid,)) for p in sleeps[:n]]
for t in threads:
    t.start()
time.sleep(1.5)
print("blocked", len(results), " ".join(str(p.pid) for p in sleeps), flush=True)
if sys.argv[3:] != ["no-extra"]:
    fd = os.open(f"{mnt}/{sleeps[n].pid}/ctl", os.O_WRONLY)
    t0 = time.monotonic()
    try:
        os.write(fd, b"wait")
        print("extra 0", flush=True)
    except OSError as e:
        print("extra", e.errno, round(time.monotonic() - t0, 3), flush=True)
    os.close(fd)
sys.stdin.read()
for p in sleeps:
    os.kill(p.pid, signal.SIGCONT)
for t in threads:
    t.join(30)
print("done", sorted(set(results)), len(results), flush=True)
for p in sleeps:
    p.kill()
    p.wait()
"""


def _line(f, limit: float = 30.0) -> list[str]:
    """One line of the user's report, or fail after ``limit`` (a blocked daemon would
    otherwise hang the test)."""
    import select
    assert select.select([f], [], [], limit)[0], f"no report within {limit}s (daemon frozen?)"
    return str(f.readline()).split()


def _user_script() -> tuple[str, str, str]:
    """USER in a directory nobody may write but everyone can read (the users run it),
    and the interpreter to run it with."""
    import tempfile
    d = tempfile.mkdtemp(prefix="bsdprocfs-starve-")
    os.chmod(d, 0o755)
    script = os.path.join(d, "user.py")
    with open(script, "w") as f:
        f.write(USER)
    os.chmod(script, 0o644)
    return d, script, shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def _read_ms(path: str) -> float:
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.read(fd, 65536)
    finally:
        os.close(fd)
    return (time.perf_counter() - t0) * 1000


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to act as nobody")
def test_blocked_waits_of_one_user_do_not_starve_root():
    d, script, python = _user_script()
    with mounted() as m:
        u = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                              "--clear-groups", python, script, m.path, str(N)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        assert u.stdout is not None and u.stdin is not None
        try:
            line = _line(u.stdout)
            assert line[:2] == ["blocked", "0"], line       # all N waits still blocked
            pids = [int(x) for x in line[2:]]
            extra = _line(u.stdout, 10)
            assert extra[0] == "extra" and int(extra[1]) == 11, extra     # EAGAIN
            assert float(extra[2]) < 1.0                               # at once
            times = []
            for i in range(20):
                times.append(_read_ms(f"{m.path}/curproc/status"))
                times.append(_read_ms(f"{m.path}/{pids[i]}/status"))
            print(f"root status reads with {N} waits blocked: median "
                  f"{sorted(times)[len(times) // 2]:.1f} ms, max {max(times):.1f} ms")
            assert max(times) < 100, sorted(times)[-5:]
            u.stdin.close()
            done = _line(u.stdout)
            assert done == ["done", "[0]", str(N)]          # each wait ended with its SIGCONT
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(u.pid, signal.SIGKILL)       # its sleeps too (stopped ones)
            u.wait()
            shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to act as nobody")
def test_the_bound_holds_across_a_users_credential_sets():
    """nobody with two group lists is served by two workers (ptrace/boundary.py); the
    per-uid bound counts both: 32 waits from each, and the 65th is EAGAIN at once."""
    d, script, python = _user_script()
    users: list[subprocess.Popen[str]] = []
    with mounted() as m:
        try:
            for groups, extra in ((["--clear-groups"], ["no-extra"]), (["--groups=65533"], [])):
                users.append(subprocess.Popen(
                    ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", *groups, python,
                     script, m.path, str(N // 2), *extra],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    start_new_session=True))
                assert users[-1].stdout is not None
                line = _line(users[-1].stdout)
                assert line[:2] == ["blocked", "0"], line
            assert users[1].stdout is not None
            extra = _line(users[1].stdout, 10)
            assert extra[0] == "extra" and int(extra[1]) == 11, extra     # EAGAIN
            assert float(extra[2]) < 1.0
            for u in users:
                assert u.stdin is not None and u.stdout is not None
                u.stdin.close()
                assert _line(u.stdout) == ["done", "[0]", str(N // 2)]
        finally:
            for u in users:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(u.pid, signal.SIGKILL)
                u.wait()
            shutil.rmtree(d, ignore_errors=True)
