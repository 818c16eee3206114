"""The permission matrix: no caller gets through the mount what the kernel would refuse it
directly, nor what FreeBSD's rules refuse (issue 12).

{nobody, a second user} x {root's process, the other user's, own, own + ambient
capabilities, own + file capabilities, set-uid, set-gid, non-dumpable, zombie, pid 1, a
kernel thread} x {every node: stat, read, write, open O_RDWR; the directory listing; the
file/exe links; ctl words}.  The kernel's answer is not modelled: the same observer
process, as that user, tries the Linux /proc equivalent itself (open /proc/PID/mem for
the ATTACH-mode nodes, smaps for map, readlink of exe, kill(pid, 0) for a signal).
FreeBSD's answer is computed here from the target's credentials (p_cansee, p_candebug,
vaccess, P_SUGID as defined in backends/linux.py) without the code under test.  An
operation counts as an access when it transfers data or has an effect; every access
must be allowed by both.  One observer process per user does all of its cells.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import time

import pytest
from test_fuse_common import PLAIN_PYTHON, ensure_user, needs_fuse, proc_state

from bsdprocfs.fuse import mounted
from bsdprocfs.tree import PID_NODES

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.root, pytest.mark.timeout(120)]

NOBODY = 65534
SECOND = "bsdpfs_matrix"
NODES = {n.name: n for n in PID_NODES}
#: ctl words in a harmless order: untraced words first, attach then detach last
WORDS = ["step", "run", "wait", "winch", "bogus", "attach", "detach"]
#: node -> the Linux /proc access the kernel guards it with, tried by the observer
KERNEL = {
    "mem": "mem", "regs": "mem", "fpregs": "mem", "dbregs": "mem", "ctl": "mem",
    "note": "mem", "notepg": "mem", "osrel": "exe_stat", "etype": "exe_stat",
    "map": "smaps", "file": "exe_link", "exe": "exe_link",
    "status": "status", "cmdline": "cmdline", "rlimit": "limits",
}
PF_KTHREAD = 0x00200000
CAP_NET_RAW = 13
SLEEP = "import time\nwhile True: time.sleep(60)\n"

PROBE = r"""
import errno, json, os, sys
def name(e):
    return "EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode.get(e.errno, str(e.errno))
out = []
for op in json.loads(sys.stdin.read()):
    kind, path = op[0], op[1]
    try:
        if kind == "stat":
            st = os.lstat(path); r = [st.st_mode, st.st_uid, st.st_gid]
        elif kind == "read":
            fd = os.open(path, os.O_RDONLY)
            try: r = os.pread(fd, op[3], op[2]).hex()
            finally: os.close(fd)
        elif kind == "write":
            fd = os.open(path, os.O_WRONLY)
            try: r = os.pwrite(fd, bytes.fromhex(op[2]), op[3])
            finally: os.close(fd)
        elif kind == "open":
            os.close(os.open(path, op[2])); r = "opened"
        elif kind == "readlink":
            r = os.readlink(path)
        elif kind == "listdir":
            r = sorted(os.listdir(path))
        elif kind == "exe_stat":
            os.stat(path); r = "ok"
        elif kind == "kill0":
            os.kill(op[2], 0); r = "ok"
        else:
            raise ValueError(kind)
        out.append({"ok": r})
    except OSError as e:
        out.append({"errno": name(e)})
print(json.dumps(out))
"""


# ------------------------------------------------------------------ the world
def _user(name: str) -> tuple[int, int]:
    return ensure_user(name)


def _as(uid: int, gid: int, argv: list[str], extra: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                             *extra, *argv], cwd="/", stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def _file_caps(path: str, cap: int) -> None:
    """security.capability v2 (what setcap cap_net_raw+ep writes): permitted + effective."""
    os.setxattr(path, "security.capability", struct.pack("<IIIII", 0x02000001, 1 << cap,
                                                         0, 0, 0))


def _settled(pid: int, uid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            st = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    ruid = next(ln for ln in st.split(b"\n") if ln.startswith(b"Uid:")).split()[1]
    return int(ruid) == uid and not cmd.startswith(b"setpriv") and proc_state(pid) == "S"


def _wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not settle")
        time.sleep(0.01)


def _kthread() -> int:
    for n in sorted(int(x) for x in os.listdir("/proc") if x.isdigit()):
        try:
            with open(f"/proc/{n}/stat", "rb") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(b")") + 2:].split()[6]) & PF_KTHREAD and n != 1:
            return n
    pytest.skip("no kernel thread visible in this pid namespace")


@pytest.fixture(scope="module")
def world():
    users = {"nobody": (NOBODY, NOBODY), "second": _user(SECOND)}
    d = tempfile.mkdtemp(prefix="bsdpfs-matrix-")
    os.chmod(d, 0o755)
    bins = {}
    for name, mode, caps in (("plain", 0o755, False), ("fcap", 0o755, True),
                             ("suid", 0o4755, False), ("sgid", 0o2755, False)):
        path = os.path.join(d, f"sleep-{name}")
        shutil.copy2("/bin/sleep", path)
        os.chown(path, 0, 0)
        os.chmod(path, mode)
        if caps:
            _file_caps(path, CAP_NET_RAW)
        bins[name] = path
    procs: list[subprocess.Popen] = []
    targets: dict[str, dict[str, int]] = {}
    try:
        root = subprocess.Popen([bins["plain"], "600"], stdin=subprocess.DEVNULL)
        procs.append(root)
        for uname, (uid, gid) in users.items():
            t: dict[str, int] = {}

            def start(key: str, argv: list[str], extra: list[str] = (),
                      uid: int = uid, gid: int = gid, t: dict = t) -> None:
                p = _as(uid, gid, argv, list(extra))
                procs.append(p)
                t[key] = p.pid

            start("own", [bins["plain"], "600"])
            start("own_ambient", [bins["plain"], "600"],
                  ["--inh-caps=+net_raw", "--ambient-caps=+net_raw"])
            start("own_filecaps", [bins["fcap"], "600"])
            start("setuid", [bins["suid"], "600"])
            start("setgid", [bins["sgid"], "600"])
            start("nondumpable", [PLAIN_PYTHON, "-c", "import ctypes\n"
                                  "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"
                                  "print(flush=True)\n" + SLEEP])
            procs[-1].stdout.readline()          # PR_SET_DUMPABLE 0 is done
            zp = _as(uid, gid, [PLAIN_PYTHON, "-c", "import os, sys, time\npid = os.fork()\n"
                                "if pid == 0: os._exit(0)\nprint(pid, flush=True)\n" + SLEEP])
            procs.append(zp)
            assert zp.stdout
            t["zombie"] = int(zp.stdout.readline())
            targets[uname] = t
        for uname, (uid, _gid) in users.items():
            for key, pid in targets[uname].items():
                if key == "zombie":
                    _wait(lambda pid=pid: proc_state(pid) == "Z", f"{uname} zombie")
                else:
                    _wait(lambda pid=pid, uid=uid: _settled(pid, uid), f"{uname} {key}")
        _wait(lambda: proc_state(root.pid) == "S", "root's sleep")
        shared = {"root": root.pid, "pid1": 1, "kthread": _kthread()}
        with mounted() as m:
            yield m, users, targets, shared
            assert m.proc.poll() is None, m.log_text()
            assert "Traceback" not in m.log_text(), m.log_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------- FreeBSD's answer
def _creds(pid: int) -> dict:
    """The target's credentials and P_SUGID as FreeBSD would hold them (read as root)."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
    uids = [int(x) for x in fields["Uid"].split()]
    gids = [int(x) for x in fields["Gid"].split()]
    groups = [int(x) for x in fields["Groups"].split()]
    caps = any(int(fields[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"))
    with open(f"/proc/{pid}/stat", "rb") as f:
        st = f.read()
    system = bool(int(st[st.rindex(b")") + 2:].split()[6]) & PF_KTHREAD)
    owner = os.stat(f"/proc/{pid}/stat")     # (the directory inode keeps its old owner)
    sugid = not system and (len(set(uids[:3])) > 1 or len(set(gids[:3])) > 1
                            or owner.st_uid != uids[1] or owner.st_gid != gids[1]
                            or (0 not in uids[:3] and caps))
    return {"ruid": uids[0], "euid": uids[1], "suid": uids[2], "rgid": gids[0],
            "egid": gids[1], "sgid": gids[2], "groups": groups, "sugid": sugid,
            "system": system, "zombie": proc_state(pid) in ("Z", "X")}


def _candebug(uid: int, gid: int, c: dict) -> bool:
    """kern_prot.c p_candebug for an unprivileged caller with groups {gid}."""
    mine = {gid}
    return (uid == c["ruid"] == c["euid"] == c["suid"]
            and {c["rgid"], c["egid"], c["sgid"], *c["groups"]} <= mine
            and not c["sugid"] and not c["system"])


def _visible(name: str, uid: int, gid: int, c: dict) -> bool:
    if c["zombie"]:
        return False                        # pfs_visible: P_WEXIT hides the directory
    vis = NODES[name].vis
    if vis is None:
        return True
    if c["system"]:
        return False
    return vis != "candebug" or _candebug(uid, gid, c)


def _mode(name: str, c: dict) -> int:
    n = NODES[name]
    return 0 if (n.attr and c["sugid"]) else n.mode


def _vaccess(name: str, uid: int, gid: int, c: dict, rd: bool, wr: bool) -> bool:
    mode = _mode(name, c)
    bits = mode >> 6 if uid == c["ruid"] else mode >> 3 if gid == c["rgid"] else mode
    return (not rd or bool(bits & 4)) and (not wr or bool(bits & 2))


def _freebsd(op: str, name: str, uid: int, gid: int, c: dict) -> bool:
    """May FreeBSD's procfs give this access?"""
    if not _visible(name, uid, gid, c):
        return False
    n = NODES[name]
    if op == "readlink":
        return n.kind == "link"
    rd, wr = op in ("read", "rdwr"), op in ("write", "rdwr") or op.startswith("ctl:")
    if not _vaccess(name, uid, gid, c, rd, wr):
        return False
    if (rd and not n.rd) or (wr and not n.wr):
        return False
    if name == "map" or n.vis == "candebug" or op.startswith("ctl:"):
        return _candebug(uid, gid, c)
    return True


# ----------------------------------------------------------------- the cells
def _cells(m, users, targets, shared):
    """Per user: (ops for the observer, cell descriptions, the kernel ops' indexes)."""
    plans = {}
    for uname in users:
        other = "second" if uname == "nobody" else "nobody"
        cols = {**targets[uname], "other": targets[other]["own"],
                **shared}
        ops: list[list] = []
        cells: list[tuple] = []
        kern: dict[tuple[str, str], int] = {}
        for col, pid in cols.items():
            c = _creds(pid) if os.path.exists(f"/proc/{pid}") else None
            if c is None:
                continue
            base = f"{m.path}/{pid}"
            for kop in set(KERNEL.values()) | {"kill0"}:
                kern[(col, kop)] = len(ops)
                if kop == "mem":
                    ops.append(["open", f"/proc/{pid}/mem", os.O_RDONLY])
                elif kop == "smaps":
                    ops.append(["open", f"/proc/{pid}/smaps", os.O_RDONLY])
                elif kop == "exe_link":
                    ops.append(["readlink", f"/proc/{pid}/exe"])
                elif kop == "exe_stat":
                    ops.append(["exe_stat", f"/proc/{pid}/exe"])
                elif kop == "kill0":
                    ops.append(["kill0", "", pid])
                else:
                    ops.append(["read", f"/proc/{pid}/{kop}", 0, 64])
            ops.append(["listdir", base])
            cells.append((col, pid, c, "readdir", None, len(ops) - 1))
            addr = _first_addr(pid)
            for name, n in NODES.items():
                rel = f"{base}/{name}"
                for op, o in (("stat", ["stat", rel]),
                              ("read", ["read", rel, addr if name == "mem" else 0, 64]),
                              ("write", ["write", rel, _same_bytes(pid, addr, name), addr
                                         if name == "mem" else 0]),
                              ("rdwr", ["open", rel, os.O_RDWR])):
                    if name == "ctl" and op == "write":
                        continue                     # ctl words below
                    if n.kind == "link" and op != "stat":
                        continue                     # open follows the link: not ours
                    if name == "osrel" and op == "write":
                        o = ["write", rel, _osrel_now(pid), 0]
                    ops.append(o)
                    cells.append((col, pid, c, op, name, len(ops) - 1))
                if n.kind == "link":
                    ops.append(["readlink", rel])
                    cells.append((col, pid, c, "readlink", name, len(ops) - 1))
            for w in WORDS:
                ops.append(["write", f"{base}/ctl", w.encode().hex(), 0])
                cells.append((col, pid, c, f"ctl:{w}", "ctl", len(ops) - 1))
        plans[uname] = (ops, cells, kern)
    return plans


def _first_addr(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return int(f.readline().split("-")[0], 16)
    except (OSError, ValueError):
        return 0


def _same_bytes(pid: int, addr: int, name: str) -> str:
    """What a write puts: for mem the bytes already there (a write that wrongly
    succeeds must still change nothing), else one byte."""
    if name != "mem" or not addr:
        return b"x".hex()
    try:
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(addr)
            return f.read(16).hex()
    except OSError:
        return b"x".hex()


def _osrel_now(pid: int) -> str:
    return b"0\n".hex()


def _kernel(op: str, name: str | None, col: str, word: str | None, res: list, kern: dict,
            system: bool) -> bool:
    """May the kernel give this caller this access directly (its own try, as that user)?"""
    def ok(kop: str) -> bool:
        return "ok" in res[kern[(col, kop)]]
    if op in ("stat", "readdir"):
        return True                   # hidepid=0: anyone may stat /proc/PID and list it
    if op.startswith("ctl:"):
        if word in ("winch",):
            return ok("kill0")        # a posted signal: kill(2)'s rule
        return ok("mem")              # ptrace: PTRACE_MODE_ATTACH
    assert name is not None
    if system and KERNEL[name] == "exe_stat":
        return ok("status")           # a kernel thread has no image: nothing is read
    return ok(KERNEL[name])


def _is_access(op: str, r: dict) -> bool:
    """Did this operation hand out data or act?  (An open alone hands out nothing: the
    read or write it leads to is its own cell; detach of an untraced process and an
    unknown word do nothing.)"""
    if "ok" not in r:
        return False
    return op not in ("stat", "readdir", "rdwr", "ctl:detach", "ctl:bogus")


def test_no_access_beyond_the_kernel_or_freebsd(world, capsys):
    m, users, targets, shared = world
    plans = _cells(m, users, targets, shared)
    violations, granted, size = [], {}, 0
    for uname, (uid, gid) in users.items():
        ops, cells, kern = plans[uname]
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                            PLAIN_PYTHON, "-I", "-c", PROBE], input=json.dumps(ops),
                           capture_output=True, text=True, timeout=90, cwd="/")
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        for col, _pid, c, op, name, i in cells:
            size += 1
            got = res[i]
            word = op.split(":", 1)[1] if op.startswith("ctl:") else None
            if op == "readdir":
                if "ok" in got:
                    extra = [x for x in got["ok"] if not _visible(x, uid, gid, c)]
                    if extra or c["zombie"]:
                        violations.append((uname, col, "readdir", extra))
                continue
            assert name is not None
            if op == "stat":
                if "ok" in got:
                    want = (_mode(name, c), c["ruid"])
                    have = (stat.S_IMODE(got["ok"][0]), got["ok"][1])
                    if not _visible(name, uid, gid, c) or have != want:
                        violations.append((uname, col, "stat", name, have, want))
                continue
            if not _is_access(op, got):
                continue
            granted[(uname, col)] = granted.get((uname, col), 0) + 1
            kern_ok = _kernel(op, name, col, word, res, kern, c["system"])
            bsd_ok = _freebsd(op, name, uid, gid, c)
            if not (kern_ok and bsd_ok):
                violations.append((uname, col, op, name, f"kernel={kern_ok}",
                                   f"freebsd={bsd_ok}", str(got)[:60]))
    with capsys.disabled():
        print(f"\npermission matrix: {size} cells, {sum(granted.values())} accesses granted")
    assert violations == [], violations
    # not vacuous: each user reads its own process's nodes, and the matrix is complete
    for uname in users:
        assert granted.get((uname, "own"), 0) >= 10, granted
        assert granted.get((uname, "root"), 0) >= 3, granted          # status & co
    assert size >= 2 * 11 * 60, size
    # and nothing was harmed: every live target still sleeps, untraced
    for uname in users:
        for col, pid in targets[uname].items():
            if col == "zombie":
                continue
            with open(f"/proc/{pid}/status") as f:
                text = f.read()
            assert "TracerPid:\t0\n" in text and "State:\tS" in text, (uname, col, text)


def test_capability_targets_hide_their_debug_nodes(world):
    """P_SUGID for capabilities: mode 0 on the attr nodes, no debug nodes listed."""
    m, users, targets, _shared = world
    debug = {n for n, x in NODES.items() if x.vis == "candebug"}
    uid, gid = users["nobody"]
    ops = []
    for col in ("own_ambient", "own_filecaps", "nondumpable"):
        pid = targets["nobody"][col]
        ops += [["listdir", f"{m.path}/{pid}"], ["stat", f"{m.path}/{pid}/ctl"]]
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                        PLAIN_PYTHON, "-I", "-c", PROBE], input=json.dumps(ops),
                       capture_output=True, text=True, timeout=60, cwd="/")
    res = json.loads(r.stdout)
    for i in range(0, len(res), 2):
        assert not debug & set(res[i]["ok"]), res[i]
        assert stat.S_IMODE(res[i + 1]["ok"][0]) == 0, res[i + 1]
