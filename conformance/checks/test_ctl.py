"""ctl (historical procfs_ctl.c, spec section 9): every word in every state,
all 31 signal names, unknown words; only for profiles that have ctl."""

from __future__ import annotations

import contextlib
import errno
import shutil
import signal
import threading
import time

import pytest

from bsdprocfs_conformance.spec import CTL_WORDS, SIGNAL_NAMES, host_signal, regset_sizes
from bsdprocfs_conformance.subjects import host_state, wait_for
from bsdprocfs_conformance.targets import read, write
from bsdprocfs_conformance.util import expect_errno, need_ctl

ctl = pytest.mark.procfs("ctl", "ctl")
#: a group neither the test user nor the observer is in
OTHER_GID = 43210
STATES = ("running", "sleeping", "stopped", "traced", "self")
#: errno per (state, word): attach EBUSY if traced, EINVAL on oneself (cite: ctl.attach);
#: step/run need a stopped, traced child of the caller (cite: ctl.trace_wait); detach is a
#: no-op when untraced (cite: ctl.detach); wait returns at once unless the target is
#: stopped and untraced (then it sleeps: tested apart).  On a traced target procfs_ctl.c's
#: wait sleeps while the target is stopped, then answers EBUSY (cite: ctl.wait):
#: profiles with ctl_source_wait expect that, compat the useful "returns once stopped".
EXPECT: dict[str, dict[str, int | str]] = {
    "running": {"attach": 0, "detach": 0, "step": errno.EBUSY, "run": errno.EBUSY, "wait": 0},
    "sleeping": {"attach": 0, "detach": 0, "step": errno.EBUSY, "run": errno.EBUSY, "wait": 0},
    "stopped": {"attach": 0, "detach": 0, "step": errno.EBUSY, "run": errno.EBUSY,
                "wait": "blocks"},
    "traced": {"attach": errno.EBUSY, "detach": 0, "step": 0, "run": 0, "wait": 0},
    "self": {"attach": errno.EINVAL, "detach": 0, "step": errno.EBUSY, "run": errno.EBUSY,
             "wait": 0},
}


def ctlw(target, pid, word: bytes) -> int:
    return write(target, f"{pid}/ctl", word)


def _stopped(target, prof, s) -> None:
    """Until the just-attached target is stopped: compat's wait, or watching its state
    where procfs_ctl.c's wait would sleep on it (cite: ctl.wait)."""
    if prof.ctl_source_wait:
        assert wait_for(lambda: host_state(s.pid) in ("T", "t"), 5)
        # settle: the bsdprocfs shim answers a wait issued within microseconds of the
        # attach stop with EBUSY (its tracer has not collected the stop yet); the
        # check is about sleeping while stopped, not about that latency
        time.sleep(0.1)
    else:
        ctlw(target, s.pid, b"wait")


@contextlib.contextmanager
def subject_in(pool, target, state, prof):
    if state == "self":
        yield None
        return
    # traced targets spin in user space: a step from inside a blocking read(2) would
    # only trap once the read returns
    busy = state in ("running", "traced")
    s = pool.spawn(f"ctl-{state}", {"mode": "busy", "catch": True} if busy else {"catch": True})
    try:
        if not busy:
            wait_for(lambda: host_state(s.pid) == "S", 5)
        if state == "stopped":
            s.stop()
        if state == "traced":
            ctlw(target, s.pid, b"attach")
            _stopped(target, prof, s)
        yield s
    finally:
        with contextlib.suppress(OSError):
            ctlw(target, s.pid, b"detach")
        s.kill()


@ctl
@pytest.mark.parametrize("word", CTL_WORDS)
@pytest.mark.parametrize("state", STATES)
def test_ctl_word(target, prof, pool, state, word):
    need_ctl(prof)
    want = EXPECT[state][word]
    if state == "traced" and word == "wait" and prof.ctl_source_wait:
        want = "blocks-ebusy"
    with subject_in(pool, target, state, prof) as s:
        pid = "curproc" if s is None else s.pid
        if want == "blocks-ebusy":
            # sleeps while the traced target stays stopped; a SIGKILL ends the stop and
            # the sleep, and TRACE_WAIT_P then fails: EBUSY (cite: ctl.wait)
            out: list[int] = []

            def wait_traced() -> None:
                try:
                    out.append(ctlw(target, pid, b"wait"))
                except OSError as e:
                    out.append(-(e.errno or 1))

            th = threading.Thread(target=wait_traced, daemon=True)
            th.start()
            th.join(0.5)
            assert th.is_alive(), f"wait on a stopped traced target returned {out}"
            s.kill()
            th.join(10)
            assert out == [-errno.EBUSY], out
            return
        if want == "blocks":
            result: list[int] = []

            def run() -> None:
                try:
                    result.append(ctlw(target, pid, b"wait"))
                except OSError as e:
                    result.append(-(e.errno or 1))

            th = threading.Thread(target=run, daemon=True)
            th.start()
            th.join(0.5)
            assert th.is_alive(), f"wait on a stopped, untraced process returned {result}"
            s.cont()
            th.join(10)
            assert result == [4], "wait returns once the process is no longer stopped"
            return
        got = expect_errno(int(want), ctlw, target, pid, word.encode())
        if want == 0:
            assert got == len(word)
        if state != "self" and want == 0 and word == "attach":
            _stopped(target, prof, s)
            assert host_state(s.pid) in ("T", "t"), "attach stops the target"


@ctl
def test_ctl_attach_detach_cycle(target, prof, pool):
    """attach + wait stops the target (regs readable); detach resumes it (EBUSY again).
    Only procfs_control's words check p_candebug (cite: ctl.candebug)."""
    need_ctl(prof)
    size = regset_sizes().get("regs")
    with subject_in(pool, target, "sleeping", prof) as s:
        ctlw(target, s.pid, b"attach")
        _stopped(target, prof, s)
        if size:
            assert len(read(target, f"{s.pid}/regs", 4096)) == size
        ctlw(target, s.pid, b"detach")
        assert wait_for(lambda: host_state(s.pid) in ("S", "R"), 5), "detach resumes"
        if size:
            expect_errno(errno.EBUSY, read, target, f"{s.pid}/regs", 4096)
        assert s.cmd("ping") == "pong"


@ctl
def test_ctl_run_resumes(target, prof, pool):
    """run continues a traced, stopped target (it stays traced: detach then frees it)."""
    need_ctl(prof)
    with subject_in(pool, target, "traced", prof) as s:
        assert ctlw(target, s.pid, b"run") == 3
        time.sleep(0.1)
        states = []
        for _ in range(5):             # still running a while later: not one step
            states.append(host_state(s.pid))
            time.sleep(0.02)
        assert set(states) <= {"S", "R"}, f"run resumes the target: states {states}"
        ctlw(target, s.pid, b"detach")
        assert s.cmd("ping") == "pong"


@ctl
def test_ctl_step_then_wait(target, prof, pool):
    need_ctl(prof)
    # step and run resume without a signal: p_xsig = 0 first (cite: ctl.noxstat)
    with subject_in(pool, target, "traced", prof) as s:
        assert ctlw(target, s.pid, b"step") == 4
        if prof.ctl_source_wait:     # its wait would sleep while stopped (cite: ctl.wait)
            assert wait_for(lambda: host_state(s.pid) in ("T", "t"), 5)
        else:
            assert ctlw(target, s.pid, b"wait") == 4
        assert host_state(s.pid) in ("T", "t"), "one step, then stopped again"


@ctl
@pytest.mark.parametrize("name", SIGNAL_NAMES)
def test_ctl_signal_posted(target, prof, pool, name):
    """An untraced target gets the signal posted (kern_psignal; cite: ctl.signal)."""
    need_ctl(prof)
    sig = host_signal(name)
    if name in ("kill", "stop"):
        s = pool.spawn(f"sig-{name}")
        try:
            assert ctlw(target, s.pid, name.encode()) == len(name)
            if name == "kill":
                assert s.popen.wait(10) == -signal.SIGKILL
            else:
                assert wait_for(lambda: host_state(s.pid) in ("T", "t"), 5)
        finally:
            s.kill()
        return
    c = pool.get("catcher")
    c.cmd("clear")
    assert ctlw(target, c.pid, name.encode()) == len(name)
    if sig is None:         # no such signal on this host (emt, info on Linux)
        assert c.cmd("ping") == "pong"
        return
    assert wait_for(lambda: sig in c.cmd("sigs"), 5), f"SIG{name.upper()} not delivered"


@ctl
@pytest.mark.parametrize("name", ["usr1", "term", "hup", "cont"])
def test_ctl_signal_resumes_traced(target, prof, pool, name):
    """A traced, stopped target resumes with the written signal as its continue signal
    (p_xsig = the signal; cite: ctl.signal)."""
    need_ctl(prof)
    with subject_in(pool, target, "traced", prof) as s:
        assert ctlw(target, s.pid, name.encode()) == len(name)
        assert wait_for(lambda: host_state(s.pid) in ("S", "R"), 5), "target resumed"
        ctlw(target, s.pid, b"detach")
        sig = host_signal(name)
        assert wait_for(lambda: sig in s.cmd("sigs"), 5)


@ctl
@pytest.mark.parametrize("word", [b"Attach", b"ATTACH", b"attac", b"attachx", b" attach",
                                  b"sigusr1", b"usr3", b"9", b"", b"kill -9", b"detach\0x"])
def test_ctl_unknown_word(target, prof, pool, word):
    need_ctl(prof)
    s = pool.get("sleeping")
    if word == b"" and target.kind == "path":
        pytest.skip("a zero-length write(2) may never reach the file system (FUSE)")
    expect_errno(errno.EOPNOTSUPP, ctlw, target, s.pid, word)
    assert host_state(s.pid) == "S"


@ctl
@pytest.mark.parametrize("word", [b"detach\n", b"detach \t\n", b"wait\n"])
def test_ctl_trailing_space(target, prof, pool, word):
    need_ctl(prof)
    assert ctlw(target, pool.get("sleeping").pid, word) == len(word)


@ctl
def test_ctl_kernel_process(target, prof):
    """ctl has no vis callback: present for kernel processes too."""
    need_ctl(prof)
    from bsdprocfs_conformance.checks.test_states import kernel_pid
    pid = kernel_pid()
    if pid is None:
        pytest.skip("no kernel process visible on this host")
    assert target.lstat(f"{pid}/ctl").kind == "file"


@ctl
def test_ctl_absent_without_profile(target, prof, pool):
    if prof.has_ctl:
        assert target.lstat(f"{pool.get('sleeping').pid}/ctl").mode == 0o200
    else:
        expect_errno(errno.ENOENT, target.lstat, f"{pool.get('sleeping').pid}/ctl")




@ctl
def test_ctl_signal_without_debug_rights(target, prof, pool, observer):
    """procfs_doprocctl posts a signal word with no p_candebug (cite: ctl.candebug,
    ctl.signal): the owner of a process whose groups it does not share (so p_candebug
    fails) may still signal it through ctl, but not attach.  The Linux floor agrees:
    kill(2) needs only the same real uid."""
    need_ctl(prof)
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is not installed")
    uid, gid = pool.user
    # the credentials are set before exec: no P_SUGID, one group the observer lacks
    wrap = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={gid},{OTHER_GID}", ""]
    s = pool.spawn("ctl-nodebug", {"catch": True}, wrap=wrap)
    try:
        wait_for(lambda: host_state(s.pid) == "S", 5)
        s.cmd("clear")
        res = observer.run([["write", f"{s.pid}/ctl", b"usr1".hex(), 0],
                            ["write", f"{s.pid}/ctl", b"attach".hex(), 0]])["results"]
        assert res[0] == {"ok": 4}, res
        assert wait_for(lambda: signal.SIGUSR1 in s.cmd("sigs"), 5), "SIGUSR1 delivered"
        assert res[1] == {"errno": errno.EPERM}, "attach still needs p_candebug"
        # it has just answered "sigs": back in its read(2) a moment later, not stopped
        assert wait_for(lambda: host_state(s.pid) == "S", 5), "attach changed nothing"
    finally:
        s.kill()
