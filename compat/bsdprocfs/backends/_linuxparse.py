"""The Linux /proc reads and parses of the status scan, in pure Python.

This is the reference: ``_linuxfacts.c`` is its compiled twin, with the same
names, inputs, results and errors (tests/test_linuxfacts.py holds them equal).
``backends.linux`` takes the twin when it was built, this module otherwise or
when ``BSDPROCFS_PURE=1`` is set.  Only Linux facts here; no FreeBSD rules.
"""

from __future__ import annotations

import errno
import os
import select
import time

#: Read sizes, the same in the twin: both touch /proc identically.
STAT_SIZE = 4096
STATUS_SIZE = 16384
SMALL_SIZE = 256
_DEAD = (ord("Z"), ord("X"))
_READ = os.O_RDONLY | os.O_CLOEXEC
_STATUS_KEYS = ((b"\nTgid:", 1), (b"\nTracerPid:", 1), (b"\nUid:", 3), (b"\nGid:", 3))

StatFields = tuple[bytes, tuple[int, ...]]
StatusIds = tuple[int, int, int, int, int, int, int, int, tuple[int, ...]]


def parse_stat(st: bytes) -> StatFields:
    """stat -> (comm, fields): comm between the first '(' and the LAST ')' (it may hold
    ')', spaces and newlines); fields[0] is ord(state), then every number in order."""
    lp = st.find(b"(")
    rp = st.rfind(b")")
    if lp < 0 or rp < lp or st[rp + 1:rp + 2] != b" " or len(st) - rp < 4:
        raise ValueError("stat: no '(comm) S' in the line")
    f = st[rp + 2:].split()
    try:
        return st[lp + 1:rp], (f[0][0], *map(int, f[1:64]))
    except ValueError:
        raise ValueError("stat: a field is not a number") from None


def parse_status_ids(status: bytes) -> StatusIds | None:
    """status -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups), or None
    when one of those lines is missing.  Keys are looked for in the kernel's order."""
    vals: list[int] = []
    at = 0
    try:
        for key, count in _STATUS_KEYS:
            i = status.find(key, at)
            if i < 0:
                return None
            at = i + len(key)
            j = status.find(b"\n", at)
            words = status[at:j if j >= 0 else None].split()
            if len(words) < count:
                return None
            vals.extend(int(w) for w in words[:count])
        i = status.find(b"\nGroups:", at)
        if i < 0:
            return None
        j = status.find(b"\n", i + 8)
        groups = tuple(int(w) for w in status[i + 8:j if j >= 0 else None].split())
    except ValueError:
        return None
    tgid, tracer, ruid, euid, suid, rgid, egid, sgid = vals
    return tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups


def _read_once(path: str, size: int,
               want_stat: bool = False) -> tuple[bytes, os.stat_result | None]:
    fd = os.open(path, _READ)
    try:
        data = os.read(fd, size)
        # Every /proc/PID inode carries task_dump_owner(), the directory's owner
        # too: fstat of the open fd saves a path walk (stat(/proc/PID)).
        return data, (os.fstat(fd) if want_stat else None)
    finally:
        os.close(fd)


def snapshot(base: str) -> tuple[bytes, tuple[int, ...], int, int, bytes, StatusIds | None]:
    """base (/proc/PID) -> (comm, fields, owner_uid, owner_gid, status, ids or None)."""
    st, owner = _read_once(base + "/stat", STAT_SIZE, True)
    status, _ = _read_once(base + "/status", STATUS_SIZE)
    assert owner is not None
    comm, fields = parse_stat(st)
    return comm, fields, owner.st_uid, owner.st_gid, status, parse_status_ids(status)


def _schedstat_ns(path: str) -> int:
    try:
        v = int(_read_once(path, SMALL_SIZE)[0].split(None, 1)[0])
    except (OSError, ValueError, IndexError):
        return -1
    return v if v >= 0 else -1


def _schedstat_sum(task_dir: str) -> int:
    """Run time summed over the threads (one that exits meanwhile counts 0)."""
    try:
        names = os.listdir(task_dir)
    except OSError:
        return -1
    return sum(max(0, _schedstat_ns(f"{task_dir}/{t}/schedstat"))
               for t in names if not t.startswith("."))


def uts_ino(path: str) -> int:
    """The UTS namespace's inode: readlink gives "uts:[INO]" (namespaces(7)) at less
    than half the cost of stat(), which follows the link into nsfs (measured 1.5 vs
    3.5 us); stat() only where the path is not a symlink (a copied tree)."""
    try:
        link = os.readlink(path)
        if link.startswith("uts:[") and link.endswith("]") and link[5:-1].isdigit():
            return int(link[5:-1])
    except OSError as e:
        if e.errno != errno.EINVAL:
            return -1
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


def process_runtime_ns(pid: int) -> int:
    """A process's run time in ns (sum_exec_runtime of all its threads, the exited
    ones too) from its CPU-time clock: one syscall, no file, any reader may ask."""
    try:
        # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), include/linux/posix-timers.h
        return time.clock_gettime_ns(((~pid) << 3) | 2)
    except (OSError, OverflowError):
        return -1


def leader_alive_by_pid(sid: int) -> int:
    """1 if sid still leads session sid and has not exited (a pidfd polls readable
    once it has), 0 if not, -1 if this kernel cannot tell (no pidfd_open)."""
    try:
        if os.getsid(sid) != sid:
            return 0
    except OSError:
        return 0
    try:
        fd = os.pidfd_open(sid)
    except OSError as e:
        return 0 if e.errno == errno.ESRCH else -1
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        return 0 if p.poll(0) else 1
    except OSError:
        return -1
    finally:
        os.close(fd)


def status_io(root: str, pid: int, nthreads: int, want_wchan: bool, want_uts: bool,
              sid: int, by_pid: bool) -> tuple[int, bytes | None, int, bool]:
    """The rest of what FreeBSD's status line needs of one process, in one call:
    (run time in ns or -1, wchan or None, UTS inode or -1, leader_alive).
    leader_alive: sid is neither a zombie nor gone and still leads session sid;
    False when sid is 0 or pid itself (nothing to look up).  by_pid: root is this
    pid namespace's /proc, so the run time and the leader come from syscalls by
    pid (cheaper than files); otherwise from schedstat and the leader's stat."""
    base = f"{root}/{pid}"
    if by_pid:
        sched = process_runtime_ns(pid)
    elif nthreads == 1:
        sched = _schedstat_ns(base + "/schedstat")
    else:
        sched = _schedstat_sum(base + "/task")
    wchan = None
    if want_wchan:
        try:
            wchan = _read_once(base + "/wchan", SMALL_SIZE)[0]
        except OSError:
            pass
    uts = uts_ino(base + "/ns/uts") if want_uts else -1
    alive = False
    if sid not in (0, pid):
        state = leader_alive_by_pid(sid) if by_pid else -1
        if state >= 0:
            alive = state == 1
        else:
            try:
                f = parse_stat(_read_once(f"{root}/{sid}/stat", STAT_SIZE)[0])[1]
                alive = len(f) > 3 and f[0] not in _DEAD and f[3] == sid
            except (OSError, ValueError):
                pass
    return sched, wchan, uts, alive
