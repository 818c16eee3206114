"""Helpers shared by the FUSE tests: a real mount, a real unprivileged user, and
a probe that performs filesystem calls *as* that user and reports errnos.

(A module, not a conftest, so only the FUSE tests pull it in.)
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import subprocess
import sys
import time

import pytest

from conftest import wait_for  # noqa: F401 - re-exported for the FUSE tests

TEST_USER = "bsdpfs_fuse"
#: a python the unprivileged user can execute (the venv's lives under /root here)
PLAIN_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                     if os.access(p, os.X_OK)), sys.executable)


def _fuse_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (allow_other mount, unprivileged test user)"
    if not os.path.exists("/dev/fuse"):
        return "needs /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "needs fusermount3 (apt-get install fuse3)"
    # Not `import mfusepy` here: it would bind libfuse2 when both are installed;
    # the daemon (a subprocess) binds libfuse3 itself (bsdprocfs.fuse.load_libfuse3).
    import ctypes.util
    import importlib.util
    if importlib.util.find_spec("mfusepy") is None:
        return "mfusepy is not installed"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is not installed (apt-get install fuse3)"
    return None


FUSE_PROBLEM = _fuse_problem()
needs_fuse = pytest.mark.skipif(FUSE_PROBLEM is not None, reason=FUSE_PROBLEM or "")


def ensure_user(name: str = TEST_USER) -> tuple[int, int]:
    """The test user's (uid, gid), created with useradd if missing (xdist-safe)."""
    for _ in range(50):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            subprocess.run(["useradd", "-M", "-r", "-U", "-s", "/usr/sbin/nologin", name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            time.sleep(0.1)
    raise RuntimeError(f"could not create user {name}")


def proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return "gone"
    return chr(st[st.rindex(b")") + 2])


def spawn_sleeper(*, uid: int | None = None, gid: int | None = None,
                  groups: tuple[int, ...] = (), setid: bool = False,
                  spin: bool = False) -> subprocess.Popen:
    """A child sleeping in a loop, optionally under other credentials.

    setid: start as root and setresuid to (uid, uid, uid) with groups cleared:
    changed credentials make Linux clear "dumpable" (the /proc/PID owner turns
    root), which is P_SUGID in our model."""
    code = "while True: pass\n" if spin else "import time\nwhile True: time.sleep(60)\n"
    if setid:
        code = (f"import os\nos.setgroups([])\nos.setresgid({gid}, {gid}, {gid})\n"
                f"os.setresuid({uid}, {uid}, {uid})\n") + code
        argv = [PLAIN_PYTHON, "-c", code]
    elif uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                "--groups=" + ",".join(map(str, groups)) if groups else "--clear-groups",
                PLAIN_PYTHON, "-c", code]
    else:
        argv = [PLAIN_PYTHON, "-c", code]
    p = subprocess.Popen(argv, cwd="/")
    wait_for(lambda: proc_state(p.pid) == ("R" if spin else "S")
             and _settled(p.pid, uid, setid))
    return p


def _settled(pid: int, uid: int | None, setid: bool) -> bool:
    """The child finished its credential change (setpriv exec'd python / setresuid ran)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            st = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    if not cmd.startswith(PLAIN_PYTHON.encode()) and b"python" not in cmd.split(b"\0")[0]:
        return False
    if uid is None:
        return True
    line = next(ln for ln in st.split(b"\n") if ln.startswith(b"Uid:"))
    return line.split()[1:] == [str(uid).encode()] * 4


def kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()


PROBE = r"""
import errno, json, os, sys
out = []
for op in json.loads(sys.argv[1]):
    kind, path = op[0], op[1]
    try:
        if kind == "stat":
            st = os.lstat(path)
            r = [st.st_mode, st.st_uid, st.st_gid]
        elif kind == "read":
            fd = os.open(path, os.O_RDONLY)
            try:
                r = os.pread(fd, op[3], op[2]).hex()
            finally:
                os.close(fd)
        elif kind == "write":
            fd = os.open(path, os.O_WRONLY)
            try:
                r = os.write(fd, bytes.fromhex(op[2]))
            finally:
                os.close(fd)
        elif kind == "readlink":
            r = os.readlink(path)
        elif kind == "listdir":
            r = os.listdir(path)
        elif kind == "open":
            os.close(os.open(path, op[2]))
            r = "opened"
        else:
            raise ValueError(kind)
        out.append({"ok": r})
    except OSError as e:
        name = "EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode.get(e.errno)
        out.append({"errno": name or str(e.errno)})
print(json.dumps(out))
"""


def probe_as(uid: int, gid: int, ops: list[list], groups: tuple[int, ...] = ()) -> list[dict]:
    """Run filesystem calls as uid/gid (with exactly these supplementary groups)."""
    grp = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", *grp,
                        PLAIN_PYTHON, "-I", "-c", PROBE, json.dumps(ops)],
                       capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def errname(e: OSError) -> str:
    if e.errno == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"                   # errorcode says ENOTSUP (same number on Linux)
    return errno.errorcode.get(e.errno or 0, str(e.errno))


def mountinfo_lines() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()
