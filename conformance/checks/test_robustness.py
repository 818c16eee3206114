"""Robustness (LTP proc01/read_all): a parallel walk reading every file of every
process (register nodes only of the suite's own, see SEIZING) with several read
sizes and an errno allowlist; process churn during reads; chunked reads equal
whole reads for stable nodes."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bsdprocfs_conformance.spec import NODE
from bsdprocfs_conformance.targets import read
from bsdprocfs_conformance.util import parse_status

#: (errno, nodes or "*", why) -- LTP's known-issues table, for FreeBSD procfs.
ALLOWED = (
    (errno.ENOENT, "*", "the process exited between readdir and open"),
    (errno.EIO, "*", "the process exited while the file was open"),
    (errno.EPERM, ("map", "mem", "regs", "fpregs", "dbregs"), "the fill re-checks p_candebug"),
    (errno.EBUSY, ("regs", "fpregs", "dbregs"), "target not stopped"),
    (errno.EFAULT, ("mem",), "address 0 is never mapped"),
    (errno.EBADF, ("note", "notepg", "ctl"), "write-only node opened by root"),
    (errno.EACCES, "*", "mode bits"),
    (errno.ESRCH, "*", "p_cansee"),
)
#: bytes read per file at most, by read size.  LTP reads to EOF; but every read
#: of a pseudofs node regenerates it whole, so one-byte reads of every map would
#: cost minutes: small sizes read a prefix (16 and 8 reads), large ones to EOF.
CAP = {1: 16, 64: 512, 1024: 1 << 20, 65536: 1 << 20}


def allowed(node: str, err: int) -> bool:
    return any(e == err and (nodes == "*" or node in nodes) for e, nodes, _ in ALLOWED)


def read_chunks(target, rel: str, size: int, cap: int) -> bytes:
    h = target.open(rel, "r")
    try:
        out = b""
        while len(out) < cap:
            more = h.pread(size, len(out))
            if not more:
                break
            assert len(more) <= size, f"{rel}: read returned more than asked"
            out += more
        return out
    finally:
        h.close()


#: nodes the walk reads only of processes it owns: a Linux shim emulates FreeBSD's
#: register reads (dbregs of a running process, any regset of a stopped one) by
#: seizing the process for an instant, which interrupts whatever system call it
#: sleeps in and makes a concurrent attach by its own debugger fail with EBUSY.  A
#: conformance run must not perturb processes it does not own (other test workers'
#: subjects, the rest of the machine).
SEIZING = frozenset({"regs", "fpregs", "dbregs"})


def walk_pid(target, pid: str, size: int, own: frozenset[str] = frozenset()) -> list[str]:
    bad = []
    try:
        names = target.listdir(pid)
    except OSError as e:
        return [] if e.errno in (errno.ENOENT, errno.EIO, errno.ESRCH) else [f"{pid}: {e}"]
    for node in names:
        n = NODE.get(node)
        if n is None:
            bad.append(f"{pid}/{node}: unknown node listed")
            continue
        if node in SEIZING and pid not in own:
            continue
        rel = f"{pid}/{node}"
        try:
            if n.kind == "link":
                target.readlink(rel)
            else:
                read_chunks(target, rel, size, CAP[size])
        except OSError as e:
            if not allowed(node, e.errno or 0):
                bad.append(f"{rel}: {errno.errorcode.get(e.errno or 0, e.errno)} {e}")
    return bad


@pytest.mark.procfs("*", "robustness")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", sorted(CAP))
def test_walk(target, pool, size):
    pool.get("sleeping")
    pool.get("running")
    pids = [p for p in target.listdir("") if p.isdigit()]
    own = frozenset([str(os.getpid())] + [str(s.pid) for s in pool.all if s.pid])
    assert own & set(pids), "the walk must reach the suite's own processes"
    if size != max(CAP):
        # every process of the machine once, at the whole-node size; the small read sizes
        # (a per-node property) on the suite's own processes, init and a kernel thread
        pids = [p for p in pids if p in own or p in ("1", "2")]
    with ThreadPoolExecutor(4) as ex:
        bad = [b for r in ex.map(lambda p: walk_pid(target, p, size, own), pids) for b in r]
    assert not bad, "\n".join(bad[:20])


@pytest.mark.procfs("*", "robustness")
@pytest.mark.parametrize("size", [1, 7, 64, 1024])
@pytest.mark.parametrize("node", ["cmdline", "etype", "rlimit", "osrel"])
def test_chunked_equals_whole(target, pool, node, size):
    rel = f"{pool.get('rich').pid}/{node}"
    assert read_chunks(target, rel, size, 1 << 16) == read(target, rel)


@pytest.mark.procfs("status", "robustness")
@pytest.mark.timeout(120)
def test_churn(target, pool):
    """Processes come and go while a reader lists the root and reads every status."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["/bin/sh", "-c", "exit 0"], check=False)

    th = threading.Thread(target=churn, daemon=True)
    th.start()
    bad: list[str] = []
    reads = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for pid in [p for p in target.listdir("") if p.isdigit()]:
                try:
                    st = parse_status(read(target, f"{pid}/status"))
                    reads += 1
                    if st.pid != int(pid):
                        bad.append(f"{pid}/status shows pid {st.pid}")
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.EIO, errno.ESRCH):
                        bad.append(f"{pid}/status: {e}")
    finally:
        stop.set()
        th.join(10)
    assert reads > 0 and not bad, "\n".join(bad[:20])


@pytest.mark.procfs("status", "robustness")
def test_exit_during_reads(target, pool):
    """Repeated reads on an fd while the process exits: data, then EIO; nothing else."""
    s = pool.spawn("racer")
    h = target.open(f"{s.pid}/status", "r")
    outcomes = set()
    try:
        threading.Timer(0.05, s.kill).start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                assert parse_status(h.pread(4096, 0)).pid == s.pid
                outcomes.add("data")
            except OSError as e:
                assert e.errno == errno.EIO, e
                outcomes.add("EIO")
                break
    finally:
        h.close()
        s.kill()
    assert outcomes == {"data", "EIO"}
