"""An unprivileged caller must never reach a set-id image's memory through a mem fd
opened before the exec ("Mempodipper"): the daemon is root, and the caller's own pid
passes p_candebug, so the fd must be bound to the address space it was opened on and
refused once the target's credentials changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest
from test_fuse_common import PLAIN_PYTHON, ensure_user, needs_fuse

from bsdprocfs.fuse import mounted

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.timeout(120)]

VICTIM_C = r"""
#include <stdio.h>
#include <unistd.h>
char buf[64] = "ORIGINAL-CONTENT";
int main(int argc, char **argv) {
    if (argc > 1) sleep(1);                     /* let a forked reader try meanwhile */
    fputs("PWNED!!!-CONTENT", stderr);          /* fd 2 may be the attacker's mem fd */
    fflush(stderr);
    printf("euid=%d buf=%s\n", (int)geteuid(), buf);
    return 0;
}
"""

WRITE_ATTACK = """
import os, sys
mnt, victim, addr = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(mnt + "/curproc/mem", os.O_RDWR)
os.lseek(fd, addr, 0)
os.dup2(fd, 2)
os.execv(victim, [victim])
"""

READ_ATTACK = """
import os, sys, time
mnt, victim, addr = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(mnt + "/curproc/mem", os.O_RDONLY)
if os.fork() == 0:                              # keeps the fd across the parent's exec
    time.sleep(0.5)
    try:
        print("read", os.pread(fd, 16, addr), flush=True)
    except OSError as e:
        print("errno", e.errno, flush=True)
    os._exit(0)
os.execv(victim, [victim, "wait"])
"""


@pytest.fixture(scope="module")
def victim():
    if shutil.which("gcc") is None or shutil.which("nm") is None:
        pytest.skip("needs gcc and nm to build a set-uid test binary")
    if os.geteuid() != 0:
        pytest.skip("needs root to make a set-uid binary")
    d = tempfile.mkdtemp(prefix="bsdpfs-suid-")
    os.chmod(d, 0o755)
    src, exe = os.path.join(d, "victim.c"), os.path.join(d, "victim")
    with open(src, "w") as f:
        f.write(VICTIM_C)
    subprocess.run(["gcc", "-O0", "-no-pie", "-o", exe, src], check=True)
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    sym = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    addr = next(int(ln.split()[0], 16) for ln in sym.splitlines() if ln.endswith(" buf"))
    yield exe, addr
    shutil.rmtree(d)


def _as_user(code: str, *args: str) -> subprocess.CompletedProcess:
    uid, gid = ensure_user()
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                           PLAIN_PYTHON, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, cwd="/")


def test_mem_fd_kept_across_a_setuid_exec_cannot_write_the_new_image(victim):
    exe, addr = victim
    with mounted() as m:
        r = _as_user(WRITE_ATTACK, m.path, exe, str(addr))
        assert "euid=0" in r.stdout, (r.stdout, r.stderr)      # it really ran set-uid
        assert "buf=ORIGINAL-CONTENT" in r.stdout, r.stdout     # and was not written
        assert m.proc.poll() is None


def test_mem_fd_kept_across_a_setuid_exec_cannot_read_the_new_image(victim):
    exe, addr = victim
    with mounted() as m:
        r = _as_user(READ_ATTACK, m.path, exe, str(addr))
        assert "euid=0" in r.stdout, (r.stdout, r.stderr)
        assert "ORIGINAL-CONTENT" not in r.stdout.split("euid=")[0] + \
            "".join(ln for ln in r.stdout.splitlines() if ln.startswith("read")), r.stdout
        assert any(ln.startswith(("errno", "read b''")) for ln in r.stdout.splitlines()), \
            r.stdout
