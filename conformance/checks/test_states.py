"""Every process state x every node (gVisor's ProcPidFile.Subprocess* pattern):
running, sleeping, stopped, traced, zombie, exited, kernel process; plus file
descriptors that outlive their process (spec sections 2, 10, 13)."""

from __future__ import annotations

import errno
import os
import sys

import pytest

from bsdprocfs_conformance.spec import ALL_NODE_NAMES, NODE, regset_sizes
from bsdprocfs_conformance.subjects import LINUX, host_state, wait_for
from bsdprocfs_conformance.targets import read
from bsdprocfs_conformance.util import (
    expect_errno,
    need_ctl,
    need_node,
    parse_map,
    parse_status,
)

STATES = ("running", "sleeping", "stopped", "traced", "zombie", "exited", "kernel")
SIZES = regset_sizes()


@pytest.fixture(scope="module")
def exited_pid(pool):
    s = pool.spawn("exited")
    s.kill()
    return s.pid


def kernel_pid() -> int | None:
    """A kernel process where the host shows one: FreeBSD proc0, Linux kthreadd."""
    if sys.platform.startswith("freebsd"):
        return 0
    if LINUX:
        try:
            with open("/proc/2/stat", "rb") as f:
                st = f.read()
            if int(st[st.rindex(b")") + 2:].split()[6]) & 0x00200000:   # PF_KTHREAD
                return 2
        except (OSError, ValueError, IndexError):
            return None
    return None


def subject_for(state, target, pool, prof, exited_pid):
    if state == "traced":
        need_ctl(prof)
        return pool.traced(target)
    if state == "exited":
        return exited_pid
    if state == "kernel":
        pid = kernel_pid()
        if pid is None:
            pytest.skip("no kernel process visible on this host")
        return pid
    return pool.get(state)


def check_live(target, s, state, node):
    rel = f"{s.pid}/{node}"
    t = s.truth
    if node == "status":
        st = parse_status(read(target, rel))
        assert (st.pid, st.ppid, st.euid) == (s.pid, t["ppid"], t["euid"])
    elif node == "cmdline":
        assert read(target, rel) == b"".join(bytes.fromhex(a) + b"\0" for a in t["argv_hex"])
    elif node == "etype":
        assert read(target, rel).endswith(b" ELF64\n" if sys.maxsize > 2**32 else b" ELF32\n")
    elif node == "rlimit":
        assert read(target, rel).startswith(b"cpu ")
    elif node == "map":
        rw = t["maps"]["rw"]
        assert any(e.start == rw[0] and e.prot == "rw-" for e in parse_map(read(target, rel)))
    elif node == "osrel":
        v = read(target, rel)
        assert v.endswith(b"\n") and v[:-1].isdigit()
    elif node in ("file", "exe"):
        assert os.fsencode(target.readlink(rel)) == bytes.fromhex(t["exe"])
    elif node in ("regs", "fpregs"):
        if state in ("running", "sleeping"):
            expect_errno(errno.EBUSY, read, target, rel, 4096)
        else:
            assert len(read(target, rel, 4096)) == SIZES[node]
    elif node == "dbregs":
        assert len(read(target, rel, 4096)) == SIZES[node], "dbregs are readable while running"
    elif node == "mem":
        rw = t["maps"]["rw"]
        assert read(target, rel, 64, rw[0]) == bytes.fromhex(t["maps"]["pattern"])[:64]
    elif node in ("note", "notepg", "ctl"):
        if os.geteuid() == 0:
            expect_errno(errno.EBADF, read, target, rel, 16)
        else:
            expect_errno(errno.EACCES, target.open, rel, "r")


def check_kernel(target, prof, pid, node):
    rel = f"{pid}/{node}"
    n = NODE[node]
    if n.vis is not None:                 # notsystem / candebug: hidden for P_SYSTEM
        expect_errno(errno.ENOENT, target.lstat, rel)
        assert node not in target.listdir(str(pid))
        return
    if node == "cmdline":
        assert read(target, rel) == b""
    elif node == "etype":
        assert read(target, rel) == b"null\n"
    elif node == "status":
        st = parse_status(read(target, rel))
        assert st.pid == pid and (st.euid, st.ruid) == (0, 0)
    elif node == "rlimit":
        assert len(read(target, rel).split(b"\n")) == len(prof.rlimit_idents) + 1
    elif node == "ctl":
        assert target.lstat(rel).kind == "file", "ctl has no vis callback"


@pytest.mark.procfs("*", "states")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
@pytest.mark.parametrize("state", STATES)
def test_state_node(target, prof, pool, exited_pid, state, node):
    need_node(prof, node)
    if SIZES == {} and node in ("regs", "fpregs", "dbregs"):
        pytest.skip("register layout unknown for this machine")
    s = subject_for(state, target, pool, prof, exited_pid)
    if state in ("zombie", "exited"):
        pid = s if isinstance(s, int) else s.pid
        expect_errno(errno.ENOENT, target.lstat, f"{pid}/{node}")
        expect_errno(errno.ENOENT, target.lstat, str(pid))
        assert str(pid) not in target.listdir("")
        return
    if state == "kernel":
        check_kernel(target, prof, s, node)
        return
    check_live(target, s, state, node)


READABLE = ("cmdline", "dbregs", "etype", "fpregs", "map", "mem", "regs", "rlimit", "status",
            "osrel")


@pytest.fixture(scope="module")
def vanished(target, pool):
    """Per way of dying: a subject with a descriptor open on every readable node, then
    made a zombie or reaped (one subject serves all nodes: the fds were opened while it
    lived, which is all the check needs)."""
    made: dict[str, tuple[object, dict[str, object]]] = {}

    def get(how: str) -> tuple[object, dict[str, object]]:
        if how not in made:
            s = pool.spawn(f"fd-{how}", {"maps": True})
            hs = {node: target.open(f"{s.pid}/{node}", "r") for node in READABLE}
            if how == "reaped":
                s.kill()
            else:
                s.send("exit 0")
                wait_for(lambda: host_state(s.pid) == "Z", 5)
            made[how] = (s, hs)
        return made[how]
    try:
        yield get
    finally:
        for s, hs in made.values():
            for h in hs.values():
                h.close()                                  # type: ignore[attr-defined]
            s.kill()                                       # type: ignore[attr-defined]


@pytest.mark.procfs("*", "vanished")
@pytest.mark.parametrize("node", READABLE)
@pytest.mark.parametrize("how", ["zombie", "reaped"])
def test_open_fd_after_exit(vanished, how, node):
    """A descriptor opened on a live process reads EIO once it is a zombie or gone."""
    s, hs = vanished(how)
    off = s.truth["maps"]["rw"][0] if node == "mem" else 0
    expect_errno(errno.EIO, hs[node].pread, 64, off)
