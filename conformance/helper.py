"""A conformance subject: a plain-Python process with known properties.

Runs on FreeBSD and Linux with the standard library only (it is started by a
*copy* of the interpreter, without site-packages).  argv[1] is a JSON spec;
the first line on stdout is the truth JSON, then the process serves one-line
commands on stdin ("sleep" mode blocks in read(2) on that pipe, "busy" mode
spins and polls it) until told to exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import resource
import select
import signal
import sys
import time

T0 = time.time()
LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
LIBC.read.restype = ctypes.c_ssize_t
LIBC.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
#: a sleeping subject blocks in read(0, READ_BUF, READ_LEN) through libc, so its
#: argument registers hold known values (an odd length no library would pick)
READ_LEN = 3001
READ_BUF = ctypes.create_string_buffer(READ_LEN)
PAGE = mmap.PAGESIZE
FREEBSD = sys.platform.startswith("freebsd")
MAP_ANON = getattr(mmap, "MAP_ANONYMOUS", getattr(mmap, "MAP_ANON", 0x1000))
MAP_FIXED = getattr(mmap, "MAP_FIXED", 0x10)
PROT_NONE = 0
PATTERN = b"BSDPROCFS-CONFORMANCE-MEM-PATTERN\0" * 4
RLIMITS = {          # FreeBSD ident -> resource constant name
    "cpu": "RLIMIT_CPU", "fsize": "RLIMIT_FSIZE", "data": "RLIMIT_DATA",
    "stack": "RLIMIT_STACK", "core": "RLIMIT_CORE", "rss": "RLIMIT_RSS",
    "memlock": "RLIMIT_MEMLOCK", "nproc": "RLIMIT_NPROC", "nofile": "RLIMIT_NOFILE",
    "sbsize": "RLIMIT_SBSIZE", "vmem": "RLIMIT_AS", "npts": "RLIMIT_NPTS",
    "swap": "RLIMIT_SWAP", "kqueues": "RLIMIT_KQUEUES", "umtx": "RLIMIT_UMTXP",
    "pipebuf": "RLIMIT_PIPEBUF", "vmm": "RLIMIT_VMM",
}
received: list[int] = []


def _mmap(addr: int | None, pages: int, prot: int, flags: int, fd: int = -1) -> int:
    got = LIBC.mmap(addr, pages * PAGE, prot, flags, fd, 0)
    if got in (None, ctypes.c_void_p(-1).value) or (addr and got != addr):
        raise OSError(ctypes.get_errno(), "mmap")
    return int(got)


def setup_maps(spec: dict) -> dict:
    """Regions inside one PROT_NONE reservation, separated by PROT_NONE pages so the
    kernel cannot coalesce them with each other or with foreign neighbours."""
    anon = mmap.MAP_PRIVATE | MAP_ANON
    fixed = anon | MAP_FIXED
    res = _mmap(None, 18, PROT_NONE, anon)
    rw = _mmap(res + PAGE, 3, mmap.PROT_READ | mmap.PROT_WRITE, fixed)
    body = (PATTERN * (3 * PAGE // len(PATTERN) + 1))[: 3 * PAGE]
    ctypes.memmove(rw, body, len(body))
    ro = _mmap(res + 5 * PAGE, 2, mmap.PROT_READ, fixed)         # never touched: no object
    cow = _mmap(res + 8 * PAGE, 1, mmap.PROT_READ, fixed)        # written only through mem
    before = _mmap(res + 10 * PAGE, 1, mmap.PROT_READ | mmap.PROT_WRITE, fixed)
    ctypes.memmove(before, b"H" * PAGE, PAGE)
    hole = res + 11 * PAGE
    LIBC.munmap(hole, PAGE)                                      # unmapped page
    out = {"page": PAGE, "pattern": PATTERN.hex(), "rw": [rw, rw + 3 * PAGE, "rw-"],
           "ro": [ro, ro + 2 * PAGE, "r--"], "cow": [cow, cow + PAGE, "r--"],
           "hole": hole, "hole_before": [before, before + PAGE, "rw-"]}
    if spec.get("mapfile"):
        fd = os.open(spec["mapfile"], os.O_RDONLY)
        try:
            fm = _mmap(res + 13 * PAGE, 2, mmap.PROT_READ, mmap.MAP_SHARED | MAP_FIXED, fd)
        finally:
            os.close(fd)
        ctypes.string_at(fm, 16)                                 # both vnode pages
        ctypes.string_at(fm + PAGE, 16)                          # resident, in our map
        out["file"] = [fm, fm + 2 * PAGE, "r--", spec["mapfile"]]
    if spec.get("delfile"):                     # a mapped file that is then deleted
        path = spec["delfile"]
        with open(path, "wb") as f:
            f.write(b"D" * PAGE)
        fd = os.open(path, os.O_RDONLY)
        try:
            dm = _mmap(res + 16 * PAGE, 1, mmap.PROT_READ, mmap.MAP_SHARED | MAP_FIXED, fd)
        finally:
            os.close(fd)
        ctypes.string_at(dm, 16)                                 # resident
        os.unlink(path)
        out["deleted"] = [dm, dm + PAGE, "r--"]
    return out


def setup_tty(spec: dict) -> dict:
    import fcntl
    import termios
    master, slave = os.openpty()
    name = os.ttyname(slave)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    spec["_keep"] = (master, slave)
    return {"tty": name[5:] if name.startswith("/dev/") else name}


def set_uts(name: str) -> str:
    if FREEBSD:
        return name                                  # the suite started us in a jail
    if LIBC.unshare(0x04000000) != 0:                # CLONE_NEWUTS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
    import socket
    socket.sethostname(name)
    return name


def rlimits() -> dict:
    out = {}
    for ident, cname in RLIMITS.items():
        if ident == "vmem" and FREEBSD:
            cname = "RLIMIT_VMEM" if hasattr(resource, "RLIMIT_VMEM") else "RLIMIT_AS"
        c = getattr(resource, cname, None)
        if c is None:
            continue
        try:
            cur, mx = resource.getrlimit(c)
        except (OSError, ValueError):
            continue
        inf = resource.RLIM_INFINITY
        out[ident] = [-1 if cur == inf or cur < 0 else cur, -1 if mx == inf or mx < 0 else mx]
    return out


def ctty() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
        return True
    except OSError:
        return False


def ctty_name() -> str | None:
    """devtoname() of the controlling terminal ("pts/3"), None without one: the host's
    own ps(1) names it (no portable call does, /dev/tty is only an alias)."""
    if not ctty():
        return None
    import subprocess
    out = subprocess.run(["ps", "-o", "tty=", "-p", str(os.getpid())], capture_output=True,
                         text=True).stdout.strip()
    return out if out and out not in ("?", "-", "??") else None


def leader_alive(sid: int) -> bool:
    """Does the leader of our session still exist, not a zombie (FreeBSD keeps
    s_leader until the leader exits; status prints 0 once it is gone)?"""
    if sid == os.getpid():
        return True
    try:
        os.kill(sid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if FREEBSD:
        import subprocess
        st = subprocess.run(["ps", "-o", "state=", "-p", str(sid)], capture_output=True,
                            text=True).stdout.strip()
        return bool(st) and not st.startswith("Z")
    try:
        with open(f"/proc/{sid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except OSError:
        return False


def truth(spec: dict, extra: dict) -> dict:
    groups = os.getgroups()
    if not FREEBSD:
        # FreeBSD <= 14 cr_groups: the egid, then the rest of the setgroups list; Linux's
        # list already holds the primary group, which FreeBSD keeps once as cr_groups[0]
        # (cite: status.groups)
        egid = os.getegid()
        groups = [egid] + [g for g in groups if g != egid]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    t = {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
         "ruid": os.getuid(), "euid": os.geteuid(), "rgid": os.getgid(), "egid": os.getegid(),
         "groups": groups, "argv_hex": [a.hex() for a in spec["argv"]], "t0": T0,
         "exe": os.fsencode(sys.executable).hex(), "ctty": ctty(),
         "ttyname": extra.get("tty") or ctty_name(),
         "leader_alive": leader_alive(os.getsid(0)), "rlimits": rlimits(),
         "ut": int(ru.ru_utime * 1e6), "st": int(ru.ru_stime * 1e6),
         "read_args": [0, ctypes.addressof(READ_BUF), READ_LEN]}
    t.update(extra)
    return t


def burn(seconds: float) -> None:
    """Spend ``seconds`` of user CPU time (the cputime checks need a user share far
    from the system share)."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for _ in range(10000):
            x = (x * 31 + 7) % 1000003


def set_ids(ids: dict) -> None:
    """Credentials changed without exec: groups, then gids, then uids (P_SUGID)."""
    os.setgroups(ids["groups"])
    os.setresgid(*ids["gid"])
    os.setresuid(*ids["uid"])


def fork_off(how: str) -> dict:
    """Become a child of the process the suite started: ``member`` (the parent leads
    the session and waits for us: we share its session and terminal without leading
    it, and lead a process group of our own) or ``orphan`` (the parent, the session
    leader, exits at once: we live on in a session whose leader is gone).
    Returns the fork's time window."""
    lo = time.time()
    pid = os.fork()
    if pid:                                     # the parent never reads our stdin
        if how == "member":
            os.waitpid(pid, 0)
        os._exit(0)
    hi = time.time()
    if how == "member":
        os.setpgid(0, 0)                        # leads its process group, not the session
    if how == "orphan":
        leader = os.getsid(0)
        while os.getppid() == leader:           # reparented once the leader has exited
            time.sleep(0.005)
    return {"fork": [lo, hi]}


def on_signal(signum: int, frame: object) -> None:
    received.append(signum)


def serve(line: str, spec: dict) -> object:
    cmd, *args = line.split()
    if cmd == "ping":
        return "pong"
    if cmd == "rusage":
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {"ut": int(ru.ru_utime * 1e6), "st": int(ru.ru_stime * 1e6)}
    if cmd == "peek":
        return ctypes.string_at(int(args[0]), int(args[1])).hex()
    if cmd == "sigs":
        return list(received)
    if cmd == "clear":
        received.clear()
        return "ok"
    if cmd == "exit":
        sys.stdout.flush()
        os._exit(int(args[0]) if args else 0)
    return {"error": f"unknown command {cmd}"}


def main() -> None:
    spec = json.loads(sys.argv[1])
    spec["argv"] = [os.fsencode(a) for a in sys.orig_argv] if hasattr(sys, "orig_argv") \
        else [os.fsencode(sys.executable)] + [os.fsencode(a) for a in sys.argv]
    extra: dict = {}
    if spec.get("setsid"):
        os.setsid()
    if spec.get("tty"):
        extra.update(setup_tty(spec))
    for ident, (cur, mx) in spec.get("setrlimit", {}).items():
        c = getattr(resource, RLIMITS[ident])
        inf = resource.RLIM_INFINITY
        resource.setrlimit(c, (inf if cur == -1 else cur, inf if mx == -1 else mx))
    if spec.get("maps"):
        extra["maps"] = setup_maps(spec)
    if spec.get("uts"):
        extra["jail"] = set_uts(spec["uts"])
    if spec.get("catch"):
        for name in dir(signal):
            if name.startswith("SIG") and not name.startswith("SIG_") and name not in (
                    "SIGKILL", "SIGSTOP"):
                try:
                    signal.signal(getattr(signal, name), on_signal)
                except (OSError, ValueError, RuntimeError):
                    pass
    if spec.get("fork"):
        extra.update(fork_off(spec["fork"]))
    if spec.get("burn"):
        burn(spec["burn"])
    if spec.get("setids"):
        set_ids(spec["setids"])
        time.sleep(0.2)                         # see setcred below
    if spec.get("setcred"):                     # after exec: P_SUGID on FreeBSD
        r, e, g = spec["setcred"]
        os.setgroups([g])
        os.setresgid(g, g, g)
        os.setresuid(r, e, e)
        # settle before reporting: an implementation may serve stat(2) from an attribute
        # cache (the bsdprocfs FUSE daemon: up to 50 ms), and a concurrent walk may have
        # looked at us while we were still root
        time.sleep(0.2)
    if spec.get("exit") is not None:
        os._exit(spec["exit"])
    out = sys.stdout
    out.write(json.dumps(truth(spec, extra)) + "\n")
    out.flush()
    stdin = sys.stdin.buffer
    fd = stdin.fileno()
    if spec.get("mode") == "nap":
        while True:
            time.sleep(3600)                        # asleep in nanosleep(2)
    busy = spec.get("mode") == "busy"
    if busy:
        os.nice(19)          # still state R, but it yields the CPU to everything else
    buf = b""
    x = 0
    while True:
        if busy:
            for _ in range(20000):
                x = (x * 31 + 7) % 1000003
            if not select.select([fd], [], [], 0)[0]:
                continue
            chunk = os.read(fd, 4096)
        else:                                       # sleeps in read(2) on a pipe
            n = LIBC.read(fd, READ_BUF, READ_LEN)
            if n < 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                raise OSError(ctypes.get_errno(), "read")
            chunk = READ_BUF.raw[:n]
        if not chunk:
            os._exit(0)
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.write(json.dumps(serve(line.decode(), spec)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
