"""ctl, regs and the daemon-as-tracer through a real mount: sequences from
different processes, a blocking wait, SIGTERM and SIGKILL of the daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from test_fuse_common import errname, kill, needs_fuse, proc_state, spawn_sleeper, wait_for

import bsdprocfs
from bsdprocfs.fuse import is_mounted, mounted

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.ptrace, pytest.mark.timeout(120)]

SPIN = "while True: pass\n"


def sh(cmd: str) -> subprocess.CompletedProcess:
    """A separate process per ctl word, as `echo word > ctl` from a shell."""
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)


def tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"TracerPid:\s*(\d+)", f.read()).group(1))


def tgid_of(tid: int) -> int:
    with open(f"/proc/{tid}/status") as f:
        return int(re.search(r"Tgid:\s*(\d+)", f.read()).group(1))


@pytest.fixture
def spinner():
    p = subprocess.Popen([sys.executable, "-c", SPIN])
    wait_for(lambda: proc_state(p.pid) == "R")
    yield p
    kill(p)


def write_word(path: str, word: bytes) -> str:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, word)
        return "ok"
    except OSError as e:
        return errname(e)
    finally:
        os.close(fd)


def read1(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def test_ctl_sequence_from_different_processes(spinner):
    with mounted() as m:
        pid = spinner.pid
        ctl = f"{m.path}/{pid}/ctl"
        a = subprocess.Popen(["sh", "-c", f"echo attach > {ctl}"])
        assert a.wait(30) == 0
        assert sh(f"echo wait > {ctl}").returncode == 0        # FreeBSD style: attach, wait
        assert proc_state(pid) == "t"
        assert tgid_of(tracer_of(pid)) == m.pid          # the daemon is the tracer
        regs0 = bsdprocfs.parse("regs", read1(f"{m.path}/{pid}/regs"))
        r = sh(f"echo step > {ctl}")                      # another process steps it
        assert r.returncode == 0, r.stderr
        out = sh(f"cat {m.path}/{pid}/regs > /tmp/bsdpfs-fuse-regs-{pid}; "
                 f"wc -c < /tmp/bsdpfs-fuse-regs-{pid}")
        assert out.stdout.strip() == "176"
        with open(f"/tmp/bsdpfs-fuse-regs-{pid}", "rb") as f:
            regs1 = bsdprocfs.parse("regs", f.read())
        os.unlink(f"/tmp/bsdpfs-fuse-regs-{pid}")
        assert regs1["r_rip"] != regs0["r_rip"]           # one instruction further
        assert proc_state(pid) == "t"
        assert len(read1(f"{m.path}/{pid}/fpregs")) == 512
        assert len(read1(f"{m.path}/{pid}/dbregs")) == 128
        # a second attach is EBUSY, attaching to yourself EINVAL
        assert sh(f"echo attach > {ctl}").returncode != 0
        assert write_word(ctl, b"attach") == "EBUSY"
        assert write_word(f"{m.path}/curproc/ctl", b"attach") == "EINVAL"
        assert write_word(ctl, b"bogus") == "EOPNOTSUPP"
        r = sh(f"echo detach > {ctl}")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: proc_state(pid) == "R")
        assert tracer_of(pid) == 0
        log = m.log_text()
        assert re.search(rf"ctl pid {pid} b'attach' by pid {a.pid} uid 0: ok", log), log
        assert re.search(rf"ctl pid {pid} b'step' by pid \d+ uid 0: ok", log), log


def test_blocking_wait_does_not_stall_readers_and_is_interruptible(spinner):
    with mounted() as m:
        pid = spinner.pid
        ctl = f"{m.path}/{pid}/ctl"
        assert write_word(ctl, b"attach") == "ok"
        assert write_word(ctl, b"wait") == "ok"
        assert write_word(ctl, b"run") == "ok"
        wait_for(lambda: proc_state(pid) == "R")
        code = f"import os\nfd = os.open({ctl!r}, os.O_WRONLY)\nos.write(fd, b'wait')\n"
        waiter = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            assert waiter.poll() is None                  # blocked in wait
            for _ in range(20):                           # other requests are served
                assert bsdprocfs.parse("status", read1(f"{m.path}/{pid}/status")).pid == pid
            assert os.listdir(f"{m.path}/{pid}")
            waiter.send_signal(signal.SIGINT)             # FUSE_INTERRUPT -> EINTR
            assert waiter.wait(10) != 0
        finally:
            kill(waiter)
        wait_for(lambda: "b'wait' by pid" in m.log_text() and "EINTR" in m.log_text())
        # a wait that completes: stop the target with a signal word, wait returns
        assert write_word(ctl, b"stop") == "ok"
        assert write_word(ctl, b"wait") == "ok"
        assert proc_state(pid) == "t"
        assert write_word(ctl, b"detach") == "ok"
        wait_for(lambda: proc_state(pid) == "R" and tracer_of(pid) == 0)


def test_sigterm_unmounts_and_detaches_every_tracee():
    targets = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
    try:
        with mounted() as m:
            for t in targets:
                wait_for(lambda t=t: proc_state(t.pid) == "R")
                assert write_word(f"{m.path}/{t.pid}/ctl", b"attach") == "ok"
                assert write_word(f"{m.path}/{t.pid}/ctl", b"wait") == "ok"
                assert proc_state(t.pid) == "t"
            # one of them runs again, with a caller blocked in `wait` on it: libfuse
            # waits for its workers on exit, so the wait must give up by itself
            ctl = f"{m.path}/{targets[0].pid}/ctl"
            assert write_word(ctl, b"run") == "ok"
            code = f"import os\nfd = os.open({ctl!r}, os.O_WRONLY)\nos.write(fd, b'wait')\n"
            waiter = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                assert waiter.poll() is None
                m.proc.send_signal(signal.SIGTERM)
                assert m.proc.wait(15) == 0
                assert waiter.wait(15) != 0              # ENOTCONN/EINTR, not a hang
            finally:
                kill(waiter)
            assert not is_mounted(m.path)
            for t in targets:
                wait_for(lambda t=t: proc_state(t.pid) == "R" and tracer_of(t.pid) == 0)
            assert "daemon exiting" in m.log_text()
    finally:
        for t in targets:
            kill(t)


def test_sigkill_of_the_daemon_leaves_no_process_stopped(tmp_path):
    target = subprocess.Popen([sys.executable, "-c", SPIN])
    stopped = spawn_sleeper()
    try:
        with mounted() as m:
            wait_for(lambda: proc_state(target.pid) == "R")
            assert write_word(f"{m.path}/{target.pid}/ctl", b"attach") == "ok"
            assert write_word(f"{m.path}/{stopped.pid}/ctl", b"attach") == "ok"
            for t in (target, stopped):
                assert write_word(f"{m.path}/{t.pid}/ctl", b"wait") == "ok"
            assert {proc_state(target.pid), proc_state(stopped.pid)} == {"t"}
            m.proc.kill()
            m.proc.wait()
            # the tracer died with the daemon: both resume, untraced
            wait_for(lambda: proc_state(target.pid) == "R" and tracer_of(target.pid) == 0)
            wait_for(lambda: proc_state(stopped.pid) in ("S", "R")
                     and tracer_of(stopped.pid) == 0)
            # the dead mount is still in the table until umount cleans it
            assert is_mounted(m.path)
            r = subprocess.run([sys.executable, "-m", "bsdprocfs", "umount", m.path],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert not is_mounted(m.path)
    finally:
        kill(target)
        kill(stopped)


def test_dbregs_of_a_running_process_and_of_the_caller_itself(spinner):
    """FreeBSD reads dbregs while the target runs: the daemon seizes, interrupts, reads
    and detaches.  A caller reading its own dbregs is blocked in read(2) on the daemon,
    so it cannot stop for the read: EBUSY, and it must not be left traced or stopped
    once its read(2) returns."""
    with mounted() as m:
        data = read1(f"{m.path}/{spinner.pid}/dbregs")
        assert len(data) == 128
        assert wait_for(lambda: proc_state(spinner.pid) == "R" and tracer_of(spinner.pid) == 0)
        me = subprocess.run(
            [sys.executable, "-c",
             "import os, sys\n"
             f"fd = os.open('{m.path}/curproc/dbregs', os.O_RDONLY)\n"
             "try:\n"
             "    n = len(os.read(fd, 4096))\n"
             "except OSError as e:\n"
             "    n = -e.errno\n"
             "import time; time.sleep(0.5)\n"
             "st = open('/proc/self/status').read()\n"
             "print(n, [ln for ln in st.splitlines() if ln.startswith('TracerPid')][0])\n"],
            capture_output=True, text=True, timeout=30)
        assert me.returncode == 0, me.stderr
        n, tracer = me.stdout.split(" ", 1)
        assert int(n) in (128, -16), me.stdout           # the struct, or EBUSY
        assert tracer.split()[-1] == "0", me.stdout      # released, not left traced
        assert m.proc.poll() is None
