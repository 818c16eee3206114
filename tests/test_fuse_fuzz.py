"""Fuzz the mount: >= 10,000 random paths, open flags, offsets, sizes and ctl
strings.  The daemon must stay up, log no unexpected exception, and answer
only documented errnos; no process is left stopped afterwards."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from test_fuse_common import kill, needs_fuse, proc_state, spawn_sleeper, wait_for

from bsdprocfs.debug import LINUX_SIGNALS
from bsdprocfs.fuse import DOCUMENTED_ERRNOS, is_mounted, mounted
from bsdprocfs.tree import PID_NODES

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.timeout(170)]

N_OPS = 10_000
WORDS = ["attach", "detach", "step", "run", "wait", *LINUX_SIGNALS]
#: errnos the VFS itself adds before a request reaches us (O_EXCL on an existing
#: name, O_NOFOLLOW on a link, O_DIRECTORY on a file...)
VFS_ERRNOS = {errno.EEXIST, errno.ELOOP, errno.ENOTDIR, errno.EISDIR}
ALLOWED = DOCUMENTED_ERRNOS | VFS_ERRNOS
FLAG_BITS = [os.O_CREAT, os.O_TRUNC, os.O_APPEND, os.O_NONBLOCK, os.O_EXCL, os.O_SYNC,
             os.O_NOFOLLOW, os.O_DIRECTORY, os.O_NOATIME, os.O_CLOEXEC]


class Alarm(Exception):
    pass


def _alarm(signum, frame):
    raise Alarm


def ctl_string(rnd: random.Random) -> bytes:
    k = rnd.random()
    if k < 0.25:
        return rnd.choice(WORDS).encode() + rnd.choice([b"", b"\n", b" \t\n", b"\n\n"])
    if k < 0.45:                              # near misses
        w = bytearray(rnd.choice(WORDS).encode())
        i = rnd.randrange(len(w))
        op = rnd.randrange(3)
        if op == 0:
            w[i] = rnd.randrange(256)
        elif op == 1:
            del w[i]
        else:
            w.insert(i, rnd.randrange(256))
        return bytes(w)
    if k < 0.55:
        return rnd.choice(WORDS).upper().encode()
    if k < 0.6:
        return b"attach\0detach"
    if k < 0.65:
        return b"x" * rnd.choice([0, 1, 4096, 70000])
    return rnd.randbytes(rnd.randrange(0, 64))


@pytest.mark.timeout(170)
def test_fuzz_mount(tmp_path):
    rnd = random.Random(int(os.environ.get("BSDPFS_FUZZ_SEED", "4")))
    sleeper = spawn_sleeper()
    victim = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    old = signal.signal(signal.SIGALRM, _alarm)
    seen: dict[str, int] = {}
    bad: list[str] = []
    try:
        with mounted() as m:
            names = [n.name for n in PID_NODES] + ["nosuch", "..", "."]
            t_end = time.monotonic() + 100
            for _ in range(N_OPS):
                if time.monotonic() > t_end:
                    break
                if victim.poll() is not None:      # killed by a fuzzed word: respawn
                    victim = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                target = rnd.choice([victim.pid, victim.pid, sleeper.pid, "curproc",
                                     "0" + str(victim.pid), "99999999", "abc", ""])
                path = f"{m.path}/{target}/{rnd.choice(names)}"
                if rnd.random() < 0.05:
                    path = f"{m.path}/{rnd.choice(['', 'curproc', 'self', 'bench', 'x' * 300])}"
                flags = rnd.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR])
                for b in FLAG_BITS:
                    if rnd.random() < 0.06:
                        flags |= b
                if path.endswith(("/file", "/exe")):
                    # these links lead to real executables: never write or truncate them
                    flags = os.O_RDONLY | (os.O_NOFOLLOW if rnd.random() < 0.5 else 0)
                writes_ok = target == victim.pid      # only the victim may be changed
                if (not writes_ok and flags & os.O_ACCMODE != os.O_RDONLY
                        and path.endswith(("/ctl", "/mem", "/regs", "/fpregs", "/dbregs"))):
                    flags &= ~os.O_ACCMODE
                try:
                    signal.setitimer(signal.ITIMER_REAL, 2.0)
                    try:
                        fd = os.open(path, flags, 0o644)
                        try:
                            size = rnd.choice([0, 1, 7, 100, 4096, 65536, 1 << 20,
                                               rnd.randrange(1 << 21)])
                            off = rnd.choice([0, 0, 1, 5, 4095, 1 << 20, 1 << 40,
                                              rnd.randrange(1 << 47)])
                            if flags & os.O_ACCMODE != os.O_WRONLY and rnd.random() < 0.6:
                                os.pread(fd, size, off)
                            if flags & os.O_ACCMODE != os.O_RDONLY:
                                data = (ctl_string(rnd) if path.endswith("/ctl")
                                        else rnd.randbytes(min(size, 300000)))
                                os.pwrite(fd, data, off)
                        finally:
                            os.close(fd)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                    key = "ok"
                except Alarm:
                    key = "interrupted"               # a blocking ctl wait, cut short
                except OSError as e:
                    key = errno.errorcode.get(e.errno or 0, str(e.errno))
                    if e.errno not in ALLOWED:
                        bad.append(f"{path} flags={flags:#x}: {key}")
                seen[key] = seen.get(key, 0) + 1
            n = sum(seen.values())
            assert n >= N_OPS, f"only {n} ops in time"
            assert not bad, bad[:20]
            assert m.proc.poll() is None and is_mounted(m.path), m.log_text()[-3000:]
            assert "Traceback" not in m.log_text(), m.log_text()[-5000:]
            assert seen.get("ok", 0) > 500, seen
            # leave nothing stopped: detach through the mount, then the daemon exits
            for pid in (victim.pid, sleeper.pid):
                try:                                # ENOENT if it died of a fuzzed word
                    fd = os.open(f"{m.path}/{pid}/ctl", os.O_WRONLY)
                except FileNotFoundError:
                    continue
                try:
                    os.write(fd, b"detach")
                except OSError:
                    pass
                finally:
                    os.close(fd)
        for p in (victim, sleeper):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                # not stopped (it may also have died of a fuzzed signal word meanwhile)
                wait_for(lambda p=p: proc_state(p.pid) not in ("T", "t"))
    finally:
        signal.signal(signal.SIGALRM, old)
        kill(victim)
        kill(sleeper)
    print("fuzz outcomes:", dict(sorted(seen.items(), key=lambda kv: -kv[1])))
