"""regs, fpregs, dbregs, mem, note/notepg and osrel writes on real processes."""

from __future__ import annotations

import errno
import os
import signal
import struct
import threading

import pytest
import test_ptrace_util as _util
from test_ptrace_util import (
    OtherTracer,
    attach_stopped,
    needs_ptrace,
    sigstop,
    wait_state,
)

from bsdprocfs.access import Reader
from bsdprocfs.debug import get_debugger, proc_state, tracer_pid
from bsdprocfs.nodes import dbregs as n_dbregs
from bsdprocfs.nodes import fpregs as n_fpregs
from bsdprocfs.nodes import regs as n_regs
from bsdprocfs.ptrace.layouts import host_arch

# the shared fixtures, bound here so pytest finds them
fs = _util.fs
spin = _util.spin
spinner_cmd = _util.spinner_cmd

pytestmark = [needs_ptrace, pytest.mark.timeout(60)]
amd64 = pytest.mark.skipif(host_arch() != "amd64", reason="amd64 register tests")


def _err(fn, *a, **k) -> int:
    with pytest.raises(OSError) as ei:
        fn(*a, **k)
    return ei.value.errno


def regs(fs, pid):
    return n_regs.parse(fs.read(pid, "regs"))


# ---------------------------------------------------------------- regs
@amd64
def test_regs_agree_with_python_ptrace_linux_getregs(fs, spin):
    attach_stopped(fs, spin.pid)
    rec = regs(fs, spin.pid)
    from ptrace.binding.func import ptrace_getregs
    dbg = get_debugger()
    # python-ptrace must run on the tracer thread: Linux only answers the tracer
    lr = dbg.tracer.call(ptrace_getregs, spin.pid)
    assert rec["r_rip"] == lr.rip and rec["r_rsp"] == lr.rsp
    assert rec["r_rax"] == lr.rax and rec["r_rflags"] == lr.eflags
    assert rec["r_cs"] == lr.cs and rec["r_ss"] == lr.ss
    assert rec["r_trapno"] == 0          # an attach stop is no trap
    raw = fs.read(spin.pid, "regs")
    assert len(raw) == 176 and struct.unpack_from("<Q", raw, 136)[0] == lr.rip


@amd64
def test_regs_write_round_trip_rax_and_rip(fs, spin):
    attach_stopped(fs, spin.pid)
    # a short write overlays the head of the struct: 8 bytes = r_r15
    assert fs.write(spin.pid, "regs", struct.pack("<Q", 0xABCDEF)) == 8
    assert regs(fs, spin.pid)["r_r15"] == 0xABCDEF
    cur = fs.read(spin.pid, "regs")
    new = bytearray(cur)
    struct.pack_into("<Q", new, 112, 0x1122334455667788)       # r_rax
    struct.pack_into("<Q", new, 136, spin.tick)                 # r_rip = tick()
    assert fs.write(spin.pid, "regs", bytes(new)) == 176
    rec = regs(fs, spin.pid)
    assert rec["r_rax"] == 0x1122334455667788 and rec["r_rip"] == spin.tick
    fs.write(spin.pid, "ctl", b"step")
    rec2 = regs(fs, spin.pid)
    assert spin.tick < rec2["r_rip"] < spin.tick + 16        # stepped inside tick()
    assert rec2["r_trapno"] == 10                               # T_TRCTRAP
    # extra bytes beyond sizeof are not consumed; non-zero offsets do nothing
    assert fs.write(spin.pid, "regs", bytes(new) + b"xx") == 176
    assert fs.write(spin.pid, "regs", b"\0" * 8, offset=8) == 0
    assert fs.read(spin.pid, "regs", offset=1) == b""
    assert fs.read(spin.pid, "regs", size=8) == fs.read(spin.pid, "regs")[:8]


def test_regs_busy_when_running(fs, spin):
    assert _err(fs.read, spin.pid, "regs") == errno.EBUSY
    assert _err(fs.read, spin.pid, "fpregs") == errno.EBUSY
    assert _err(fs.write, spin.pid, "regs", b"\0" * 8) == errno.EBUSY
    fs.write(spin.pid, "ctl", b"attach")
    fs.write(spin.pid, "ctl", b"wait")
    fs.write(spin.pid, "ctl", b"run")
    assert _err(fs.read, spin.pid, "regs") == errno.EBUSY       # traced but running
    assert _err(fs.write, spin.pid, "dbregs", b"\0" * 8) == errno.EBUSY
    assert proc_state(spin.pid) in "RS"


@amd64
def test_regs_of_process_stopped_by_someone_else(fs, spin):
    """Transient seize: readable, and left group-stopped and untraced, as it was."""
    sigstop(spin)
    rec = regs(fs, spin.pid)
    assert rec["r_rip"] != 0 and rec["r_rsp"] != 0
    fp = n_fpregs.parse(fs.read(spin.pid, "fpregs"))
    assert fp["fpr_env"][0] & 0xFFFF == 0x37F                    # x87 control word default
    assert len(fs.read(spin.pid, "dbregs")) == 128
    # a transient write sticks (the registers live in the task)...
    new = bytearray(fs.read(spin.pid, "regs"))
    struct.pack_into("<Q", new, 112, 0x5A5A5A5A)                # r_rax
    assert fs.write(spin.pid, "regs", bytes(new)) == 176
    assert regs(fs, spin.pid)["r_rax"] == 0x5A5A5A5A
    # and so do debug registers: Linux keeps them armed after the transient detach
    cur = fs.read(spin.pid, "dbregs")
    assert fs.write(spin.pid, "dbregs", struct.pack("<Q", spin.tick)) == 8   # DR0, DR7 off
    assert n_dbregs.parse(fs.read(spin.pid, "dbregs"))["dr"][0] == spin.tick
    assert fs.write(spin.pid, "dbregs", cur) == 128
    assert fs.read(spin.pid, "dbregs") == cur
    assert wait_state(spin.pid, "T") == "T" and tracer_pid(spin.pid) == 0
    assert not get_debugger().traced_by_us(spin.pid)
    os.kill(spin.pid, signal.SIGCONT)
    assert wait_state(spin.pid, "RS") in "RS"


def test_regs_traced_by_another_debugger_is_busy(fs, spin):
    other = OtherTracer(spin.pid)
    try:
        assert _err(fs.read, spin.pid, "regs") == errno.EBUSY
    finally:
        other.close()


# --------------------------------------------------------------- fpregs
@amd64
def test_fpregs_fxsave_round_trip(fs, spin):
    attach_stopped(fs, spin.pid)
    data = fs.read(spin.pid, "fpregs")
    assert len(data) == 512
    fp = n_fpregs.parse(data)
    assert struct.unpack_from("<I", data, 24)[0] & 0xFFBF == 0x1F80   # MXCSR default
    xmm7 = struct.pack("<d", 42.0).ljust(16, b"\0")
    new = bytearray(data)
    new[160 + 7 * 16: 160 + 8 * 16] = xmm7
    assert fs.write(spin.pid, "fpregs", bytes(new)) == 512
    back = n_fpregs.parse(fs.read(spin.pid, "fpregs"))
    assert back["fpr_xacc"][7 * 16: 8 * 16] == xmm7
    assert back["fpr_env"] == fp["fpr_env"]


# --------------------------------------------------------------- dbregs
@amd64
def test_dbregs_hardware_breakpoint_fires_after_run(fs, spin):
    attach_stopped(fs, spin.pid)
    d = n_dbregs.parse(fs.read(spin.pid, "dbregs"))
    assert d["dr"][:4] == [0, 0, 0, 0] and d["dr"][7] == 0
    dr = list(d["dr"])
    dr[0] = spin.tick                   # DR0 = address of tick()
    dr[7] = 1                           # L0: local enable, execute breakpoint
    assert fs.write(spin.pid, "dbregs", n_dbregs.render(d.replace(dr=dr))) == 128
    back = n_dbregs.parse(fs.read(spin.pid, "dbregs"))
    assert back["dr"][0] == spin.tick and back["dr"][7] & 1
    fs.write(spin.pid, "ctl", b"run")
    fs.write(spin.pid, "ctl", b"wait")
    rec = regs(fs, spin.pid)
    assert rec["r_rip"] == spin.tick and rec["r_trapno"] == 10
    hit = n_dbregs.parse(fs.read(spin.pid, "dbregs"))
    assert hit["dr"][6] & 1                                      # DR6.B0
    off = list(hit["dr"])
    off[7] = 0
    fs.write(spin.pid, "dbregs", n_dbregs.render(hit.replace(dr=off)))
    reserved = list(off)
    reserved[4] = 1
    assert _err(fs.write, spin.pid, "dbregs",
                n_dbregs.render(hit.replace(dr=reserved))) == errno.EINVAL


@amd64
def test_dbregs_read_while_running(fs, spin):
    """FreeBSD reads dbregs while running.  Not traced: a transient seize + interrupt +
    detach that leaves the target running and untraced; traced by us and running:
    interrupt, read, continue."""
    data = fs.read(spin.pid, "dbregs")
    assert len(data) == 128
    assert n_dbregs.parse(data)["dr"][6] & 0xFFFF0FF0 == 0xFFFF0FF0   # DR6 reserved ones
    assert wait_state(spin.pid, "R") == "R" and tracer_pid(spin.pid) == 0
    assert get_debugger().tracer.targets.get(spin.pid) is None     # not kept as ours
    attach_stopped(fs, spin.pid)
    fs.write(spin.pid, "ctl", b"run")
    assert len(fs.read(spin.pid, "dbregs")) == 128
    dbg = get_debugger()
    t = dbg.tracer.targets[spin.pid]
    assert not t.stopped
    assert wait_state(spin.pid, "RS") in "RS"
    fs.write(spin.pid, "ctl", b"detach")
    assert wait_state(spin.pid, "RS") in "RS" and tracer_pid(spin.pid) == 0


# ------------------------------------------------------------------ mem
def _stack(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return next(x for x in f.read().split("\n") if x.endswith("[stack]"))


def test_mem_round_trip_while_running(fs, spin):
    a = fs.read(spin.pid, "mem", offset=spin.counter, size=8)
    assert len(a) == 8
    if spin.counter:
        b = fs.read(spin.pid, "mem", offset=spin.counter, size=8)
        assert struct.unpack("<Q", b)[0] >= struct.unpack("<Q", a)[0]  # it counts
    stack = _stack(spin.pid)
    lo = int(stack.split("-")[0], 16)
    assert fs.write(spin.pid, "mem", b"bsdprocfs!", offset=lo) == 10
    assert fs.read(spin.pid, "mem", offset=lo, size=10) == b"bsdprocfs!"
    assert fs.read(spin.pid, "mem", offset=lo, size=0) == b""
    assert fs.write(spin.pid, "mem", b"", offset=lo) == 0


def test_mem_efault_for_unmapped(fs, spin):
    assert _err(fs.read, spin.pid, "mem", offset=0, size=8) == errno.EFAULT
    assert _err(fs.write, spin.pid, "mem", b"x", offset=8) == errno.EFAULT
    stack = _stack(spin.pid)
    hi = int(stack.split()[0].split("-")[1], 16)
    # a range running off the end of a mapping: EFAULT although bytes were transferred
    assert _err(fs.read, spin.pid, "mem", offset=hi - 4, size=8) == errno.EFAULT
    assert _err(fs.read, spin.pid, "mem", offset=-1, size=8) == errno.EINVAL


def test_mem_and_regs_need_candebug(fs, spin):
    """A reader with another uid: the candebug nodes are invisible (ENOENT)."""
    other = Reader(os.getpid(), 4242, 4242, ())
    for node in ("regs", "fpregs", "dbregs", "mem", "note", "notepg", "osrel"):
        assert _err(fs.read if node not in ("note", "notepg") else fs.write, spin.pid, node,
                    *(() if node not in ("note", "notepg") else (b"x",)),
                    reader=other) == errno.ENOENT, node
        assert node not in fs.listdir(spin.pid, reader=other)
    assert "ctl" in fs.listdir(spin.pid, reader=other)


def test_setid_target_gives_mode_zero(fs):
    """P_SUGID (differing real/effective/saved ids): the attr nodes get mode 0."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", "import os, time\n"
                          "os.setresuid(4242, 4242, 0)\nprint(flush=True)\ntime.sleep(60)"],
                         stdout=subprocess.PIPE)
    try:
        p.stdout.readline()
        for node in ("ctl", "dbregs", "fpregs", "mem", "note", "notepg", "regs", "osrel"):
            assert fs.stat(p.pid, node).mode == 0, node
        assert fs.stat(p.pid, "status").mode == 0o444
        owner = Reader(os.getpid() + 100000, 4242, 4242, ())
        assert node not in fs.listdir(p.pid, reader=owner)       # candebug fails: hidden
        assert _err(fs.write, p.pid, "ctl", b"attach", reader=owner) == errno.EACCES
    finally:
        p.kill()
        p.wait()


# ----------------------------------------------------------- note, osrel
def test_note_notepg(fs, spin):
    for node in ("note", "notepg"):
        assert _err(fs.write, spin.pid, node, b"hup\n") == errno.EOPNOTSUPP
        assert _err(fs.read, spin.pid, node) == errno.EBADF
        assert fs.stat(spin.pid, node).mode == 0o200
    assert proc_state(spin.pid) in "RS"                         # nothing was delivered


def test_osrel_writes(fs, spin):
    assert fs.write(spin.pid, "osrel", b"1400097\n") == 8
    assert fs.read(spin.pid, "osrel") == b"1400097\n"
    assert fs.write(spin.pid, "osrel", b"") == 0
    assert fs.read(spin.pid, "osrel") == b"0\n"
    for bad in (b"-1", b" 12", b"0x10", b"99999999999", b"12a"):
        assert _err(fs.write, spin.pid, "osrel", bad) == errno.EINVAL
    assert fs.read(spin.pid, "osrel") == b"0\n"                 # unchanged by the errors


# ------------------------------------------------------------ threading
def test_regs_from_any_thread(fs, spin):
    """Requests from many threads all reach the one tracer thread."""
    attach_stopped(fs, spin.pid)
    want = fs.read(spin.pid, "regs")
    got: list[bytes] = []

    def reader():
        got.append(fs.read(spin.pid, "regs"))
    th = [threading.Thread(target=reader) for _ in range(8)]
    for t in th:
        t.start()
    for t in th:
        t.join(10)
    assert got == [want] * 8


@amd64
def test_dbregs_stay_armed_after_detach(fs, spin):
    """Measured Linux behaviour, as on FreeBSD: debug registers survive detach, and a
    hit on the now untraced process delivers SIGTRAP (default action: it dies)."""
    attach_stopped(fs, spin.pid)
    d = n_dbregs.parse(fs.read(spin.pid, "dbregs"))
    dr = list(d["dr"])
    dr[0], dr[7] = spin.tick, 1
    fs.write(spin.pid, "dbregs", n_dbregs.render(d.replace(dr=dr)))
    fs.write(spin.pid, "ctl", b"detach")
    assert spin.proc.wait(10) == -signal.SIGTRAP


@amd64
def test_set_pc_cancels_syscall_restart(fs):
    """Attached inside nanosleep, a new rip must be where it resumes (the kernel would
    otherwise rewind it for the interrupted system call's restart)."""
    import subprocess
    p = subprocess.Popen(["sleep", "600"])
    try:
        wait_state(p.pid, "S")
        attach_stopped(fs, p.pid)
        cur = bytearray(fs.read(p.pid, "regs"))
        rip = struct.unpack_from("<Q", cur, 136)[0]
        struct.pack_into("<Q", cur, 136, rip + 5)
        fs.write(p.pid, "regs", bytes(cur))
        assert regs(fs, p.pid)["r_rip"] == rip + 5
        dbg = get_debugger()
        from ptrace.binding.func import ptrace_getregs
        assert dbg.tracer.call(ptrace_getregs, p.pid).orig_rax == (1 << 64) - 1
        fs.write(p.pid, "ctl", b"kill")
    finally:
        p.kill()
        p.wait()
