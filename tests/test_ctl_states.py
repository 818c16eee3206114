"""Every ctl command word in every target state, with FreeBSD's errnos.

States: running, stopped by us (attached), traced by us but running, stopped by
someone else's SIGSTOP, traced by another debugger, zombie, exited.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
import test_ptrace_util as _util
from test_ptrace_util import (
    OtherTracer,
    Spinner,
    attach_stopped,
    needs_ptrace,
    sigstop,
    wait_state,
)

import bsdprocfs
from bsdprocfs.access import Reader
from bsdprocfs.debug import get_debugger, proc_state, tracer_pid
from bsdprocfs.nodes import regs as n_regs

# the shared fixtures, bound here so pytest finds them
fs = _util.fs
spin = _util.spin
spinner_cmd = _util.spinner_cmd

pytestmark = [needs_ptrace, pytest.mark.timeout(60)]


def _err(fn, *a, **k) -> int:
    with pytest.raises(OSError) as ei:
        fn(*a, **k)
    return ei.value.errno


def ctl(fs, pid, word, **k):
    return fs.write(pid, "ctl", word.encode() if isinstance(word, str) else word, **k)


def _rip(fs, pid) -> int:
    v = n_regs.parse(fs.read(pid, "regs")).values
    return int(v.get("r_rip", v.get("r_eip", v.get("elr"))))


# ------------------------------------------------------------- running
def test_running_target(fs, spin):
    assert ctl(fs, spin.pid, "detach") == 6                 # not traced: painless no-op
    assert _err(ctl, fs, spin.pid, "step") == errno.EBUSY
    assert _err(ctl, fs, spin.pid, "run") == errno.EBUSY
    assert ctl(fs, spin.pid, "wait") == 4                   # not traced, not stopped
    assert ctl(fs, spin.pid, "attach\n") == 7
    assert ctl(fs, spin.pid, "wait") == 4
    assert proc_state(spin.pid) == "t"
    # TracerPid is the tracer *thread* (a TID of this process)
    assert tracer_pid(spin.pid) == get_debugger().tracer._thread.native_id


# ---------------------------------------------------------- stopped by us
def test_stopped_by_us(fs, spin):
    attach_stopped(fs, spin.pid)
    assert _err(ctl, fs, spin.pid, "attach") == errno.EBUSY
    assert ctl(fs, spin.pid, "wait") == 4                   # already stopped: returns
    before = _rip(fs, spin.pid)
    ctl(fs, spin.pid, "step")
    # step answers once issued (as FreeBSD's); the trap follows within microseconds
    assert wait_state(spin.pid, "t") == "t"
    ctl(fs, spin.pid, "step")
    assert _rip(fs, spin.pid) != before                     # a procfs read sees it done
    ctl(fs, spin.pid, "run")
    assert wait_state(spin.pid, "RS") in "RS"
    # traced by us but running: step/run EBUSY, wait blocks until a stop
    assert _err(ctl, fs, spin.pid, "step") == errno.EBUSY
    assert _err(ctl, fs, spin.pid, "run") == errno.EBUSY
    assert _err(ctl, fs, spin.pid, "attach") == errno.EBUSY
    threading.Timer(0.2, os.kill, (spin.pid, signal.SIGWINCH)).start()
    ctl(fs, spin.pid, "wait")                               # the SIGWINCH stop ends it
    assert proc_state(spin.pid) == "t"
    assert get_debugger().tracer.targets[spin.pid].stopsig == signal.SIGWINCH
    ctl(fs, spin.pid, "detach")
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0
    assert not get_debugger().traced_by_us(spin.pid)


def test_detach_running_tracee_interrupts_first(fs, spin):
    attach_stopped(fs, spin.pid)
    ctl(fs, spin.pid, "run")
    assert wait_state(spin.pid, "RS") in "RS"
    ctl(fs, spin.pid, "detach")
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0
    assert ctl(fs, spin.pid, "detach") == 6                 # again: no-op


def test_attach_self_is_einval(fs):
    assert _err(ctl, fs, os.getpid(), "attach") == errno.EINVAL
    assert _err(ctl, fs, "curproc", "attach") == errno.EINVAL


def test_attach_needs_candebug(fs, spinner_cmd):
    """Same uid, but the target's gid is outside the reader's groups: EPERM."""
    p = subprocess.Popen(["sleep", "600"],
                         preexec_fn=lambda: (os.setgroups([]), os.setresgid(4343, 4343, 4343),
                                             os.setresuid(4242, 4242, 4242)))
    try:
        wait_state(p.pid, "S")
        reader = Reader(os.getpid() + 100000, 4242, 4242, ())
        assert _err(ctl, fs, p.pid, "attach", reader=reader) == errno.EPERM
        assert _err(ctl, fs, p.pid, "step", reader=reader) == errno.EPERM
        assert ctl(fs, p.pid, "detach", reader=reader) == 6      # detach needs no right
        stranger = Reader(os.getpid() + 100000, 4545, 4545, ())
        assert _err(ctl, fs, p.pid, "attach", reader=stranger) == errno.EACCES  # mode 0200
        assert proc_state(p.pid) in "RS" and tracer_pid(p.pid) == 0
    finally:
        p.kill()
        p.wait()


def test_signal_words_need_no_candebug_but_the_kill_rule(fs):
    """procfs_doprocctl posts a signal without p_candebug ("} else
    kern_psignal(p, nm->nm_val);"): a reader that may not debug its own-uid target
    still signals it.  Linux's kill(2) rule is the floor: a target whose real and saved
    uids are not the reader's is refused (EPERM), whatever FreeBSD's mode bits say."""
    def creds(r: int, e: int, s: int):
        return lambda: (os.setgroups([]), os.setresgid(4343, 4343, 4343),
                        os.setresuid(r, e, s))
    p = subprocess.Popen(["sh", "-c", "trap 'echo winch' WINCH; echo ready; "
                          "while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, preexec_fn=creds(4242, 4242, 4242))
    q = subprocess.Popen(["sleep", "30"], preexec_fn=creds(0, 4242, 0))
    try:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        reader = Reader(os.getpid() + 100000, 4242, 4242, ())
        assert _err(ctl, fs, p.pid, "attach", reader=reader) == errno.EPERM
        assert ctl(fs, p.pid, "winch", reader=reader) == 5
        assert p.stdout.readline() == b"winch\n"
        wait_state(q.pid, "S")
        assert _err(ctl, fs, q.pid, "winch", reader=reader) in (errno.EPERM, errno.EACCES)
        assert q.poll() is None and proc_state(q.pid) in "RS"
    finally:
        for x in (p, q):
            x.kill()
            x.wait()


# ------------------------------------------------ stopped by someone else
def test_stopped_by_sigstop(fs, spin):
    sigstop(spin)
    assert _err(ctl, fs, spin.pid, "step") == errno.EBUSY
    assert _err(ctl, fs, spin.pid, "run") == errno.EBUSY
    assert ctl(fs, spin.pid, "detach") == 6
    # not traced: FreeBSD's wait sleeps *while* the process is stopped
    t0 = time.monotonic()
    h = fs.open(spin.pid, "ctl", "w")
    h.timeout = 0.2
    assert _err(h.write, b"wait") == errno.EINTR
    assert time.monotonic() - t0 >= 0.2
    assert spin.state() == "T"                              # nothing changed
    threading.Timer(0.2, os.kill, (spin.pid, signal.SIGCONT)).start()
    ctl(fs, spin.pid, "wait")
    assert spin.state() in "RS"
    # attach to a stopped process: stays stopped, now traced by us
    sigstop(spin)
    ctl(fs, spin.pid, "attach")
    ctl(fs, spin.pid, "wait")
    assert proc_state(spin.pid) == "t"
    before = _rip(fs, spin.pid)
    ctl(fs, spin.pid, "step")
    assert _rip(fs, spin.pid) != before
    ctl(fs, spin.pid, "detach")                             # FreeBSD: detach resumes it
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0


# ------------------------------------------------- traced by someone else
def test_traced_by_another_debugger(fs, spin):
    other = OtherTracer(spin.pid)
    try:
        for word in ("attach", "detach", "step", "run", "wait"):
            assert _err(ctl, fs, spin.pid, word) == errno.EBUSY, word
        assert not get_debugger().traced_by_us(spin.pid)
    finally:
        other.close()
    assert wait_state(spin.pid, "RS") in "RS"


# ------------------------------------------------------- zombie, exited
def test_zombie_and_exited(fs, spinner_cmd):
    sp = Spinner(spinner_cmd)
    try:
        os.kill(sp.pid, signal.SIGKILL)
        assert wait_state(sp.pid, "Z") == "Z"
        for word in ("attach", "detach", "step", "run", "wait", "term", "bogus"):
            assert _err(ctl, fs, sp.pid, word) == errno.ENOENT, word
        sp.proc.wait()
        for word in ("attach", "detach", "step", "run", "wait", "term"):
            assert _err(ctl, fs, sp.pid, word) == errno.ENOENT, word
    finally:
        sp.close()


def test_open_handle_on_exited_target_is_eio(fs, spin):
    h = fs.open(spin.pid, "ctl", "w")
    attach_stopped(fs, spin.pid)
    os.kill(spin.pid, signal.SIGKILL)
    assert _err(h.write, b"step") == errno.EIO
    assert not get_debugger().traced_by_us(spin.pid)


def test_traced_target_exit_is_reaped(fs, spin):
    attach_stopped(fs, spin.pid)
    ctl(fs, spin.pid, "term")                  # traced and stopped: resumes with SIGTERM
    deadline = time.monotonic() + 5
    dbg = get_debugger()
    while dbg.traced_by_us(spin.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not dbg.traced_by_us(spin.pid)
    st = dbg.exit_status(spin.pid)
    assert st is not None and os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGTERM


# ------------------------------------------------------------- grammar
@pytest.mark.parametrize("bad", [b"Step", b"ATTACH", b"attach\0", b"att", b"", b"foo"])
def test_unknown_words_change_nothing(fs, spin, bad):
    attach_stopped(fs, spin.pid)
    before = fs.read(spin.pid, "regs")
    assert _err(ctl, fs, spin.pid, bad) == errno.EOPNOTSUPP
    assert fs.read(spin.pid, "regs") == before and proc_state(spin.pid) == "t"


def test_ctl_is_write_only_and_profile_gated(spin):
    fs = bsdprocfs.ProcFS(backend="linux")
    assert _err(fs.read, spin.pid, "ctl") == errno.EBADF
    assert fs.stat(spin.pid, "ctl").mode == 0o200
    for prof in ("freebsd-13", "freebsd-14", "freebsd-15"):
        assert _err(bsdprocfs.ProcFS(backend="linux", profile=prof).write, spin.pid, "ctl",
                    b"attach") == errno.ENOENT
    assert proc_state(spin.pid) in "RS"


# ------------------------------------------------------------- profiles
def test_compat_lets_any_debugger_drive(fs, spin):
    a = Reader(os.getpid() + 200000, 0, 0, ())
    b = Reader(os.getpid() + 300000, 0, 0, ())
    ctl(fs, spin.pid, "attach", reader=a)
    ctl(fs, spin.pid, "wait", reader=b)
    ctl(fs, spin.pid, "step", reader=b)
    ctl(fs, spin.pid, "run", reader=b)
    ctl(fs, spin.pid, "detach", reader=b)
    assert wait_state(spin.pid, "RS") in "RS"


def test_freebsd10_attacher_only(spin):
    fs10 = bsdprocfs.ProcFS(backend="linux", profile="freebsd-10")
    assert fs10.profile.ctl_attacher_only
    a = Reader(os.getpid() + 200000, 0, 0, ())
    b = Reader(os.getpid() + 300000, 0, 0, ())
    ctl(fs10, spin.pid, "attach", reader=a)
    _stopped_by_attach(spin.pid)
    for word in ("step", "run", "wait"):
        assert _err(ctl, fs10, spin.pid, word, reader=b) == errno.EBUSY, word
    # 10.4's wait sleeps *while* its child is stopped, then EBUSY (!TRACE_WAIT_P)
    h = fs10.open(spin.pid, "ctl", "w", reader=a)
    h.timeout = 0.2
    t0 = time.monotonic()
    assert _err(h.write, b"wait") == errno.EINTR
    assert 0.2 <= time.monotonic() - t0 < 2.0
    ctl(fs10, spin.pid, "step", reader=a)
    # a signal from a non-attacher is posted, not used to resume: still stopped
    ctl(fs10, spin.pid, "winch", reader=b)
    assert proc_state(spin.pid) == "t"
    ctl(fs10, spin.pid, "run", reader=a)
    ctl(fs10, spin.pid, "detach", reader=b)               # detach: no attacher rule
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0


def _stopped_by_attach(pid: int) -> None:
    """Under freebsd-10 "wait" cannot wait for attach's stop: poll for it."""
    deadline = time.monotonic() + 5
    t = get_debugger().tracer.targets.get(pid)
    while time.monotonic() < deadline:
        get_debugger().tracer.call(lambda: t is not None and get_debugger().tracer.refresh(t))
        if t is not None and t.stopped:
            return
        time.sleep(0.005)
    pytest.fail("attach's stop never came")


def test_freebsd10_wait_after_run_is_ebusy(spin):
    """procfs_ctl.c 10.4: the loop ends when the child runs, then !TRACE_WAIT_P: EBUSY."""
    fs10 = bsdprocfs.ProcFS(backend="linux", profile="freebsd-10")
    a = Reader(os.getpid() + 200000, 0, 0, ())
    ctl(fs10, spin.pid, "attach", reader=a)
    _stopped_by_attach(spin.pid)
    ctl(fs10, spin.pid, "run", reader=a)
    assert _err(ctl, fs10, spin.pid, "wait", reader=a) == errno.EBUSY
    ctl(fs10, spin.pid, "detach", reader=a)
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0


# ----------------------------------------------------------------- wait
def test_wait_is_interruptible_and_does_not_hold_the_tracer(fs, spin, spinner_cmd):
    attach_stopped(fs, spin.pid)
    ctl(fs, spin.pid, "run")
    other = Spinner(spinner_cmd)
    try:
        attach_stopped(fs, other.pid)
        flag = threading.Event()
        h = fs.open(spin.pid, "ctl", "w")
        h.interrupted = flag.is_set
        errs: list[int] = []

        def waiter():
            try:
                h.write(b"wait")
            except OSError as e:
                errs.append(e.errno)
        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.1)
        # while one caller blocks in wait, the tracer keeps serving others
        for _ in range(20):
            ctl(fs, other.pid, "step")
        assert len(fs.read(other.pid, "regs")) > 0
        assert th.is_alive()
        flag.set()
        th.join(5)
        assert errs == [errno.EINTR]
        assert proc_state(spin.pid) in "RS"                 # nothing changed
        h.timeout = 0.1
        h.interrupted = None
        assert _err(h.write, b"wait") == errno.EINTR
    finally:
        other.close()


def test_wait_returns_when_traced_target_exits_busy(fs, spin):
    attach_stopped(fs, spin.pid)
    ctl(fs, spin.pid, "run")
    threading.Timer(0.1, os.kill, (spin.pid, signal.SIGKILL)).start()
    h = fs.open(spin.pid, "ctl", "w")
    assert _err(h.write, b"wait") in (errno.EBUSY, errno.EIO)


# -------------------------------------------------------------- the CLI
def test_cli_sequence(spin):
    cmd = [sys.executable, "-m", "bsdprocfs", "ctl", str(spin.pid), "attach", "wait", "step",
           "step", "regs", "fpregs", "dbregs", "detach"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import json
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["struct"] for x in lines] == ["reg", "fpreg", "dbreg"]
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0


def test_cli_error_detaches(spin):
    r = subprocess.run([sys.executable, "-m", "bsdprocfs", "ctl", str(spin.pid), "attach",
                        "wait", "emt", "step"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == f"bsdprocfs: {spin.pid}/ctl: emt: {os.strerror(errno.EOPNOTSUPP)}"
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0
    r = subprocess.run([sys.executable, "-m", "bsdprocfs", "ctl", str(spin.pid), "step"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip().endswith(": step: " + os.strerror(errno.EBUSY))


# ------------------------------------------------------ steps over syscalls
WRITER_C = r"""
#include <unistd.h>
int main(void) { for (;;) write(1, "x", 1); }
"""


def _build_c(tmp_path, name: str, source: str) -> str:
    """A small C target built with the host compiler (skips without one)."""
    import shutil
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler for this target")
    (tmp_path / f"{name}.c").write_text(source)
    subprocess.run([cc, "-O0", "-o", str(tmp_path / name), str(tmp_path / f"{name}.c")],
                   check=True)
    return str(tmp_path / name)


@pytest.fixture
def writer(tmp_path):
    r, w = os.pipe()
    p = subprocess.Popen([_build_c(tmp_path, "w", WRITER_C)], stdout=w)
    os.close(w)
    # past the dynamic loader and in its loop: stepping a writer still in ld.so (a
    # loaded machine) would need far more than the test's steps to reach write(2)
    assert select.select([r], [], [], 10)[0], "the writer never wrote"
    os.set_blocking(r, False)
    yield p, r
    dbg = get_debugger()
    if dbg.traced_by_us(p.pid):
        dbg.tracer.call(dbg._op_detach, p.pid)
    p.kill()
    p.wait()
    os.close(r)


def _drain(fd: int) -> int:
    n = 0
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            return n
        if not b:
            return n
        n += len(b)


def test_step_runs_system_calls_for_real(fs, writer):
    """Stepping through write(2) executes it (SYSEMU stops are rewound, never skipped)."""
    p, r = writer
    attach_stopped(fs, p.pid)
    _drain(r)
    h = fs.open(p.pid, "ctl", "w")
    for _ in range(3000):
        h.write(b"step")
    assert _drain(r) > 0
    assert wait_state(p.pid, "t") == "t"


def _step_into_blocking_call(fs, pid: int) -> None:
    """Step until a step enters a system call that blocks: the target then runs until
    its trap, so the next step answers EBUSY."""
    for _ in range(50):
        try:
            ctl(fs, pid, "step")
        except OSError as e:
            assert e.errno == errno.EBUSY
            return
    pytest.fail("stepping never entered the blocking system call")


def test_step_over_blocking_syscall_returns_and_wait_waits(fs, spinner_cmd):
    """A step into a sleeping system call returns at once (FreeBSD's step does too);
    the target then runs until its trap: step EBUSY, wait blocks (interruptibly),
    and the tracer keeps serving other targets meanwhile."""
    p = subprocess.Popen(["sleep", "600"])
    other = Spinner(spinner_cmd)
    try:
        wait_state(p.pid, "S")
        attach_stopped(fs, p.pid)
        t0 = time.monotonic()
        _step_into_blocking_call(fs, p.pid)  # the restarted nanosleep
        assert time.monotonic() - t0 < 5
        h = fs.open(p.pid, "ctl", "w")
        h.timeout = 0.2
        assert _err(h.write, b"wait") == errno.EINTR
        attach_stopped(fs, other.pid)          # the tracer is not blocked
        ctl(fs, other.pid, "step")
        os.kill(p.pid, signal.SIGWINCH)       # interrupts the sleep: a signal stop
        ctl(fs, p.pid, "wait")
        assert proc_state(p.pid) == "t"
        ctl(fs, p.pid, "detach")
        assert wait_state(p.pid, "S") in "RS"
    finally:
        other.close()
        p.kill()
        p.wait()


# ------------------------------------------- a dbregs read between two stops
def _wait(fs, pid: int) -> None:
    h = fs.open(pid, "ctl", "w")
    h.timeout = 3.0
    h.write(b"wait")


VFORKER_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <sys/wait.h>
#include <time.h>
static char stack[65536];
static int child(void *arg) {
    struct timespec ts = {0, 400000000};
    nanosleep(&ts, 0);
    return 0;
}
int main(void) {
    /* vfork semantics with no exit signal: the parent sleeps (D) until the child
       exits, and no SIGCHLD stop follows */
    clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK, 0);
    waitpid(-1, 0, __WALL);
    for (;;) ;
}
"""


def test_dbregs_read_before_the_attach_stop_is_collected_keeps_it(fs, tmp_path):
    """A dbregs read (allowed while running) that lands between attach and attach's
    stop must not resume the target: that stop is the attacher's, and its "wait"
    would otherwise block forever.  A parent waiting in vfork(2) cannot trap until
    its child exits, so the read's own interrupt merges with attach's."""
    p = subprocess.Popen([_build_c(tmp_path, "v", VFORKER_C)])
    try:
        assert wait_state(p.pid, "D") == "D"      # in vfork, until the child exits
        ctl(fs, p.pid, "attach")
        assert not get_debugger().tracer.targets[p.pid].stopped
        assert fs.read(p.pid, "dbregs")
        _wait(fs, p.pid)                          # EINTR (timed out) if it was resumed
        assert proc_state(p.pid) == "t"
        ctl(fs, p.pid, "detach")
        assert wait_state(p.pid, "R") == "R"
    finally:
        p.kill()
        p.wait()


def test_dbregs_read_during_a_step_over_a_blocking_syscall_keeps_the_step(fs):
    """A step into a blocking read(2) leaves the target running until its trap; a
    dbregs read meanwhile (interrupt, read, resume) must resume it stepping, so the
    trap still comes right after the read(2) returns."""
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_state(p.pid, "S")
        attach_stopped(fs, p.pid)
        _step_into_blocking_call(fs, p.pid)      # the restarted read(2)
        assert get_debugger().tracer.targets[p.pid].sysstep     # no trace flag armed
        assert fs.read(p.pid, "dbregs")
        assert proc_state(p.pid) in "RS"          # still in its read(2), not held by us
        assert p.stdin is not None
        p.stdin.write(b"x")
        p.stdin.flush()
        _wait(fs, p.pid)                          # the step's trap, after read(2) returned
        assert proc_state(p.pid) == "t"
        ctl(fs, p.pid, "detach")
    finally:
        p.kill()
        p.wait()


def test_step_of_a_sleeper_completes_when_its_call_returns(fs):
    """FreeBSD: the step of a process blocked in a system call completes when the call
    returns; ``wait`` blocks until then.  The stop is right after the call: rax holds
    its result (0), r_trapno T_TRCTRAP, and the sleep was not cut short."""
    t0 = time.monotonic()
    p = subprocess.Popen(["sleep", "1.5"])
    try:
        wait_state(p.pid, "S")
        attach_stopped(fs, p.pid)
        ctl(fs, p.pid, "step")                        # into the restarted nanosleep
        assert _err(ctl, fs, p.pid, "step") == errno.EBUSY
        ctl(fs, p.pid, "wait")
        assert 1.5 <= time.monotonic() - t0 <= 2.5
        assert proc_state(p.pid) == "t"
        v = n_regs.parse(fs.read(p.pid, "regs")).values
        if "r_rax" in v:
            assert v["r_rax"] == 0 and v["r_trapno"] == 10          # T_TRCTRAP
        ctl(fs, p.pid, "detach")
        assert p.wait(5) == 0
    finally:
        p.kill()
        p.wait()
