"""The credential worker (the other side of ptrace/boundary.py): a fresh interpreter,
started as root by the daemon, that takes exactly its caller's credentials before it
serves anything, then runs the ordinary tree, debugger and /proc reads with them, so
every ptrace access check and /proc permission is the kernel's, for that caller.

It imports everything it will need while still root (the caller may not be able to
read the installed package), sets PR_SET_PDEATHSIG after the credential change (which
clears it), and exits at EOF on its socket, letting its tracees go.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import itertools
import os
import signal
import socket
import sys
import threading
from typing import Any

from .boundary import (
    _LINUX_CAPABILITY_VERSION_3,
    MAX_INFLIGHT,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Creds,
    b64,
    recv_msg,
    send_msg,
    task_creds,
    unb64,
)


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
    import pkgutil

    from .. import backends, errors, nodes, tree
    from ..access import Reader
    from ..backends.linux import LinuxBackend
    from . import layouts
    # every module of the packages a request may reach, lazy imports included (the
    # debugger's, the node formats, the compiled twin)
    for pkg in (nodes, backends, sys.modules[__package__ or "bsdprocfs.ptrace"]):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            if not info.name.endswith((".worker", ".raw")):
                with contextlib.suppress(ImportError):
                    importlib.import_module(info.name)
    for name in ("debug", "elf", "wmesg", "records", "profiles"):
        with contextlib.suppress(ImportError):       # (debug.py may move into ptrace/)
            importlib.import_module(f"{tree.__package__}.{name}")
    for name in ("ptrace", "ptrace.binding.func", "select", "traceback", "linecache",
                 "tokenize", "encodings.idna"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    layouts.host_arch()
    return tree, Reader, LinuxBackend, errors


class _WorkerServer:
    """Serve the daemon's requests with the ordinary tree (FreeBSD's rules again) over
    a backend whose every /proc access and ptrace request is made as the caller."""

    def __init__(self, sock: socket.socket, profile: str, fast_map: bool) -> None:
        tree_mod, self.Reader, LinuxBackend, self.errors = _preload()
        self.sock = sock
        self.lock = threading.Lock()
        self.tree = tree_mod.ProcTree(LinuxBackend(), profile, fast_map=fast_map,
                                      boundary=False)
        # the backend's own debugger (imported now, while the package is readable)
        self.debugger = self.tree.backend.debugger
        self.handles: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.flags: dict[int, bool] = {}
        self.inflight = 0

    def reader(self, r: list[Any]) -> Any:
        return self.Reader(int(r[0]), int(r[1]), int(r[2]), tuple(int(g) for g in r[3]),
                           ruid=int(r[4]), rgid=int(r[5]))

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
