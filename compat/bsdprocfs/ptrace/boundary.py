"""The privilege boundary: what the kernel guards with ptrace access modes is done,
for a caller less privileged than this daemon, by a worker process holding exactly
the caller's credentials, so the Linux kernel itself decides.

A root daemon answering for unprivileged callers cannot re-derive every rule of
``__ptrace_may_access`` (real/effective/saved/fs ids, the target's permitted
capabilities being a subset of the caller's, dumpable, LSMs) and stay right as
the kernel changes.  So it does not try: per distinct credential set (ids,
groups, every capability set, no_new_privs) it starts one worker, a fresh
interpreter that sets exactly those credentials before serving anything
(setgroups/setresgid/setresuid/setfs[ug]id, capset and the ambient set, the
bounding set), and runs the ordinary tree, debugger and /proc reads there,
answering over a socketpair.  The worker is the ptracer of whatever its caller
attaches, so an exec of a set-id or file-capability image under that trace
gains nothing (the kernel's LSM_UNSAFE_PTRACE: ``ptracer_cred`` is the
worker's), as FreeBSD ignores set-id bits on a traced exec.

Guarded (fs/proc/base.c): mem (PTRACE_MODE_ATTACH_FSCREDS), regs/fpregs/dbregs
and ctl (ptrace itself, ATTACH_REALCREDS), map (maps/smaps: READ_FSCREDS),
the file/exe links (proc_exe_link: READ_FSCREDS); etype and osrel, read from
the executable that link leads to, are gated by the same check (see IMAGE).

The worker changes credentials, so Linux makes it non-dumpable: its caller
cannot ptrace it or read its memory, only kill it (its requests then fail with
EIO and the next one starts a new worker).  It dies with the daemon: the socket
reaches EOF and PR_SET_PDEATHSIG (set from a thread that lives as long as the
daemon) kills it, after which Linux releases its tracees.  The daemon never
unpickles anything: messages are length-prefixed JSON, bounded in size.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import importlib
import itertools
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the largest reply the daemon accepts (a map of 1 MiB plus base64 and JSON)
MAX_MESSAGE = 4 << 20
#: distinct credential sets served at once; past it an idle worker is retired
MAX_WORKERS = 64
#: requests a worker runs at once; past it: EBUSY (the errno FreeBSD gives a busy tracee)
MAX_INFLIGHT = 128
#: nodes whose Linux source is guarded by a ptrace access mode check
GUARDED = frozenset(("regs", "fpregs", "dbregs", "mem", "ctl", "map", "file", "exe"))
#: status reads two ptrace-guarded files (wchan, ns/uts): a caller who is not root gets
#: them as the worker reads them
STATUS = "status"
#: nodes rendered from the executable itself (its ELF brand and note): the daemon reads
#: the image only once the worker could follow /proc/PID/exe to that very file
IMAGE = frozenset(("etype", "osrel"))

PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_CAPBSET_DROP = 1, 8, 24
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 38, 47, 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True)
class Creds:
    """A task's whole credential set as /proc/TID/status shows it."""

    uids: tuple[int, int, int, int]          # real, effective, saved, fs
    gids: tuple[int, int, int, int]
    groups: tuple[int, ...]
    caps: tuple[int, int, int, int, int]     # inheritable, permitted, effective, bounding, ambient
    nnp: bool = False

    def covers(self, other: Creds) -> bool:
        """Can this credential set do, by ptrace, all that ``other`` can?  Holding every
        capability the other holds (effective and permitted, CAP_SYS_PTRACE among them)
        bypasses each id, dumpable and capability-subset rule."""
        return ((self.caps[1] & other.caps[1]) == other.caps[1]
                and (self.caps[2] & other.caps[2]) == other.caps[2]
                and self.uids[1] == other.uids[1] and self.uids[3] == other.uids[3])

    def to_json(self) -> str:
        return json.dumps([self.uids, self.gids, self.groups, self.caps, self.nnp])

    @classmethod
    def from_json(cls, text: str) -> Creds:
        u, g, gr, c, n = json.loads(text)
        return cls(tuple(u), tuple(g), tuple(gr), tuple(c), bool(n))  # type: ignore[arg-type]


def parse_status(text: bytes) -> Creds:
    """Creds from the text of /proc/TID/status; ValueError if a line is missing."""
    f: dict[bytes, bytes] = {}
    for line in text.split(b"\n"):
        k, _, v = line.partition(b":")
        f[k] = v.strip()
    try:
        uids = tuple(int(x) for x in f[b"Uid"].split())
        gids = tuple(int(x) for x in f[b"Gid"].split())
        groups = tuple(int(x) for x in f[b"Groups"].split())
        caps = tuple(int(f[k], 16) for k in (b"CapInh", b"CapPrm", b"CapEff", b"CapBnd",
                                             b"CapAmb"))
    except KeyError as e:
        raise ValueError(f"status lacks {e.args[0]!r}") from None
    if len(uids) != 4 or len(gids) != 4:
        raise ValueError("status Uid/Gid lines are not four ids")
    return Creds(uids, gids, groups, caps,  # type: ignore[arg-type]
                 f.get(b"NoNewPrivs", b"0") == b"1")


def task_creds(tid: int) -> Creds:
    """The credentials of thread ``tid`` (credentials are per thread on Linux)."""
    with open(f"/proc/{tid}/status", "rb") as fh:
        return parse_status(fh.read())


def synthetic_creds(uid: int, gid: int, groups: tuple[int, ...]) -> Creds:
    """A caller known only by FreeBSD's (uid, gid, groups), e.g. an API Reader: those ids
    everywhere and no capability (what such a process started by login would hold)."""
    bnd = own_creds().caps[3]
    return Creds((uid,) * 4, (gid,) * 4, tuple(groups), (0, 0, 0, bnd, 0))  # type: ignore


_OWN: list[Creds] = []


def own_creds() -> Creds:
    if not _OWN:
        _OWN.append(task_creds(os.getpid()))
    return _OWN[0]


# ------------------------------------------------------------------ framing
def send_msg(sock: socket.socket, obj: Any, lock: threading.Lock) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    with lock:
        sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_msg(sock: socket.socket) -> Any:
    """The next message, or None at EOF; ValueError for an oversized or garbled one."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    if n > MAX_MESSAGE:
        raise ValueError(f"message of {n} bytes")
    body = _recv_exact(sock, n)
    if body is None:
        return None
    return json.loads(body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


#: the worker's command line: a fresh interpreter (-I: no user site, no cwd on the path)
_WORKER_CODE = ("import sys\nfrom bsdprocfs.ptrace.boundary import worker_main\n"
                "sys.exit(worker_main(sys.argv[1:]))")


# ------------------------------------------------------------ daemon side
class WorkerGone(OSError):
    def __init__(self) -> None:
        super().__init__(5, "the credential worker exited")      # EIO


class Worker:
    """One worker process (one credential set) and its request/reply demultiplexer."""

    def __init__(self, creds: Creds, profile: str, fast_map: bool,
                 spawn: Callable[[list[str], int], subprocess.Popen[bytes]]) -> None:
        self.creds = creds
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [sys.executable, "-I", "-c", _WORKER_CODE, str(theirs.fileno()),
                    creds.to_json(), profile, "1" if fast_map else "0", str(os.getpid())]
            self.proc = spawn(argv, theirs.fileno())
        finally:
            theirs.close()
        self.sock = mine
        self.pid = self.proc.pid
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        self.alive = True
        self.handles = 0
        self.last_used = time.monotonic()
        ready = recv_msg(mine)
        if not isinstance(ready, dict) or ready.get("ready") is not True:
            self._die()
            raise OSError(1, f"credential worker refused: {ready!r}")   # EPERM
        threading.Thread(target=self._reader, name=f"bsdprocfs-boundary-{self.pid}",
                         daemon=True).start()

    def _reader(self) -> None:
        try:
            while True:
                msg = recv_msg(self.sock)
                if msg is None:
                    break
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), int):
                    break
                with self._lock:
                    slot = self._pending.pop(msg["id"], None)
                if slot is not None:
                    slot[1] = msg
                    slot[0].release()
        except (OSError, ValueError):
            pass
        self._die()

    def _die(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[0].release()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(5)

    def call(self, op: str, interrupted: Callable[[], bool] | None = None,
             **args: Any) -> Any:
        """Run op in the worker; its errno comes back as an OSError.  While it blocks,
        ``interrupted`` is polled and, once true, the worker's request is told so (a
        ctl wait then ends with EINTR there)."""
        if not self.alive:
            raise WorkerGone()
        self.last_used = time.monotonic()
        rid = next(self._ids)
        lk = threading.Lock()
        lk.acquire()
        slot: list[Any] = [lk, None]
        with self._lock:
            self._pending[rid] = slot
        try:
            send_msg(self.sock, {"id": rid, "op": op, **args}, self._send_lock)
        except OSError:
            self._die()
            raise WorkerGone() from None
        told = False
        while not lk.acquire(timeout=0.02 if interrupted is not None else -1):
            if not told and interrupted is not None and interrupted():
                told = True
                with contextlib.suppress(OSError):
                    send_msg(self.sock, {"id": 0, "op": "interrupt", "target": rid},
                             self._send_lock)
        reply = slot[1]
        if reply is None:
            raise WorkerGone()
        if "err" in reply:
            err = reply["err"]
            raise OSError(err if isinstance(err, int) and 0 < err < 4096 else 5,
                          str(reply.get("msg", ""))[:400])
        return reply.get("ok")

    def stop(self) -> None:
        """Ask the worker to let its tracees go and exit; kill it if it does not."""
        if self.alive:
            with contextlib.suppress(OSError):
                self.call("exit")
        with contextlib.suppress(Exception):
            self.proc.wait(3)
        self._die()


class RemoteHandle:
    """A Handle (tree.Handle's interface) whose operations run in a worker."""

    def __init__(self, worker: Worker, hid: int, node: Any, pid: int, reader: Any) -> None:
        self.worker, self.hid, self.node, self.pid, self.reader = worker, hid, node, pid, reader
        self.tree: Any = None
        self.interrupted: Callable[[], bool] | None = None
        self.timeout: float | None = None
        self._closed = False

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        return unb64(self.worker.call("read", hid=self.hid, size=size, offset=offset))

    def write(self, data: bytes, offset: int = 0) -> int:
        n = self.worker.call("write", self.interrupted, hid=self.hid, data=b64(bytes(data)),
                             offset=offset, timeout=self.timeout)
        if not isinstance(n, int):
            raise OSError(5, "bad reply")
        return n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker.handles -= 1
        with contextlib.suppress(OSError):
            self.worker.call("close", hid=self.hid)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _reader_json(reader: Any) -> list[Any]:
    return [reader.pid, reader.uid, reader.gid, list(reader.groups)]


class Boundary:
    """The daemon's side: which caller needs a worker, and the workers by credentials."""

    def __init__(self, profile: str, fast_map: bool = False) -> None:
        self.profile = profile
        self.fast_map = fast_map
        self.own = own_creds()
        o = self.own.caps
        #: a caller whose status holds these is root with every capability we hold
        self._root_marks = (b"\nUid:\t0\t0\t0\t0\n",
                            b"\nCapPrm:\t%016x\nCapEff:\t%016x\n" % (o[1], o[2]))
        self.workers: dict[Creds, Worker] = {}
        self._lock = threading.Lock()
        self._spawnq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._spawner: threading.Thread | None = None

    # ------------------------------------------------------------- deciding
    def creds_for(self, reader: Any) -> Creds | None:
        """The caller's credentials, or None when it is as privileged as we are (then
        the in-process debugger may act for it).  A FUSE caller is read from its thread
        (the Reader's tid); its fs ids must be the ones the request carried."""
        tid = getattr(reader, "tid", 0)
        if tid:
            try:
                fd = os.open(f"/proc/{tid}/status", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    text = os.read(fd, 16384)
                finally:
                    os.close(fd)
                if reader.uid == 0 and self._root_marks[0] in text \
                        and self._root_marks[1] in text:
                    return None  # root with all of our capabilities: the common fast case
                c = parse_status(text)
            except (OSError, ValueError):
                raise OSError(13, "the caller's credentials are unreadable") from None  # EACCES
            if c.uids[3] != reader.uid or c.gids[3] != reader.gid:
                raise OSError(13, "the caller's credentials changed under the request")
            return None if c.covers(self.own) else c
        if reader.uid == 0:
            return None          # a synthetic root reader (or this very process): ours
        if (reader.pid == os.getpid() and reader.uid == os.geteuid()
                and reader.gid == os.getegid()):
            return None          # Reader.current() of an unprivileged process: it is us
        return synthetic_creds(reader.uid, reader.gid, tuple(reader.groups))

    def worker_for(self, reader: Any, pid: int, traced_by_us: bool) -> Worker | None:
        c = self.creds_for(reader)
        if c is None:
            # as privileged as we are: in-process, unless a worker traces the target
            # (only that worker's thread can drive it, and the caller could ptrace it)
            return None if traced_by_us else self._tracing_worker(pid)
        return self._get(c)

    def _tracing_worker(self, pid: int) -> Worker | None:
        if not self.workers:
            return None
        tracer = _status_int(pid, b"TracerPid")
        if not tracer:
            return None
        tgid = _status_int(tracer, b"Tgid") or tracer
        for w in list(self.workers.values()):
            if w.pid == tgid and w.alive:
                return w
        return None

    def _get(self, c: Creds) -> Worker:
        with self._lock:
            w = self.workers.get(c)
            if w is not None and w.alive:
                return w
            self.workers.pop(c, None)
            if len(self.workers) >= MAX_WORKERS:
                idle = sorted((x for x in self.workers.values() if x.handles <= 0),
                              key=lambda x: x.last_used)
                if not idle:
                    raise OSError(16, "too many distinct caller credentials")   # EBUSY
                old = idle[0]
                self.workers.pop(old.creds, None)
                threading.Thread(target=old.stop, daemon=True).start()
            w = Worker(c, self.profile, self.fast_map, self._spawn)
            self.workers[c] = w
            return w

    # --------------------------------------------------------------- spawning
    def _spawn(self, argv: list[str], fd: int) -> subprocess.Popen[bytes]:
        """Popen on one long-lived thread: PR_SET_PDEATHSIG fires when the *thread*
        that forked the worker ends, and FUSE worker threads come and go."""
        if self._spawner is None or not self._spawner.is_alive():
            self._spawner = threading.Thread(target=self._spawn_loop,
                                             name="bsdprocfs-boundary-spawn", daemon=True)
            self._spawner.start()
        box: list[Any] = [None, None]
        lk = threading.Lock()
        lk.acquire()
        self._spawnq.put((argv, fd, box, lk))
        lk.acquire()
        if box[1] is not None:
            raise box[1]
        proc: subprocess.Popen[bytes] = box[0]
        return proc

    def _spawn_loop(self) -> None:
        while True:
            argv, fd, box, lk = self._spawnq.get()
            try:
                env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH",
                       "BSDPROCFS_PURE", "FUSE_LIBRARY_NAME", "FUSE_LIBRARY_PATH")}
                box[0] = subprocess.Popen(argv, pass_fds=(fd,), close_fds=True, cwd="/",
                                          stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=True)
            except BaseException as e:       # noqa: BLE001 - handed to the caller
                box[1] = e
            lk.release()

    # ---------------------------------------------------------------- routing
    def open(self, w: Worker, pid: int, node: Any, reader: Any, read: bool, write: bool,
             start: int) -> RemoteHandle:
        hid = w.call("open", pid=pid, node=node.name, read=read, write=write, start=start,
                     reader=_reader_json(reader))
        if not isinstance(hid, int):
            raise OSError(5, "bad reply")
        w.handles += 1
        return RemoteHandle(w, hid, node, pid, reader)

    def read(self, w: Worker, pid: int, node: str, reader: Any, size: int, offset: int,
             start: int) -> bytes:
        return unb64(w.call("read1", pid=pid, node=node, size=size, offset=offset,
                            start=start, reader=_reader_json(reader)))

    def readlink(self, w: Worker, pid: int, node: str, reader: Any, start: int) -> str:
        text = w.call("readlink", pid=pid, node=node, start=start,
                      reader=_reader_json(reader))
        if not isinstance(text, str):
            raise OSError(5, "bad reply")
        return text

    def image(self, w: Worker, pid: int, start: int) -> None:
        """EACCES unless the caller may follow /proc/PID/exe (READ_FSCREDS) to the file
        whose image we are about to read; EIO if it was replaced in between (an exec)."""
        got = w.call("exe", pid=pid, start=start)
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            raise OSError(5, "process has exited") from None
        if got != [st.st_dev, st.st_ino]:
            raise OSError(5, "the executable changed under the request")

    def guarded_status(self, w: Worker, pid: int, start: int) -> tuple[bytes | None, int]:
        """status's ptrace-guarded sources (wchan, the UTS namespace) as the caller would
        read them."""
        got = w.call("status", pid=pid, start=start)
        if not (isinstance(got, list) and len(got) == 2 and isinstance(got[1], int)):
            raise OSError(5, "bad reply")
        return (None if got[0] is None else unb64(got[0])), got[1]

    def shutdown(self) -> None:
        with self._lock:
            workers, self.workers = list(self.workers.values()), {}
        threads = [threading.Thread(target=w.stop, daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)


def _status_int(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(key + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


_SHARED: dict[tuple[str, bool], Boundary] = {}
_SHARED_LOCK = threading.Lock()


def shared(profile: str, fast_map: bool = False) -> Boundary:
    """One boundary per profile per process (the FUSE adapter's two trees share it)."""
    with _SHARED_LOCK:
        b = _SHARED.get((profile, fast_map))
        if b is None:
            b = _SHARED[(profile, fast_map)] = Boundary(profile, fast_map)
        return b


def shutdown_all() -> None:
    with _SHARED_LOCK:
        bs = list(_SHARED.values())
    for b in bs:
        b.shutdown()


# ------------------------------------------------------------ worker side
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(libc: Any, *args: int) -> None:
    full = [ctypes.c_ulong(a) for a in (*args, 0, 0, 0, 0)[:5]]
    if libc.prctl(*full) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl{args}: {os.strerror(e)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def become(c: Creds) -> None:
    """Take exactly credentials ``c`` (this process must be single-threaded and root)."""
    libc = _libc()
    inh, prm, eff, bnd, amb = c.caps
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):              # the bounding set needs CAP_SETPCAP: first
        if not bnd >> cap & 1:
            _prctl(libc, PR_CAPBSET_DROP, cap)
    os.setgroups(list(c.groups))
    os.setresgid(*c.gids[:3])
    _prctl(libc, PR_SET_KEEPCAPS, 1)
    os.setresuid(*c.uids[:3])
    libc.setfsgid(c.gids[3])
    libc.setfsuid(c.uids[3])
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (eff >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (prm >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inh >> (32 * i)) & 0xFFFFFFFF
    if libc.capset(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")
    for cap in range(last + 1):
        if amb >> cap & 1:
            _prctl(libc, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    _prctl(libc, PR_SET_KEEPCAPS, 0)
    if c.nnp:
        _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    got = task_creds(os.getpid())
    if got != c:
        raise OSError(1, f"credentials not taken exactly: {got} != {c}")


def _preload() -> Any:
    """Import all the worker will ever need while still root: the caller may not be
    able to read the installed package (a venv below /root)."""
    from .. import debug, errors, nodes, tree
    from ..access import Reader
    from ..backends.linux import LinuxBackend
    for name in nodes.FORMATS:
        nodes.module_for(name)
    from . import layouts, linux, tracer  # noqa: F401
    for name in ("ptrace", "ptrace.binding.func", "select", "traceback", "linecache",
                 "tokenize", "encodings.idna"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    layouts.host_arch()
    return tree, Reader, LinuxBackend, debug, errors


class _WorkerServer:
    """Serve the daemon's requests with the ordinary tree (FreeBSD's rules again) over
    a backend whose every /proc access and ptrace request is made as the caller."""

    def __init__(self, sock: socket.socket, profile: str, fast_map: bool) -> None:
        tree_mod, self.Reader, LinuxBackend, debug, self.errors = _preload()
        self.sock = sock
        self.lock = threading.Lock()
        self.tree = tree_mod.ProcTree(LinuxBackend(), profile, fast_map=fast_map,
                                      boundary=False)
        self.debugger = debug.get_debugger()
        self.tree.backend._debugger = self.debugger
        self.handles: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.flags: dict[int, bool] = {}
        self.inflight = 0

    def reader(self, r: list[Any]) -> Any:
        return self.Reader(int(r[0]), int(r[1]), int(r[2]), tuple(int(g) for g in r[3]))

    def _start_check(self, pid: int, start: int) -> None:
        try:
            p = self.tree.backend.lookup(pid)
        except OSError:
            raise self.errors.fail(5, pid, None, "process has exited") from None
        if p.ident.start_ticks != start:
            raise self.errors.fail(5, pid, None, "process has exited (pid reused)")

    def run(self, msg: dict[str, Any]) -> Any:
        op = msg["op"]
        tree = self.tree
        if op == "open":
            self._start_check(msg["pid"], msg["start"])
            h = tree.open(msg["pid"], msg["node"], self.reader(msg["reader"]),
                          read=bool(msg["read"]), write=bool(msg["write"]))
            hid = next(self.ids)
            self.handles[hid] = h
            return hid
        if op == "read":
            return b64(self.handles[msg["hid"]].read(msg["size"], msg["offset"]))
        if op == "write":
            h = self.handles[msg["hid"]]
            rid = msg["id"]
            h.interrupted = lambda: self.flags.get(rid, False)
            h.timeout = msg.get("timeout")
            return int(h.write(unb64(msg["data"]), msg["offset"]))
        if op == "close":
            h = self.handles.pop(msg["hid"], None)
            if h is not None:
                h.close()
            return 0
        if op == "read1":
            self._start_check(msg["pid"], msg["start"])
            return b64(tree.read(msg["pid"], msg["node"], self.reader(msg["reader"]),
                                 msg["size"], msg["offset"]))
        if op == "status":
            # no start check: whatever process holds the pid now, the worker reads only
            # what its caller could read of it directly
            wchan, uts = tree.backend.guarded_status(int(msg["pid"]))
            return [None if wchan is None else b64(wchan), uts]
        if op == "exe":
            self._start_check(msg["pid"], msg["start"])
            try:
                st = os.stat(f"/proc/{int(msg['pid'])}/exe")
            except PermissionError:
                raise OSError(13, "executable link refused by the kernel") from None
            except FileNotFoundError:
                raise OSError(5, "process has exited") from None
            return [st.st_dev, st.st_ino]
        if op == "readlink":
            self._start_check(msg["pid"], msg["start"])
            return tree.readlink([str(msg["pid"]), msg["node"]], self.reader(msg["reader"]))
        raise OSError(22, f"unknown boundary op {op!r}")

    def serve_one(self, msg: dict[str, Any]) -> None:
        rid = msg["id"]
        try:
            reply: dict[str, Any] = {"id": rid, "ok": self.run(msg)}
        except KeyError:
            reply = {"id": rid, "err": 9, "msg": "no such handle"}          # EBADF
        except OSError as e:
            reply = {"id": rid, "err": e.errno or 5, "msg": e.strerror or str(e)}
        except Exception as e:               # noqa: BLE001 - never kill the worker
            reply = {"id": rid, "err": 5, "msg": f"{type(e).__name__}: {e}"}
        finally:
            with self.lock:
                self.inflight -= 1
                self.flags.pop(rid, None)
        with contextlib.suppress(OSError):
            send_msg(self.sock, reply, self.lock)

    def loop(self) -> None:
        while True:
            msg = recv_msg(self.sock)
            if msg is None:
                break
            op = msg.get("op")
            if op == "interrupt":
                self.flags[msg["target"]] = True
                continue
            if op == "exit":
                self.debugger.detach_all()
                send_msg(self.sock, {"id": msg["id"], "ok": 0}, self.lock)
                break
            with self.lock:
                busy = self.inflight >= MAX_INFLIGHT
                if not busy:
                    self.inflight += 1
                    self.flags[msg["id"]] = False
            if busy:
                send_msg(self.sock, {"id": msg["id"], "err": 16, "msg": "busy"}, self.lock)
            elif op == "write":
                # only a write (a ctl word: wait may block for long) gets a thread of its
                # own; everything else is bounded and served in order, here
                threading.Thread(target=self.serve_one, args=(msg,), daemon=True).start()
            else:
                self.serve_one(msg)


def worker_main(argv: list[str]) -> int:
    fd, creds_json, profile, fast_map, parent = argv
    sock = socket.socket(fileno=int(fd))
    creds = Creds.from_json(creds_json)
    lock = threading.Lock()
    try:
        server = _WorkerServer(sock, profile, fast_map == "1")
        os.chdir("/")
        become(creds)
        # after the credential change: commit_creds clears the parent-death signal
        _prctl(_libc(), PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(parent):
            return 1
    except Exception as e:                   # noqa: BLE001 - reported, then exit
        with contextlib.suppress(OSError):
            send_msg(sock, {"ready": False, "msg": str(e)[:400]}, lock)
        return 1
    send_msg(sock, {"ready": True}, server.lock)
    try:
        server.loop()
    finally:
        with contextlib.suppress(Exception):
            server.debugger.detach_all()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
