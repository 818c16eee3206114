"""The permission matrix through a real mount, with a real unprivileged user.

The daemon runs as root; the caller is ``bsdpfs_fuse``.  For every node and
ctl word, against the caller's own process, another uid's process (nobody and
root) and a set-id process (credentials changed: P_SUGID), the exact errno is
asserted: the kernel's default_permissions check on the modes we report
(EACCES), then FreeBSD's rules (ENOENT for hidden nodes, EPERM from map's
p_candebug, EBUSY/EFAULT from the debugger).  Any success where a denial is
expected is an escalation; there must be none.
"""

from __future__ import annotations

import stat

import pytest
from test_fuse_common import ensure_user, kill, needs_fuse, probe_as, spawn_sleeper, wait_for

from bsdprocfs.debug import LINUX_SIGNALS
from bsdprocfs.fuse import mounted
from bsdprocfs.tree import PID_NODES

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.root, pytest.mark.timeout(150)]

NODES = {n.name: n for n in PID_NODES}
FILES = [n.name for n in PID_NODES if n.kind == "file"]
DEBUG_NODES = {n.name for n in PID_NODES if n.vis == "candebug"}
WORDS = ["attach", "detach", "step", "run", "wait", *LINUX_SIGNALS, "bogus", "Attach"]
NOBODY = 65534
OK = "ok"


@pytest.fixture(scope="module")
def world():
    uid, gid = ensure_user()
    procs = {
        "own": spawn_sleeper(uid=uid, gid=gid),
        "other": spawn_sleeper(uid=NOBODY, gid=NOBODY),
        "root": spawn_sleeper(),
        "setid": spawn_sleeper(uid=uid, gid=gid, setid=True),
        "own_g2": spawn_sleeper(uid=uid, gid=4242),
        # single-stepping a task asleep in nanosleep restarts the sleep: the debug
        # sequence needs one that runs user code
        "own_spin": spawn_sleeper(uid=uid, gid=gid, spin=True),
    }
    try:
        with mounted() as m:
            yield m, uid, gid, procs
            assert m.proc.poll() is None, m.log_text()
            assert "Traceback" not in m.log_text(), m.log_text()
    finally:
        for p in procs.values():
            kill(p)


def outcome(r: dict) -> str:
    return OK if "ok" in r else r["errno"]


def expected_stat(kind: str, name: str, uid: int) -> tuple | str:
    owner = {"own": uid, "other": NOBODY, "root": 0, "setid": uid}[kind]
    node = NODES[name]
    if kind != "own" and name in DEBUG_NODES:
        return "ENOENT"                       # procfs_candebug visibility
    mode = 0 if (kind == "setid" and node.attr) else node.mode
    return (mode, owner)


def expected_read(kind: str, name: str) -> str:
    node = NODES[name]
    if kind != "own" and name in DEBUG_NODES:
        return "ENOENT"
    mode = 0 if (kind == "setid" and node.attr) else node.mode
    # the caller owns "own" and "setid"; mode bits checked by the kernel
    bits = mode >> 6 if kind in ("own", "setid") else mode
    if not bits & 4:
        return "EACCES"
    if name == "map" and kind != "own":
        return "EPERM"                        # procfs_domap re-checks p_candebug
    if name == "etype" and kind != "own":
        return "EACCES"                       # the kernel's floor: /proc/PID/exe refused
    if name in ("regs", "fpregs"):
        return "EBUSY"                        # running, not traced by us
    if name == "mem":
        return "EFAULT"                       # offset 0 is not mapped
    return OK                                 # dbregs: FreeBSD reads them while running


def expected_write(kind: str, name: str) -> str:
    node = NODES[name]
    if kind != "own" and name in DEBUG_NODES:
        return "ENOENT"
    mode = 0 if (kind == "setid" and node.attr) else node.mode
    bits = mode >> 6 if kind in ("own", "setid") else mode
    if not bits & 2:
        return "EACCES"
    if name in ("note", "notepg"):
        return "EOPNOTSUPP"
    if name in ("regs", "fpregs", "dbregs"):
        return "EBUSY"
    if name == "mem":
        return "EFAULT"
    return OK


def test_permission_matrix_nodes(world):
    m, uid, gid, procs = world
    ops, want, labels = [], [], []
    for kind in ("own", "other", "root", "setid"):
        pid = procs[kind].pid
        base = f"{m.path}/{pid}"
        for name in NODES:
            ops.append(["stat", f"{base}/{name}"])
            want.append(expected_stat(kind, name, uid))
            labels.append(f"{kind} stat {name}")
        for name in FILES:
            ops.append(["read", f"{base}/{name}", 0, 4096])
            want.append(expected_read(kind, name))
            labels.append(f"{kind} read {name}")
            if name in ("ctl", "osrel"):
                continue                      # ctl words and osrel values below
            ops.append(["write", f"{base}/{name}", b"x".hex()])
            want.append(expected_write(kind, name))
            labels.append(f"{kind} write {name}")
        for link in ("file", "exe"):
            ops.append(["readlink", f"{base}/{link}"])
            # the kernel's floor: readlink /proc/PID/exe needs PTRACE_MODE_READ_FSCREDS
            want.append(OK if kind == "own" else "EACCES")
            labels.append(f"{kind} readlink {link}")
    results = probe_as(uid, gid, ops)
    got = []
    for op, r in zip(ops, results, strict=True):
        if op[0] == "stat" and "ok" in r:
            got.append((stat.S_IMODE(r["ok"][0]), r["ok"][1]))
        else:
            got.append(outcome(r))
    mismatches = [(lab, w, g) for lab, w, g in zip(labels, want, got, strict=True) if w != g]
    assert not mismatches, mismatches
    escalations = [lab for lab, w, g in zip(labels, want, got, strict=True)
                   if w != OK and not isinstance(w, tuple) and g == OK]
    assert escalations == []
    assert len(labels) > 150, len(labels)


def test_permission_matrix_ctl_words_and_osrel(world):
    m, uid, gid, procs = world
    ops, want, labels = [], [], []
    before = {}
    for kind in ("other", "root", "setid"):
        pid = procs[kind].pid
        with open(f"/proc/{pid}/status") as f:
            before[kind] = f.read().split("TracerPid:")[1].split()[0]
        for word in WORDS:
            ops.append(["write", f"{m.path}/{pid}/ctl", word.encode().hex()])
            want.append("EACCES")             # ctl is 0200 (mode 0 when set-id): not ours
            labels.append(f"{kind} ctl {word}")
        ops.append(["write", f"{m.path}/{pid}/osrel", b"1400097\n".hex()])
        want.append("ENOENT")                 # hidden: no p_candebug
        labels.append(f"{kind} osrel write")
        ops.append(["read", f"{m.path}/{pid}/regs", 0, 176])
        want.append("ENOENT")
        labels.append(f"{kind} regs read")
    results = probe_as(uid, gid, ops)
    got = [outcome(r) for r in results]
    mismatches = [(lab, w, g) for lab, w, g in zip(labels, want, got, strict=True) if w != g]
    assert not mismatches, mismatches
    for kind in ("other", "root", "setid"):
        pid = procs[kind].pid
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        assert text.split("TracerPid:")[1].split()[0] == before[kind] == "0"
        assert "State:\tS" in text                  # never stopped, never signalled


def test_own_process_full_debug_sequence(world):
    m, uid, gid, procs = world
    pid = procs["own_spin"].pid
    base = f"{m.path}/{pid}"
    with open(f"/proc/{pid}/maps") as f:
        addr = int(f.readline().split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        first = f.read(16)
    seq = [
        (["write", f"{base}/ctl", b"step".hex()], "EBUSY"),      # not traced
        (["write", f"{base}/ctl", b"run".hex()], "EBUSY"),
        (["write", f"{base}/ctl", b"detach".hex()], OK),         # not traced: no-op
        (["write", f"{base}/ctl", b"emt".hex()], "EOPNOTSUPP"),
        (["write", f"{base}/ctl", b"bogus".hex()], "EOPNOTSUPP"),
        (["write", f"{base}/ctl", b"winch\n".hex()], OK),        # posted, ignored
        (["write", f"{base}/ctl", b"attach".hex()], OK),
        (["write", f"{base}/ctl", b"attach".hex()], "EBUSY"),
        (["write", f"{base}/ctl", b"wait".hex()], OK),
        (["read", f"{base}/regs", 0, 4096], OK),
        (["read", f"{base}/fpregs", 0, 4096], OK),
        (["read", f"{base}/dbregs", 0, 4096], OK),
        (["read", f"{base}/mem", addr, 16], OK),
        (["write", f"{base}/ctl", b"step".hex()], OK),
        (["write", f"{base}/ctl", b"run".hex()], OK),
        (["write", f"{base}/ctl", b"detach".hex()], OK),
        (["write", f"{base}/osrel", b"1400097\n".hex()], OK),
        (["read", f"{base}/osrel", 0, 64], OK),
        (["write", f"{m.path}/curproc/ctl", b"attach".hex()], "EINVAL"),   # oneself
    ]
    results = probe_as(uid, gid, [op for op, _ in seq])
    got = [outcome(r) for r in results]
    assert got == [w for _, w in seq], list(zip([op[0:2] for op, _ in seq], got, strict=True))
    assert len(bytes.fromhex(results[9]["ok"])) == 176
    assert len(bytes.fromhex(results[10]["ok"])) == 512
    assert len(bytes.fromhex(results[11]["ok"])) == 128
    assert bytes.fromhex(results[12]["ok"]) == first
    assert bytes.fromhex(results[17]["ok"]) == b"1400097\n"
    def untraced() -> bool:
        with open(f"/proc/{pid}/status") as f:
            return "TracerPid:\t0" in f.read()
    wait_for(untraced)
    log = m.log_text()
    assert f"ctl pid {pid} b'attach' by pid" in log and f"uid {uid}: ok" in log


def test_supplementary_groups_come_from_fuse_getgroups(world):
    """p_candebug needs the target's gids in the caller's groups: only the
    supplementary group list (fuse_getgroups) can make that true here."""
    m, uid, gid, procs = world
    pid = procs["own_g2"].pid
    ops = [["stat", f"{m.path}/{pid}/regs"], ["read", f"{m.path}/{pid}/map", 0, 1 << 16]]
    without = probe_as(uid, gid, ops)
    with_g2 = probe_as(uid, gid, ops, groups=(4242,))
    assert [outcome(r) for r in without] == ["ENOENT", "EPERM"]
    assert outcome(with_g2[0]) == OK and stat.S_IMODE(with_g2[0]["ok"][0]) == 0o600
    # FreeBSD's rule passes, the kernel's does not (ptrace wants the caller's gid to be
    # the target's real, effective and saved gid): the floor holds, EPERM
    assert outcome(with_g2[1]) == "EPERM"


def test_unprivileged_curproc_and_listing(world):
    m, uid, gid, procs = world
    r = probe_as(uid, gid, [["readlink", f"{m.path}/curproc"],
                            ["listdir", f"{m.path}/{procs['other'].pid}"],
                            ["listdir", f"{m.path}/{procs['own'].pid}"]])
    assert outcome(r[0]) == OK and r[0]["ok"].isdigit(), r
    assert r[1]["ok"] == [n for n in NODES if n not in DEBUG_NODES]
    assert r[2]["ok"] == list(NODES)
