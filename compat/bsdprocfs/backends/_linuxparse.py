"""The Linux /proc hot paths (the status scan, map), in pure Python.

This is the reference: ``_linuxfacts.c`` is its compiled twin, with the same
names, inputs, results and errors (tests/test_linuxfacts.py holds them equal).
``backends.linux`` takes the twin when it was built, this module otherwise or
when ``BSDPROCFS_PURE=1`` is set.  Status facts are Linux facts only; map rows
are FreeBSD vm_map entries already (the per-VMA rules of linux-mapping.md §3
run once per mapping, which is why they are here and compiled too).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import select
import time

#: Read sizes, the same in the twin: both touch /proc identically.
STAT_SIZE = 4096
STATUS_SIZE = 16384
SMALL_SIZE = 256
#: ord(state) and the numbers after it, to rt_priority (stat field 40): the backend
#: reads up to processor (39); more would be ints nobody reads
STAT_FIELDS = 40
_DEAD = (ord("Z"), ord("X"))
#: bytes.split()'s whitespace, each as a one-byte string (and b"" for the end)
_WS = (b"", b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c")
_READ = os.O_RDONLY | os.O_CLOEXEC
_STATUS_KEYS = ((b"\nTgid:", 1), (b"\nTracerPid:", 1), (b"\nUid:", 3), (b"\nGid:", 3))

StatFields = tuple[bytes, tuple[int, ...]]
StatusIds = tuple[int, int, int, int, int, int, int, int, tuple[int, ...]]


def parse_stat(st: bytes) -> StatFields:
    """stat -> (comm, fields): comm between the first '(' and the LAST ')' (it may hold
    ')', spaces and newlines); fields[0] is ord(state), then at most 39 numbers."""
    lp = st.find(b"(")
    rp = st.rfind(b")")
    if lp < 0 or rp < lp or len(st) - rp < 4 or st[rp + 1] != 0x20:
        raise ValueError("stat: no '(comm) S' in the line")
    if st[rp + 3:rp + 4] not in _WS:
        raise ValueError("stat: the state is not one byte")
    f = st[rp + 3:].split(None, STAT_FIELDS)[:STAT_FIELDS - 1]
    # digits and '-' only (int() alone would take '+', '_' and other spellings)
    if b"".join(f).translate(None, b"0123456789-"):
        raise ValueError("stat: a field is not a number")
    try:
        return st[lp + 1:rp], (st[rp + 2], *map(int, f))
    except ValueError:
        raise ValueError("stat: a field is not a number") from None


def _numbers(words: list[bytes]) -> list[int]:
    """Each word as an int, when each is -?[0-9]+ (int() alone would also take '+',
    '_' and other spellings the twin does not); ValueError otherwise."""
    if all(w.isdigit() for w in words):              # the kernel's case, at C speed
        return list(map(int, words))
    if b"".join(words).translate(None, b"0123456789-"):
        raise ValueError("not a number")
    return [int(w) for w in words]


def parse_status_ids(status: bytes) -> StatusIds | None:
    """status -> (tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups), or None
    when one of those lines is missing or holds fewer numbers than it should (words
    after them are ignored).  Keys are looked for in the kernel's order."""
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
            vals += _numbers(words[:count])
        i = status.find(b"\nGroups:", at)
        if i < 0:
            return None
        j = status.find(b"\n", i + 8)
        groups = tuple(_numbers(status[i + 8:j if j >= 0 else None].split()))
    except ValueError:
        return None
    tgid, tracer, ruid, euid, suid, rgid, egid, sgid = vals
    return tgid, tracer, ruid, euid, suid, rgid, egid, sgid, groups


def read_once(path: str, size: int,
              want_stat: bool = False) -> tuple[bytes, os.stat_result | None]:
    """A single-record /proc file: one read(2) returns it whole (and its fstat)."""
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
    st, owner = read_once(base + "/stat", STAT_SIZE, True)
    status, _ = read_once(base + "/status", STATUS_SIZE)
    assert owner is not None
    comm, fields = parse_stat(st)
    return comm, fields, owner.st_uid, owner.st_gid, status, parse_status_ids(status)


def _schedstat_ns(path: str) -> int:
    try:
        v = int(read_once(path, SMALL_SIZE)[0].split(None, 1)[0])
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
    except OSError as e:
        return 0 if e.errno == errno.ESRCH else -1      # EPERM (an LSM): ask its stat
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
            wchan = read_once(base + "/wchan", SMALL_SIZE)[0]
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
                f = parse_stat(read_once(f"{root}/{sid}/stat", STAT_SIZE)[0])[1]
                alive = len(f) > 3 and f[0] not in _DEAD and f[3] == sid
            except (OSError, ValueError):
                pass
    return sched, wchan, uts, alive


# ------------------------------------------------------------------------ map
# smaps (or maps) -> FreeBSD vm_map entries, linux-mapping.md section 3.  Each
# entry is a tuple in MapEntry's field order: start end resident private_resident
# obj prot ref_count shadow_count flags cow needs_copy type path charged charged_uid.

MapRow = tuple[int, int, int, int, int, str, int, int, int, bool, bool, str, "bytes | None",
               bool, int]

_HEADER = re.compile(
    rb"^([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][ps]) [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) (\d+) *(.*)$",
    re.M)
_SMAPS_KEYS = (b"Rss", b"Pss", b"Shared_Clean", b"Shared_Dirty", b"Private_Clean",
               b"Private_Dirty", b"Swap", b"VmFlags")
#: The kernel's special mappings FreeBSD would show as its shared page (OBJT_PHYS).
SPECIAL_PHYS = (b"[vdso]", b"[vvar]", b"[vvar_vclock]", b"[vsyscall]")
OBJ_ANON, OBJ_SWAP = 0x10, 0x200
#: every type a row can have; map_render (compiled) takes the profile's names in this order
MAP_TYPES = ("none", "swap", "phys", "device", "vnode")
_M64 = (1 << 64) - 1
#: obj_id kinds: they keep an anonymous key from ever equalling a file's
KIND_ANON, KIND_FILE, KIND_PHYS = 1, 2, 3

_PROT = {f"{r}{w}{x}".encode(): f"{r}{w}{x}" for r in "r-" for w in "w-" for x in "x-"}


def _mix(x: int) -> int:
    """splitmix64's finaliser: cheap in C and in Python, and the twins must agree."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=1 << 16)
def obj_id(kind: int, a: int, b: int, c: int) -> int:
    """A stable synthetic vm_object pointer shaped like a FreeBSD direct-map address
    (the same object, the same pointer, in every read and in both twins)."""
    h = _mix(_mix(_mix(_mix(kind) ^ (a & _M64)) ^ (b & _M64)) ^ (c & _M64))
    return 0xFFFFF80000000000 | (h & 0x7FFFFFFFF0)


def _smaps_values(block: list[bytes]) -> dict[bytes, bytes]:
    out = {}
    for line in block:
        k, sep, v = line.partition(b":")
        if sep and k in _SMAPS_KEYS:
            out[k] = v.strip()
    return out


def map_entries(data: bytes, pid: int, start_ticks: int, ruid: int, page_size: int,
                fast: bool) -> list[MapRow]:
    """maps (fast) or smaps bytes of process (pid, start_ticks) -> MapEntry rows."""
    if not fast:
        try:
            strided = _smaps_strided(data, pid, start_ticks, ruid, page_size)
        except ValueError:
            strided = None
        if strided is not None:
            return strided
    entries = []
    lines = data.split(b"\n")
    # Entry headers and their smaps blocks; headers start with a lowercase hex digit,
    # smaps value lines with an uppercase key.
    idx = [i for i, ln in enumerate(lines) if ln[:1] in b"0123456789abcdef" and ln]
    for n, i in enumerate(idx):
        m = _HEADER.match(lines[i])
        if not m:
            continue
        vals = {} if fast else _smaps_values(lines[i + 1: idx[n + 1] if n + 1 < len(idx)
                                                      else len(lines)])

        def kb(key: bytes, vals: dict[bytes, bytes] = vals) -> int:
            v = vals.get(key)
            return int(v.split()[0]) if v else 0

        entries.append(_vm_entry(
            pid, start_ticks, ruid, page_size, int(m.group(1), 16), int(m.group(2), 16),
            m.group(3), int(m.group(4), 16), int(m.group(5), 16), int(m.group(6)), m.group(7),
            fast, kb(b"Rss"), kb(b"Pss"), kb(b"Private_Clean") + kb(b"Private_Dirty"),
            kb(b"Shared_Clean") + kb(b"Shared_Dirty"), kb(b"Swap"),
            b" ac" in b" " + vals.get(b"VmFlags", b"")))
    return entries


_STRIDE_KEYS = (b"Rss:", b"Pss:", b"Shared_Clean:", b"Shared_Dirty:", b"Private_Clean:",
                b"Private_Dirty:", b"Swap:")


def _smaps_strided(data: bytes, pid: int, start_ticks: int, ruid: int,
                   page_size: int) -> list[MapRow] | None:
    """The fast smaps parse: a kernel prints the same lines for every VMA, so after one
    split each needed key is a column (every K-th line), and a column's numbers come
    from one join + split + map(int) at C speed: no per-line Python runs for them.
    None when the buffer is not uniform (the caller then uses the per-line parser)."""
    lines = data.split(b"\n")
    k = next((i for i, ln in enumerate(lines) if ln.startswith(b"VmFlags:")), -1) + 1
    if k == 0:
        return None
    n = (len(lines) - 1) // k
    first = lines[:k]
    if n == 0 or len(lines) != n * k + 1 or lines[-1]:
        return None
    nums = []
    for key in _STRIDE_KEYS:
        i = next((i for i, ln in enumerate(first) if ln.startswith(key)), -1)
        if i < 1:
            return None
        joined = b"\n".join(lines[i::k])
        # every block has this key on the same line, as "Key: <n> kB"
        toks = joined.split()
        if joined.count(b"\n" + key) != n - 1 or len(toks) != 3 * n or (
                toks[2::3].count(b"kB") != n):
            return None
        nums.append(list(map(int, toks[1::3])))
    i = next((i for i, ln in enumerate(first) if ln.startswith(b"VmFlags:")), -1)
    if i < 1:
        return None
    vmf = lines[i::k]
    if b"\n".join(vmf).count(b"\nVmFlags:") != n - 1:
        return None
    rss_c, pss_c, sc_c, sd_c, pc_c, pd_c, sw_c = nums
    out = []
    for head, rss, pss, sc, sd, pc, pd, sw, vf in zip(
            lines[0:n * k:k], rss_c, pss_c, sc_c, sd_c, pc_c, pd_c, sw_c, vmf, strict=True):
        parts = head.split(None, 5)
        lo, _, hi = parts[0].partition(b"-")
        major_b, _, minor_b = parts[3].partition(b":")
        out.append(_vm_entry(
            pid, start_ticks, ruid, page_size, int(lo, 16), int(hi, 16), parts[1],
            int(major_b, 16), int(minor_b, 16), int(parts[4]),
            parts[5] if len(parts) > 5 else b"", False, rss, pss, pc + pd, sc + sd, sw,
            b" ac" in vf[8:]))
    return out


def _vm_entry(pid: int, start_ticks: int, ruid: int, page_size: int, start: int, end: int,
              perms: bytes, major: int, minor: int, inode: int, name: bytes, fast: bool,
              rss: int, pss: int, private_kb: int, shared_kb: int, swap: int,
              charged: bool) -> MapRow:
    """One maps/smaps VMA -> a FreeBSD vm_map entry (linux-mapping.md section 3)."""
    private_map = perms[3:4] == b"p"
    anon = inode == 0
    path: bytes | None = None
    dev = major << 20 | minor
    if anon and name not in SPECIAL_PHYS:
        if not fast and rss == 0 and swap == 0:
            typ, key = "none", None
        else:
            typ, key = "swap", (KIND_ANON, pid, start_ticks, start)
    elif anon:
        typ, key = "phys", (KIND_PHYS, SPECIAL_PHYS.index(name), 0, 0)
    elif name.startswith((b"/memfd:", b"/SYSV")) or name == b"/dev/zero (deleted)":
        typ, key = "swap", (KIND_FILE, dev, inode, 0)
    elif name.startswith(b"/dev/") and not name.startswith(b"/dev/shm/"):
        typ, key = "device", (KIND_FILE, dev, inode, 0)
        path = None if name.endswith(b" (deleted)") else name
    else:
        typ, key = "vnode", (KIND_FILE, dev, inode, 0)
        path = (None if name.endswith(b" (deleted)") or not name.startswith(b"/")
                else name)
    if key is None:
        obj = ref = 0
    else:
        obj = obj_id(*key)
        ref = 1 if fast or pss == 0 else max(1, round(rss / pss))
    return (start, end, rss * 1024 // page_size, private_kb * 1024 // page_size, obj,
            _PROT.get(perms[:3]) or perms[:3].decode(), ref, 0,
            (OBJ_ANON | OBJ_SWAP) if (anon and typ == "swap") else 0,
            private_map, private_map and anon and shared_kb > 0,
            typ, path, charged, ruid if charged else -1)
