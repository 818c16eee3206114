"""`bsdprocfs mount` / `umount` / `exec` as commands: daemonizing, pid and log
files, clear errors, and exec's private /proc with nothing left behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
from test_fuse_common import PLAIN_PYTHON, ensure_user, needs_fuse, wait_for

import bsdprocfs
from bsdprocfs.fuse import BENCH_BODY, is_mounted, mounted
from bsdprocfs_conformance.util import copy_readable

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.timeout(120)]
CLI = [sys.executable, "-m", "bsdprocfs"]
COMPAT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(bsdprocfs.__file__)))


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=90, **kw)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(b")") + 2:][:1] != b"Z"


@pytest.fixture
def mnt_dir():
    d = tempfile.mkdtemp(prefix="bsdpfs-fuse-cli-")
    yield d
    if is_mounted(d):
        subprocess.run(["fusermount3", "-u", "-z", d], check=False)
    shutil.rmtree(d, ignore_errors=True)


def test_mount_daemonizes_with_pid_and_log_files_then_umount(mnt_dir):
    pidfile, logfile = mnt_dir + ".pid", mnt_dir + ".log"
    try:
        r = run("mount", "--pidfile", pidfile, "--logfile", logfile, mnt_dir)
        assert r.returncode == 0, r.stderr
        assert "mounted on" in r.stdout
        assert is_mounted(mnt_dir)
        with open(pidfile) as f:
            daemon = int(f.read())
        assert pid_alive(daemon)
        with open(f"/proc/{daemon}/status") as f:      # daemonized: its own session
            assert re.search(rf"NSsid:\s*{daemon}\b", f.read())
        out = subprocess.run(["dd", "if=" + f"{mnt_dir}/curproc/status", "bs=65536", "count=1", "status=none"], capture_output=True,
                             check=True).stdout
        assert bsdprocfs.parse("status", out).comm == b"dd"
        again = run("mount", "--pidfile", pidfile + "2", mnt_dir)
        assert again.returncode == 1 and "already mounted" in again.stderr
        r = run("umount", "--pidfile", pidfile, mnt_dir)
        assert r.returncode == 0, r.stderr
        assert not is_mounted(mnt_dir)
        wait_for(lambda: not pid_alive(daemon))
        assert not os.path.exists(pidfile)
        with open(logfile) as f:
            log = f.read()
        assert "mounting" in log and "daemon exiting" in log
        r = run("umount", "--pidfile", pidfile, mnt_dir)
        assert r.returncode == 1 and "not mounted" in r.stderr
    finally:
        for p in (pidfile, logfile):
            if os.path.exists(p):
                os.unlink(p)


def test_default_state_files_and_bench_node(mnt_dir):
    r = run("mount", "--bench-node", "bench", mnt_dir)
    try:
        assert r.returncode == 0, r.stderr
        name = os.path.realpath(mnt_dir).strip("/").replace("/", "_")
        assert os.path.exists(f"/run/bsdprocfs/{name}.pid")
        with open(f"{mnt_dir}/bench/status", "rb") as f:
            assert f.read() == BENCH_BODY
        assert "bench" not in os.listdir(mnt_dir)      # readdir stays FreeBSD's
    finally:
        r2 = run("umount", mnt_dir)
    assert r2.returncode == 0, r2.stderr
    assert not is_mounted(mnt_dir)
    assert not os.path.exists(f"/run/bsdprocfs/{name}.pid")
    with open(f"/run/bsdprocfs/{name}.log") as f:      # the log stays for the user
        assert "daemon exiting" in f.read()
    os.unlink(f"/run/bsdprocfs/{name}.log")


def test_mount_errors_are_clear_and_nonzero(mnt_dir):
    r = run("mount", mnt_dir + "/missing")
    assert r.returncode == 1 and "not a directory" in r.stderr
    r = run("mount", "--bench-node", "123", mnt_dir)
    assert r.returncode == 1 and "--bench-node" in r.stderr
    uid, gid = ensure_user()
    os.chmod(mnt_dir, 0o777)
    # the user may not be able to search the checkout (a clone below /root): a copy
    pkg = tempfile.mkdtemp(prefix="bsdpfs-pkg-")
    os.chmod(pkg, 0o755)
    copy_readable(os.path.join(COMPAT_DIR, "bsdprocfs"), os.path.join(pkg, "bsdprocfs"))
    code = (f"import sys; sys.path.insert(0, {pkg!r})\n"
            "from bsdprocfs.cli import main\n"
            f"sys.exit(main(['mount', {mnt_dir!r}]))\n")
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                        PLAIN_PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd="/")
    shutil.rmtree(pkg)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "needs root" in r.stderr
    assert not is_mounted(mnt_dir)


# dd: one read(2) per record.  cat reads again at the end offset, and as on FreeBSD
# that regenerates the node: if the line grew meanwhile (cat's own CPU time, or a
# wider usec field) the second read returns its tail, a splice of two snapshots.
EXEC_SCRIPT = """#!/bin/sh
dd if=/proc/curproc/status of="$OUT/status" bs=65536 count=1 2>/dev/null
readlink /proc/self/file > "$OUT/file"
dd if=/proc/$$/status of="$OUT/shell" bs=65536 count=1 2>/dev/null
ls /proc/curproc/ > "$OUT/nodes"
test -e /proc/self/maps && echo linux-proc-visible > "$OUT/leak"
exit 7
"""


def exec_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if "bsdprocfs-exec-" in ln]


def test_exec_runs_a_program_against_freebsd_proc(tmp_path):
    host_before = exec_mounts()
    script = tmp_path / "probe.sh"
    script.write_text(EXEC_SCRIPT)
    script.chmod(0o755)
    logfile = tmp_path / "daemon.log"
    r = subprocess.run([*CLI, "exec", "--logfile", str(logfile), "--", str(script)],
                       env={**os.environ, "OUT": str(tmp_path)}, capture_output=True,
                       text=True, timeout=90)
    assert r.returncode == 7, r.stderr                    # CMD's own status
    st = bsdprocfs.parse("status", (tmp_path / "status").read_bytes())
    shell = bsdprocfs.parse("status", (tmp_path / "shell").read_bytes())
    assert st.comm == b"dd" and st.ppid == shell.pid
    assert (tmp_path / "file").read_text().strip() == os.path.realpath(shutil.which("readlink"))
    assert "status" in (tmp_path / "nodes").read_text().split()
    assert not (tmp_path / "leak").exists()               # /proc was the FreeBSD tree
    # nothing left behind: no mount in the host namespace, the daemon is gone
    host_after = exec_mounts()
    assert host_after == host_before
    assert os.path.exists("/proc/self/maps")              # the host /proc is untouched
    daemon = int(re.search(r"pid (\d+)\)", logfile.read_text()).group(1))
    wait_for(lambda: not pid_alive(daemon))


def test_exec_exit_status_and_errors():
    r = run("exec", "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + 15
    r = run("exec", "--", "/nonexistent/cmd")
    assert r.returncode == 127 and "/nonexistent/cmd" in r.stderr
    r = run("exec")
    assert r.returncode == 2 and "no command" in r.stderr
    r = run("exec", "--", "sh", "-c", "head -c 4 /proc/curproc/cmdline")
    assert r.returncode == 0 and r.stdout == "head"


def test_mounted_helper_cleans_up_even_on_failure():
    path = None
    with pytest.raises(ZeroDivisionError), mounted() as m:
        path = m.path
        assert is_mounted(path)
        1 / 0  # noqa: B018
    assert path is not None and not is_mounted(path) and not os.path.exists(path)


def test_exec_forwards_sigterm_and_cleans_up(tmp_path):
    ready = tmp_path / "ready"
    script = f'trap "exit 3" TERM; touch {ready}; while :; do sleep 0.05; done'
    logfile = tmp_path / "daemon.log"
    p = subprocess.Popen([*CLI, "exec", "--logfile", str(logfile), "--", "sh", "-c", script])
    try:
        wait_for(ready.exists, timeout=30)
        p.send_signal(15)
        assert p.wait(30) == 3                     # CMD's own exit, after the signal
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    daemon = int(re.search(r"pid (\d+)\)", logfile.read_text()).group(1))
    wait_for(lambda: not pid_alive(daemon))        # the daemon went with the namespace
    assert "daemon exiting" in logfile.read_text()


def test_preflight_names_a_missing_dev_fuse(monkeypatch, mnt_dir):
    from bsdprocfs.cli import mount as cli_mount
    real = os.path.exists
    monkeypatch.setattr(cli_mount.os.path, "exists",
                        lambda p: False if p == "/dev/fuse" else real(p))
    why = cli_mount.preflight(mnt_dir)
    assert why is not None and "/dev/fuse is missing" in why
    monkeypatch.undo()
    assert cli_mount.preflight(mnt_dir) is None          # the real machine is fine
