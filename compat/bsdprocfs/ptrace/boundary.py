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
unpickles anything: messages are length-prefixed JSON, bounded in size.  This module
is the daemon's side; the worker's is ptrace/worker.py.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .gate import WaitGate

#: the largest reply the daemon accepts (a map of 1 MiB plus base64 and JSON)
MAX_MESSAGE = 4 << 20
#: distinct credential sets served at once (in all, per real uid); past it an idle
#: worker is retired
MAX_WORKERS = 64
MAX_WORKERS_PER_UID = 8
#: requests a worker runs at once; past it: EBUSY (the errno FreeBSD gives a busy tracee)
MAX_INFLIGHT = 128
#: nodes whose Linux source is guarded by a ptrace access mode check
GUARDED = frozenset(("regs", "fpregs", "dbregs", "mem", "ctl", "map", "file", "exe"))
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
_WORKER_CODE = ("import sys\nfrom bsdprocfs.ptrace.worker import worker_main\n"
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

    def __init__(self, worker: Worker, hid: int, node: Any, pid: int, reader: Any,
                 gate: WaitGate | None = None) -> None:
        self.worker, self.hid, self.node, self.pid, self.reader = worker, hid, node, pid, reader
        self.gate = gate
        self.tree: Any = None
        self.interrupted: Callable[[], bool] | None = None
        self.timeout: float | None = None
        self._closed = False

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        return unb64(self.worker.call("read", hid=self.hid, size=size, offset=offset))

    def write(self, data: bytes, offset: int = 0) -> int:
        # a ctl write may block (wait, a step inside a system call): it holds a slot
        gate = self.gate if self.node.name == "ctl" else None
        uid = self.worker.creds.uids[0]
        if gate is not None:
            gate.take(uid, self.pid)
        try:
            n = self.worker.call("write", self.interrupted, hid=self.hid,
                                 data=b64(bytes(data)), offset=offset, timeout=self.timeout)
        finally:
            if gate is not None:
                gate.give(uid)
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
    return [reader.pid, reader.uid, reader.gid, list(reader.groups), reader.ruid, reader.rgid]


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
        self._starting: dict[Creds, threading.Lock] = {}
        self._lock = threading.Lock()
        self._spawnq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._spawner: threading.Thread | None = None
        #: ctl writes in flight through any worker, per caller real uid: each worker
        #: bounds its own waits, this bounds a uid's across all of its workers
        self.gate = WaitGate()

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
        """The worker for c, started if need be.  Starting one takes a fresh interpreter
        (~0.1 s): it happens outside the table's lock, under a lock of its own per
        credential set, so other callers' requests never wait for it."""
        with self._lock:
            w = self.workers.get(c)
            if w is not None and w.alive:
                return w
            starting = self._starting.setdefault(c, threading.Lock())
        with starting:
            with self._lock:
                w = self.workers.get(c)
                if w is not None and w.alive:
                    return w
                self.workers.pop(c, None)
                self._make_room(c)
            try:
                w = Worker(c, self.profile, self.fast_map, self._spawn)
            finally:
                with self._lock:
                    self._starting.pop(c, None)
            with self._lock:
                self.workers[c] = w
            return w

    def _make_room(self, c: Creds) -> None:
        """Bound the workers (in all, and per real uid, so that one user cannot crowd
        out the others): retire the least recently used one without open handles, or
        EBUSY."""
        for per_uid, limit in ((True, MAX_WORKERS_PER_UID), (False, MAX_WORKERS)):
            pool = [x for x in self.workers.values()
                    if not per_uid or x.creds.uids[0] == c.uids[0]]
            if len(pool) < limit:
                continue
            idle = sorted((x for x in pool if x.handles <= 0), key=lambda x: x.last_used)
            if not idle:
                raise OSError(16, "too many distinct caller credentials")   # EBUSY
            old = idle[0]
            self.workers.pop(old.creds, None)
            threading.Thread(target=old.stop, daemon=True).start()

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
        return RemoteHandle(w, hid, node, pid, reader, self.gate)

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
