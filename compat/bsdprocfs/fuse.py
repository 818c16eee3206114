"""The FUSE adapter: serve :class:`~bsdprocfs.tree.ProcTree` as a filesystem.

This module only routes.  Every FreeBSD rule (modes, owners, visibility,
errnos, p_cansee/p_candebug) lives in tree.py and access.py; here each request
is turned into a :class:`~bsdprocfs.access.Reader` built from the *caller's*
credentials (uid, gid, supplementary groups via ``fuse_getgroups``, pid from
the caller's thread id) and handed to the tree.

Linux facts this relies on (linux-mapping.md section 7):
* ``direct_io`` on every open: pseudofs reports st_size 0, and without
  direct_io the page cache stops at i_size and reads return nothing.
* entry_timeout = negative_timeout = 0: a cached dentry would let a vanished
  pid pass lookup, so every path walk sends LOOKUP (a vanished pid is ENOENT at
  once) and getattr must be cheap (see AttrCache).  attr_timeout = 1 s only
  spares the second GETATTR the kernel sends for its default_permissions check
  right after that LOOKUP (measured: 5 -> 2 getattrs per open of PID/status);
  a path walk always refreshes attributes through LOOKUP, so only fstat(2) of
  an already open fd can see attributes up to 1 s old.
* ``fuse_get_context().pid`` is the caller's *thread* id; curproc/self name the
  thread group.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .access import Reader
from .errors import EIO, ENOENT, EOPNOTSUPP
from .ptrace.linux import pidfd_exited
from .tree import DIR, FILE, LINK, NO_PID, PIDDIR, ROOT_INO, Attr, ProcTree, host_pid_of_tid

log = logging.getLogger("bsdprocfs.fuse")
if "mfusepy" not in sys.modules and not os.environ.get("FUSE_LIBRARY_PATH"):
    # mfusepy binds libfuse2 when both are installed; fix the choice before anyone
    # (this module's importers included) imports it
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
BENCH_BODY = b"bsdprocfs bench node\n"
#: errnos a request through the mount may answer (the fuzz test holds us to it).
DOCUMENTED_ERRNOS = frozenset({
    errno.ENOENT, errno.EIO, errno.EBADF, errno.EINVAL, errno.EPERM, errno.EACCES,
    errno.EBUSY, errno.EFAULT, errno.EINTR, errno.ENAMETOOLONG, errno.ESRCH,
    errno.EOPNOTSUPP, errno.ENOTDIR, errno.EISDIR, errno.ENOTTY, errno.EROFS,
    errno.EAGAIN,           # ctl wait past a caller's bound of blocking waits
})
MOUNT_OPTIONS: dict[str, Any] = {
    "allow_other": True, "default_permissions": True, "fsname": "procfs",
    "subtype": "bsdprocfs", "use_ino": True,
    "entry_timeout": 0, "attr_timeout": 1, "negative_timeout": 0,
    # libfuse's worker threads (3.12+; default 10): above the tracer's bound on blocking
    # ctl waits in all (ptrace/gate.MAX_WAITS), so a blocked wait never takes the last
    # thread that serves everyone else
    "max_threads": 256,
}


def _ino(fileno: int, pid: int) -> int:
    # Same numbering as tree.Attr.ino (fileno * NO_PID + pid), for readdir's d_ino.
    return fileno * NO_PID + pid if pid < NO_PID else (fileno << 32) | pid


def load_libfuse3() -> Any:
    """Import mfusepy bound to libfuse3 (it prefers libfuse2 when both exist)."""
    if "mfusepy" not in sys.modules and not os.environ.get("FUSE_LIBRARY_PATH"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy
    if mfusepy.fuse_version_major != 3:
        raise RuntimeError(f"libfuse3 is required, found libfuse{mfusepy.fuse_version_major}; "
                           "install fuse3 (apt-get install fuse3)")
    lib = mfusepy._libfuse
    lib.fuse_getgroups.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]
    lib.fuse_getgroups.restype = ctypes.c_int
    lib.fuse_interrupted.argtypes = []
    lib.fuse_interrupted.restype = ctypes.c_int
    lib.fuse_get_session.argtypes = [ctypes.c_void_p]
    lib.fuse_get_session.restype = ctypes.c_void_p
    lib.fuse_session_exited.argtypes = [ctypes.c_void_p]
    lib.fuse_session_exited.restype = ctypes.c_int
    return mfusepy


def caller_groups(lib: Any) -> tuple[int, ...]:
    """The caller's supplementary groups: not in fuse_context, libfuse3 reads them
    from /proc/TID/status for us (fuse_getgroups)."""
    size = 64
    while True:
        buf = (ctypes.c_uint * size)()
        n = lib.fuse_getgroups(size, buf)
        if n < 0:
            return ()
        if n <= size:
            return tuple(buf[:n])
        size = n


def caller_real_ids(tid: int) -> tuple[int, int]:
    """The caller's real uid and gid (fuse_context has only the fs ids), from the
    first fields of /proc/TID/status's Uid: and Gid: lines; -1 if unreadable."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            head = f.read(2048)
        uid = head.split(b"\nUid:", 1)[1].split(None, 1)[0]
        gid = head.split(b"\nGid:", 1)[1].split(None, 1)[0]
        return int(uid), int(gid)
    except (OSError, IndexError, ValueError):
        return -1, -1


def fuse_interrupted() -> bool:
    """True once the kernel sent FUSE_INTERRUPT for the current request (the
    caller got a signal), or once the session is ending (SIGTERM: libfuse waits
    for its workers, so a blocked ctl ``wait`` must give up or the daemon hangs).
    A blocking ``wait`` polls this and returns EINTR.  mfusepy wraps neither
    call; both are only meaningful on a FUSE worker thread."""
    mf = sys.modules.get("mfusepy")
    if mf is None:
        return False
    lib = mf._libfuse
    if lib.fuse_interrupted():
        return True
    ctx = lib.fuse_get_context()
    if not ctx or not ctx.contents.fuse:
        return False
    se = lib.fuse_get_session(ctx.contents.fuse)
    return bool(se) and bool(lib.fuse_session_exited(se))


#: the constant file of a bench node NAME is NAME/BENCH_FILE: the same depth and name as
#: PID/status, so both opens cost the same LOOKUPs and the bench's ratio is what
#: generating status adds on top of FUSE
BENCH_FILE = "status"


class _BenchHandle:
    """The opt-in constant file: the FUSE floor the status node is compared with."""

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        return BENCH_BODY[offset: None if size < 0 else offset + size]

    def write(self, data: bytes, offset: int = 0) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def _stat(a: Attr) -> dict[str, int]:
    ns = int(a.time * 1e9)
    return {"st_mode": a.st_mode, "st_ino": a.ino, "st_nlink": a.nlink, "st_uid": a.uid,
            "st_gid": a.gid, "st_size": a.size, "st_blocks": 0, "st_blksize": PAGE_SIZE,
            "st_atime": ns, "st_mtime": ns, "st_ctime": ns}


def _parts(path: str) -> list[str]:
    return [] if path in ("/", "") else path.lstrip("/").split("/")


def _op(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every request answers an errno, never an exception: unexpected failures are
    logged with a traceback and become EIO, so the daemon keeps serving."""
    name = fn.__name__

    def wrapper(self: Operations, *args: Any) -> Any:
        try:
            return fn(self, *args)
        except OSError as e:
            if isinstance(e.errno, int) and e.errno > 0:
                raise
            log.exception("%s%r: OSError without errno", name, args)
            raise OSError(EIO, os.strerror(EIO)) from None
        except Exception:
            log.exception("%s%r failed", name, args)
            raise OSError(EIO, os.strerror(EIO)) from None

    wrapper.__name__ = name
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _unsupported(self: Any, *args: Any) -> Any:
    raise OSError(EOPNOTSUPP, os.strerror(EOPNOTSUPP))


def _ignored(self: Any, *args: Any) -> int:
    return 0


class AttrCache:
    """A backend proxy for getattr only: one full lookup per process per ``ttl``.

    The kernel sends a LOOKUP for every path component on every open (our
    entry_timeout is 0), so a status read costs two getattrs before the open;
    measured, those two full lookups were a third of the request.  Existence
    stays exact: each entry holds a pidfd opened *before* the lookup, and a
    pidfd turns readable when its process exits (zombie) or was never the one
    looked up (pid reuse in between), which drops the entry.  Credentials (owner,
    mode 0 for P_SUGID, candebug visibility) may be up to ``ttl`` old, like the
    kernel's own attr cache.  Only stat(2) results and the open of a text node
    for reading use it (a decision every read re-checks with fresh facts, EIO
    otherwise); debug nodes, ctl, osrel and every write look the process up
    afresh, so no access to registers, memory or tracing rests on this cache.
    """

    def __init__(self, backend: Any, ttl: float = 0.05, size: int = 256) -> None:
        # size bounds the pidfds held open (each entry keeps one): a full cache of
        # fresh entries just stops caching, it never starves the daemon of fds.
        self._backend = backend
        self._ttl = ttl
        self._size = size
        self._cache: dict[int, tuple[float, int, Any]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def lookup(self, pid: int) -> Any:
        now = time.monotonic()
        with self._lock:             # fds are closed only under the lock, exactly once
            hit = self._cache.get(pid)
            if hit is not None:
                if now - hit[0] < self._ttl and not pidfd_exited(hit[1]):
                    return hit[2]
                del self._cache[pid]
                os.close(hit[1])
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return self._backend.lookup(pid)      # not a process (or a thread): no caching
        try:
            p = self._backend.lookup(pid)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            if len(self._cache) >= self._size:
                for k, v in list(self._cache.items()):
                    if now - v[0] >= self._ttl:
                        del self._cache[k]
                        os.close(v[1])
            old = self._cache.pop(pid, None)
            if old is not None:
                os.close(old[1])
            if len(self._cache) < self._size:
                self._cache[pid] = (now, fd, p)
            else:
                os.close(fd)
        return p


class Operations:
    """mfusepy operations over a ProcTree (path based, raw_fi for direct_io)."""

    use_ns = True

    def __init__(self, tree: ProcTree, bench_node: str | None = None, lib: Any = None) -> None:
        self.tree = tree
        self.bench_node = bench_node
        self.lib = lib
        self._handles: dict[int, Any] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()
        self._root_names = {n.name for n in tree.root_nodes}
        # The same rules over a backend whose lookups are cached for getattr.
        self.attr_tree = ProcTree(AttrCache(tree.backend), tree.profile, tree.policy)

    # ---------------------------------------------------------------- caller
    def reader(self, need_pid: bool = True) -> Reader:
        """The caller as FreeBSD's td_ucred.  Root's groups and, where no rule
        can use it, root's pid are not looked up: each costs a /proc read per
        request (measured: the reader was half of a getattr)."""
        import mfusepy
        uid, gid, tid = mfusepy.fuse_get_context()
        if uid == 0:
            return Reader(host_pid_of_tid(tid) if need_pid else -1, 0, gid, (), tid)
        groups = caller_groups(self.lib) if self.lib is not None else ()
        pol = self.tree.policy
        if pol.see_other_uids and pol.see_other_gids:
            return Reader(host_pid_of_tid(tid), uid, gid, groups, tid)
        # see_other_uids/gids compare the caller's REAL ids (cite: cansee.uids)
        ruid, rgid = caller_real_ids(tid)
        return Reader(host_pid_of_tid(tid), uid, gid, groups, tid, ruid, rgid)

    # ------------------------------------------------------------ attributes
    @_op
    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        parts = _parts(path)
        if self.bench_node and parts[:1] == [self.bench_node]:
            if parts[1:] == [BENCH_FILE]:
                return _stat(Attr(FILE, 0o444, 0, 0, 1, time=time.time()))
            if len(parts) == 1:
                return _stat(Attr(DIR, 0o555, 0, 0, 1, time=time.time()))
        need_pid = "curproc" in parts or "self" in parts
        return _stat(self.attr_tree.getattr(parts, self.reader(need_pid)))

    @_op
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        parts = _parts(path)
        r = self.reader("curproc" in parts or "self" in parts)
        dmode = {"st_mode": 0o040555}
        if not parts:
            out = []
            for name in self.tree.list_root(r):
                if name in (".", ".."):
                    out.append((name, {**dmode, "st_ino": ROOT_INO}, 0))
                elif name in self._root_names:
                    n = next(x for x in self.tree.root_nodes if x.name == name)
                    out.append((name, {"st_mode": 0o120444, "st_ino": n.fileno}, 0))
                else:
                    # pfs_readdir numbers entries with the directory's pid, NO_PID at the
                    # root: every <pid> entry gets the template's plain fileno, unlike
                    # stat(2) of /proc/<pid> (cite: pfs.readdir.fileno)
                    out.append((name, {**dmode, "st_ino": PIDDIR.fileno}, 0))
            return out
        if len(parts) != 1:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        pid = self.tree.resolve(parts[0], r)
        fmt = {DIR: 0o040000, FILE: 0o100000, LINK: 0o120000}
        out = []
        for name in self.tree.list_pid(pid, r):
            if name == ".":
                out.append((name, {**dmode, "st_ino": _ino(PIDDIR.fileno, pid)}, 0))
            elif name == "..":
                # the ".." node takes the root's fileno 2, then pn_fileno adjusts it by the
                # directory's pid like every entry (cite: pfs.fileno, pfs.readdir.fileno)
                out.append((name, {**dmode, "st_ino": _ino(ROOT_INO, pid)}, 0))
            else:
                n = self.tree.node(name, pid)
                out.append((name, {"st_mode": fmt[n.kind] | n.mode,
                                   "st_ino": _ino(n.fileno, pid)}, 0))
        return out

    @_op
    def readlink(self, path: str) -> str:
        return self.tree.readlink(_parts(path), self.reader())

    @_op
    def statfs(self, path: str) -> dict[str, int]:
        # FreeBSD pseudofs statfs: f_bsize = f_iosize = PAGE_SIZE, 2 blocks, no files.
        return {"f_bsize": PAGE_SIZE, "f_frsize": PAGE_SIZE, "f_blocks": 2, "f_bfree": 2,
                "f_bavail": 2, "f_files": 0, "f_ffree": 0, "f_namemax": 127}

    # ------------------------------------------------------------------ I/O
    @_op
    def open(self, path: str, fi: Any) -> int:
        parts = _parts(path)
        acc = fi.flags & os.O_ACCMODE
        want_read = acc in (os.O_RDONLY, os.O_RDWR)
        want_write = acc in (os.O_WRONLY, os.O_RDWR)
        if self.bench_node and parts == [self.bench_node, BENCH_FILE]:
            h: Any = _BenchHandle()
        elif len(parts) == 2:
            # the caller's pid matters to ctl (attach to oneself) and curproc/self
            r = self.reader(parts[1] == "ctl" or parts[0] in ("curproc", "self"))
            pid = self.tree.resolve(parts[0], r)
            node = self.tree.node(parts[1], pid)
            # Text nodes (no attr callback, no candebug visibility) opened for reading
            # decide nothing the read does not re-check with fresh facts (Handle
            # re-runs p_cansee and visibility, or answers EIO), so their open may use
            # the lookup the kernel's LOOKUP just cached: one /proc pass less per
            # open+read.  Debug nodes and writes always look the process up afresh.
            plain = not node.attr and node.vis != "candebug" and not want_write
            h = (self.attr_tree if plain else self.tree).open(
                pid, parts[1], r, read=want_read, write=want_write)
            h.tree = self.tree                   # reads regenerate from the live backend
            h.interrupted = fuse_interrupted     # a signalled caller ends ctl wait (EINTR)
        else:
            raise OSError(ENOENT, os.strerror(ENOENT))
        fh = next(self._next)
        with self._lock:
            self._handles[fh] = h
        fi.fh = fh
        fi.direct_io = 1        # size-0 files: every read must reach us
        fi.keep_cache = 0
        return 0

    def _handle(self, fi: Any) -> Any:
        h = self._handles.get(fi.fh)
        if h is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return h

    @_op
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return bytes(self._handle(fi).read(size, offset))

    @_op
    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        h = self._handle(fi)
        if getattr(getattr(h, "node", None), "name", None) != "ctl":
            return int(h.write(bytes(data), offset))
        # ctl: the daemon is the tracer for every caller, so it records who did what
        r = h.reader
        word = bytes(data[:64]).rstrip()
        try:
            n = int(h.write(bytes(data), offset))
        except OSError as e:
            log.info("ctl pid %d %r by pid %d uid %d: %s", h.pid, word, r.pid, r.uid,
                     errno.errorcode.get(e.errno or 0, e.errno))
            raise
        log.info("ctl pid %d %r by pid %d uid %d: ok", h.pid, word, r.pid, r.uid)
        return n

    def flush(self, path: str, fi: Any) -> int:
        return 0

    @_op
    def ioctl(self, path: str, cmd: int, arg: Any, fi: Any, flags: int, data: Any) -> int:
        """ioctl(2) on an open node: the mem PIOC* requests (10.x-12.x profiles).  Linux's
        FUSE copies _IOC_SIZE bytes in or out by its own encoding of the request;
        _IOWINT requests carry their int in ``arg``."""
        import ctypes

        from .nodes import ioctl as n_ioctl
        h = self._handle(fi)
        if not hasattr(h, "ioctl"):
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        req = cmd & 0xFFFFFFFF
        value: Any = arg.value if hasattr(arg, "value") else arg
        size = (req >> 16) & 0x3FFF
        if (req >> 30) & 1 and data and size:           # Linux _IOC_WRITE: bytes in
            value = ctypes.string_at(data, min(size, 64))
        out = h.ioctl(req, value or 0)
        n = n_ioctl.REQUESTS.get(req)
        if out and data and n in n_ioctl.OUT_SIZE and (req >> 31) & 1:   # _IOC_READ
            ctypes.memmove(data, out, min(len(out), size))
        return 0

    def release(self, path: str, fi: Any) -> int:
        with self._lock:
            h = self._handles.pop(fi.fh, None)
        close = getattr(h, "close", None)
        if close is not None:
            close()                      # a mem handle holds its /proc/PID/mem fds
        return 0

    # ------------------------------------------------ setattr: per profile
    def _setattr(self, path: str) -> int:
        """pfs_setattr: EOPNOTSUPP through 12.x, silently 0 later (cite: pfs.setattr)."""
        self.getattr(path)               # the name must exist (lookup)
        err = self.tree.profile.setattr_errno
        if err:
            raise OSError(err, os.strerror(err))
        return 0

    @_op
    def chmod(self, path: str, mode: int) -> int:
        return self._setattr(path)

    @_op
    def chown(self, path: str, uid: int, gid: int) -> int:
        return self._setattr(path)

    @_op
    def utimens(self, path: str, times: Any = None) -> int:
        return self._setattr(path)

    @_op
    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        # O_TRUNC of `echo word > ctl` arrives as a setattr(size): ignored under every
        # profile (how 10.x-12.x's open(O_TRUNC) met pfs_setattr's EOPNOTSUPP is not
        # read from the source, so it is not modeled).
        if path is not None:
            self.getattr(path)
        return 0

    # ------------------------------------- namespace changes: EOPNOTSUPP (pseudofs)
    create = _unsupported
    mkdir = _unsupported
    mknod = _unsupported
    unlink = _unsupported
    rmdir = _unsupported
    rename = _unsupported
    symlink = _unsupported
    link = _unsupported
    setxattr = _unsupported
    removexattr = _unsupported
    fsync = _ignored

    def destroy(self, path: str) -> None:
        log.info("unmounted")


def shutdown_debugger(tree: ProcTree) -> None:
    """Detach every tracee (SIGTERM / unmount path): nothing stays stopped."""
    try:
        tree.close()                     # targets held for PIOC* stop events
    except Exception:
        log.exception("releasing stop-event targets failed")
    dbg = getattr(tree.backend, "_debugger", None)
    if dbg is None:
        return
    for name in ("shutdown", "detach_all", "close"):
        fn = getattr(dbg, name, None)
        if callable(fn):
            try:
                fn()
            except Exception:
                log.exception("debugger %s failed", name)
            return


def serve(mountpoint: str, profile: str = "compat", bench_node: str | None = None,
          backend: str = "auto", root: str | None = None) -> int:
    """Mount and serve in this process until unmounted or signalled (foreground)."""
    from .backends import get_backend
    mfusepy = load_libfuse3()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:          # pidfds, /proc reads and /proc/PID/mem of many callers at once
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tree = ProcTree(get_backend(backend, root), profile)
    ops = Operations(tree, bench_node, mfusepy._libfuse)
    log.info("mounting %s (profile %s, pid %d)", mountpoint, tree.profile.name, os.getpid())
    # libfuse installs its own SIGTERM/SIGINT/SIGHUP handlers (session exit ->
    # unmount); Python must not hold SIGTERM or libfuse would not replace it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        mfusepy.FUSE(ops, mountpoint, raw_fi=True, foreground=True, **MOUNT_OPTIONS)
    except RuntimeError as e:
        # fuse_main answers 8 when a signal (SIGTERM/SIGINT/SIGHUP) ended the
        # session: that is our clean shutdown once the mount is gone.
        if e.args != (8,) or is_mounted(mountpoint):
            raise
        log.info("session ended by a signal; unmounted")
    finally:
        shutdown_debugger(tree)
        from .ptrace.boundary import shutdown_all
        shutdown_all()                   # every credential worker lets its tracees go
        log.info("daemon exiting")
    return 0


# ----------------------------------------------------------------- helpers
def is_mounted(mountpoint: str) -> bool:
    """Is a procfs FUSE mount live at mountpoint (in our mount namespace)?"""
    target = os.path.realpath(mountpoint).encode()
    if not os.path.exists("/proc/self/mountinfo"):
        # FreeBSD (fusefs) has no mountinfo: a mount point is a different device.
        return os.path.ismount(mountpoint)
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == target:
                    i = fields.index(b"-")
                    if fields[i + 1].startswith(b"fuse"):
                        return True
    except OSError:
        pass
    return False


def _unescape(b: bytes) -> bytes:
    return (b.replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\012", b"\n")
            .replace(b"\\134", b"\\"))


def fusermount_u(mountpoint: str) -> None:
    """Lazy-unmount a (possibly dead) FUSE mount; quiet if nothing is mounted."""
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        with contextlib.suppress(OSError):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, check=False)
        if not is_mounted(mountpoint):
            return


@dataclass
class Mount:
    """A live mount made by :func:`mounted`."""

    path: str
    proc: subprocess.Popen[bytes]
    log_path: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@contextlib.contextmanager
def mounted(profile: str = "compat", extra: tuple[str, ...] | list[str] = (),
            timeout: float = 20.0) -> Iterator[Mount]:
    """Run ``bsdprocfs mount --foreground`` on a fresh temp dir until the block ends.

    For tests and the bench: waits until the mount is live, and always stops the
    daemon (SIGTERM, then SIGKILL) and lazy-unmounts, even on failure.
    """
    mnt = tempfile.mkdtemp(prefix="bsdprocfs-mnt-")
    fd, log_path = tempfile.mkstemp(prefix="bsdprocfs-daemon-", suffix=".log")
    os.close(fd)
    cmd = [sys.executable, "-m", "bsdprocfs", "mount", "--foreground", "--profile", profile,
           "--logfile", log_path, "--pidfile", log_path[:-4] + ".pid", *extra, mnt]
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, stdin=devnull, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    m = Mount(mnt, proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not is_mounted(mnt):
            if proc.poll() is not None:
                raise RuntimeError(f"bsdprocfs mount exited {proc.returncode}:\n{m.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mount not live after {timeout}s:\n{m.log_text()}")
            time.sleep(0.02)
        yield m
    finally:
        stop(m)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)
        for p in (log_path[:-4] + ".pid", log_path):     # read the log inside the block
            with contextlib.suppress(OSError):
                os.unlink(p)


def stop(m: Mount, timeout: float = 15.0) -> None:
    """SIGTERM the daemon (clean unmount + detach), SIGKILL if it hangs."""
    if m.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            m.proc.send_signal(signal.SIGTERM)
        try:
            m.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
    if is_mounted(m.path):
        fusermount_u(m.path)


__all__ = ["DOCUMENTED_ERRNOS", "MOUNT_OPTIONS", "Mount", "Operations",
           "fuse_interrupted", "is_mounted", "mounted", "serve", "stop"]
