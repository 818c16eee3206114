"""The procfs node table and pseudofs semantics (sys/fs/pseudofs in Python).

Every FreeBSD rule about the tree lives here: which nodes exist per profile,
their type, mode, owner and visibility, open permission (vaccess), and the
read/write/readlink paths with their errnos.  The API, the CLI and the FUSE
adapter only route to :class:`ProcTree`.
"""

from __future__ import annotations

import os
import stat as _stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .access import DEFAULT_POLICY, Policy, Reader, linux_may_signal, p_candebug, p_cansee
from .errors import (
    EACCES,
    EBADF,
    EINVAL,
    EIO,
    ENAMETOOLONG,
    ENOENT,
    ENOTTY,
    EOPNOTSUPP,
    ProcfsError,
    fail,
)
from .nodes import cmdline as n_cmdline
from .nodes import ctl as n_ctl
from .nodes import etype as n_etype
from .nodes import file as n_file
from .nodes import map as n_map
from .nodes import osrel as n_osrel
from .nodes import rlimit as n_rlimit
from .nodes import status as n_status
from .profiles import OBJ_ANON, OBJ_SWAP, Profile, get_profile
from .ptrace import boundary as _boundary
from .records import FileRecord

PFS_MAXBUFSIZ = 1 << 20          # sbuf limit of non-raw reads and of writes
PFS_NAMELEN = 128
#: per-process filenos are pn_fileno * NO_PID + pid (cite: pfs.fileno.pid); the root is
#: 2 and the unit allocator starts at 3 (cite: pfs.fileno)
NO_PID = 100000
#: larger than any pid a kernel hands out (FreeBSD PID_MAX 99999, Linux 2^22): ENOENT.
PID_LIMIT = (1 << 31) - 1
ROOT_INO = 2

DIR, FILE, LINK = "dir", "file", "link"


@dataclass(frozen=True)
class Node:
    """One entry of procfs_init(): name, type, flags, attr and vis callbacks.

    Modes: 0200/0600 by name in 10.x-11.x's procfs_attr (cite: nodes.attr.10), by
    procfs_attr_w/_rw since 12 (cite: nodes.attr), 0444/0555 otherwise (cite: pfs.getattr).
    """

    name: str
    kind: str
    mode: int
    attr: bool = False           # has procfs_attr_*: a P_SUGID target turns the mode to 0
    vis: str | None = None       # None, "notsystem" or "candebug"
    rd: bool = False
    wr: bool = False
    raw: bool = False
    fileno: int = 0
    present: Callable[[Profile], bool] = lambda prof: True


def _always(_: Profile) -> bool:
    return True


def _ctl(prof: Profile) -> bool:
    return prof.has_ctl


def _self_exe(prof: Profile) -> bool:
    return prof.has_self_exe


# Root-level nodes (creation order = readdir order).
CURPROC = Node("curproc", LINK, 0o444, fileno=3)
SELF = Node("self", LINK, 0o444, fileno=4, present=_self_exe)
PIDDIR = Node("<pid>", DIR, 0o555, fileno=5)
ROOT_NODES = (CURPROC, SELF)

# Per-process nodes in procfs_init() order (cite: nodes.table); ctl sat between cmdline
# and dbregs (cite: nodes.ctl.10).
PID_NODES: tuple[Node, ...] = tuple(
    Node(name, kind, mode, attr, vis, rd, wr, raw, fileno=6 + i, present=present)
    for i, (name, kind, mode, attr, vis, rd, wr, raw, present) in enumerate((
        ("cmdline", FILE, 0o444, False, None, True, False, False, _always),
        ("ctl", FILE, 0o200, True, None, False, True, False, _ctl),
        ("dbregs", FILE, 0o600, True, "candebug", True, True, True, _always),
        ("etype", FILE, 0o444, False, None, True, False, False, _always),
        ("fpregs", FILE, 0o600, True, "candebug", True, True, True, _always),
        ("map", FILE, 0o444, False, "notsystem", True, False, False, _always),
        ("mem", FILE, 0o600, True, "candebug", True, True, True, _always),
        ("note", FILE, 0o200, True, "candebug", False, True, False, _always),
        ("notepg", FILE, 0o200, True, "candebug", False, True, False, _always),
        ("regs", FILE, 0o600, True, "candebug", True, True, True, _always),
        ("rlimit", FILE, 0o444, False, None, True, False, False, _always),
        ("status", FILE, 0o444, False, None, True, False, False, _always),
        ("osrel", FILE, 0o600, True, "candebug", True, True, False, _always),
        ("file", LINK, 0o444, False, "notsystem", False, False, False, _always),
        ("exe", LINK, 0o444, False, "notsystem", False, False, False, _self_exe),
    )))
NODES_BY_NAME = {n.name: n for n in PID_NODES}
REGSETS = ("regs", "fpregs", "dbregs")
PINNABLE = frozenset(("ctl", *REGSETS))


@dataclass(frozen=True)
class Attr:
    """What stat(2) reports for a node (pfs_getattr)."""

    kind: str
    mode: int                    # permission bits only
    uid: int
    gid: int
    ino: int
    size: int = 0
    nlink: int = 1
    time: float = 0.0

    @property
    def st_mode(self) -> int:
        fmt = {DIR: _stat.S_IFDIR, FILE: _stat.S_IFREG, LINK: _stat.S_IFLNK}[self.kind]
        return fmt | self.mode


def _ino(fileno: int, pid: int) -> int:
    return fileno * NO_PID + pid if pid < NO_PID else (fileno << 32) | pid


def vaccess(attr: Attr, reader: Reader, want_read: bool, want_write: bool) -> bool:
    """FreeBSD vaccess(): root bypasses file modes; else owner, group or other bits."""
    if reader.privileged:
        return True
    if reader.uid == attr.uid:
        bits = attr.mode >> 6
    elif reader.groupmember(attr.gid):
        bits = attr.mode >> 3
    else:
        bits = attr.mode
    return (not want_read or bool(bits & 4)) and (not want_write or bool(bits & 2))


class ProcTree:
    """Lookups, attributes and I/O over a backend, for one profile and policy."""

    def __init__(self, backend: Any, profile: Profile | str | None = None,
                 policy: Policy = DEFAULT_POLICY, fast_map: bool = False,
                 boundary: Any = "auto") -> None:
        self.backend = backend
        self.profile = get_profile(profile)
        if self.profile.cansee_real_groups != policy.real_groups:
            policy = replace(policy, real_groups=self.profile.cansee_real_groups)
        self.policy = policy
        self.fast_map = fast_map
        if boundary == "auto":
            # a root process answering for others over Linux /proc: the kernel's own
            # ptrace rules decide for each caller (ptrace/boundary.py)
            boundary = (_boundary.shared(self.profile.name, fast_map)
                        if os.geteuid() == 0 and getattr(backend, "name", "") == "linux"
                        and getattr(backend, "by_pid", False) else None)
        self.boundary: _boundary.Boundary | None = boundary or None
        self.root_nodes = tuple(n for n in ROOT_NODES if n.present(self.profile))
        self.pid_nodes = tuple(n for n in PID_NODES if n.present(self.profile))
        self._by_name = {n.name: n for n in self.pid_nodes}
        self._pins: dict[int, Any] = {}
        self._stop_events: Any = None
        self._fills: dict[str, Callable[[Any], Any]] = {
            "status": backend.status,
            "cmdline": backend.cmdline,
            "rlimit": backend.rlimit,
            "map": lambda p: backend.map(p, fast=self.fast_map),
            "etype": backend.etype,
            "osrel": backend.osrel,
            "file": backend.binpath,
            "exe": backend.binpath,
        }
        self._renders: dict[str, Callable[[Any, Profile], bytes]] = {
            "status": n_status.render, "cmdline": n_cmdline.render,
            "rlimit": n_rlimit.render, "map": n_map.render, "etype": n_etype.render,
            "osrel": n_osrel.render, "file": n_file.render, "exe": n_file.render,
        }
        # Rendering never prints the ProcExtras extension: a backend that can skip it
        # says so (measured ~5 us of a ~50 us status read); record() keeps it.
        # A backend may render map in one compiled pass (backends/linux.py map_bytes):
        # the same bytes as render(record), which stays the reference and the record path
        map_bytes = getattr(backend, "map_bytes", None)
        self._map_bytes: Callable[[Any], bytes | None] | None = None
        if map_bytes is not None:
            # an anonymous object's flags per era, as Profile.map_flags translates the
            # record's (cite: map.flags.objt)
            names = tuple(self.profile.map_type_name(t).encode() for t in backend.map_types)
            anon = self.profile.map_flags("swap", OBJ_ANON | OBJ_SWAP)
            self._map_bytes = lambda p: map_bytes(p, names, fast=self.fast_map,
                                                  anon_flags=anon)
        self._render_fills = dict(self._fills)
        if getattr(backend, "status_extras_optional", False):
            self._render_fills["status"] = lambda p: backend.status(p, extras=False)

    @property
    def stop_events(self) -> Any:
        """The PIOC* stop-event state of every target (profiles with mem ioctls)."""
        if self._stop_events is None:
            from .ptrace.stopevents import StopEvents
            self._stop_events = StopEvents()
        return self._stop_events

    def close(self) -> None:
        """Release every target held for stop events."""
        if self._stop_events is not None:
            self._stop_events.close()

    # ------------------------------------------------------------ resolution
    def resolve(self, name: str | int, reader: Reader) -> int:
        """A pid component: digits (leading zeros accepted), curproc or self
        (pfs_lookup's digit loop; cite: pfs.lookup)."""
        if isinstance(name, int):
            if name < 0:
                raise fail(ENOENT, name, None, "negative pid")
            return name
        if name == "curproc" or (name == "self" and self.profile.has_self_exe):
            return reader.pid
        if not name or len(name) >= PFS_NAMELEN or not name.isascii() or not name.isdigit():
            raise fail(ENOENT, name, None, "not a process directory")
        pid = int(name)
        if pid > PID_LIMIT:                  # pfind() of a pid no kernel hands out
            raise fail(ENOENT, name, None, "no such process")
        return pid

    def node(self, name: str, pid: object = None) -> Node:
        n = self._by_name.get(name)
        if n is None:
            why = ("not provided by profile " + self.profile.name
                   if name in NODES_BY_NAME else "no such node")
            raise fail(ENOENT, pid, name, why)
        return n

    def proc(self, pid: int, reader: Reader) -> Any:
        """The target if it exists and the reader may see it (pfs_visible: not P_WEXIT and
        p_cansee; cite: pfs.visible), else ENOENT."""
        p = self.backend.lookup(pid)
        if p_cansee(reader, p.ident, self.policy):
            raise fail(ENOENT, pid, None, "not visible to the reader")
        return p

    def visible(self, node: Node, p: Any, reader: Reader) -> bool:
        # procfs_notsystem / procfs_candebug (cite: nodes.vis.notsystem, nodes.vis.candebug)
        if node.vis is None:
            return True
        if p.ident.system:
            return False
        if node.vis == "candebug":
            return p_candebug(reader, p.ident, self.policy) == 0
        return True

    def lookup(self, pid: int, name: str, reader: Reader) -> tuple[Node, Any]:
        # the common cases inline (a known node, nothing pinned, no vis callback):
        # this runs once per read of a whole-system scan
        node = self._by_name.get(name) or self.node(name, pid)
        p = (name in PINNABLE and self.pinned(pid, name, reader)) or self.proc(pid, reader)
        if node.vis is not None and not self.visible(node, p, reader):
            raise fail(ENOENT, pid, name, "not visible to the reader")
        return node, p

    def pinned(self, pid: int, name: str, reader: Reader) -> Any:
        """The last snapshot of a target our tracer holds stopped, for the debug nodes and
        a privileged reader, else None.  A stopped tracee cannot exit, exec or change
        credentials without the tracer's waitpid seeing it, and no mode or credential
        rule stops root, so the single-step hot path skips re-reading /proc."""
        if name not in PINNABLE or not reader.privileged:
            return None
        p = self._pins.get(pid)
        if p is not None and not self.backend.debugger.pinned(pid):
            self._pins.pop(pid, None)
            return None
        return p

    def pin(self, pid: int, p: Any, reader: Reader) -> None:
        if reader.privileged and self.backend.debugger.pinned(pid):
            self._pins[pid] = p
        else:
            self._pins.pop(pid, None)

    def worker(self, name: str, pid: int, reader: Reader) -> _boundary.Worker | None:
        """The credential worker that must do a ptrace-guarded node's access for this
        reader (the kernel's rule is a floor), or None: done here."""
        b = self.boundary
        if b is None or (name not in _boundary.GUARDED and name not in _boundary.IMAGE):
            return None
        return b.worker_for(reader, pid, self.backend.debugger.traced_by_us(pid))

    def guarded_status(self, p: Any, reader: Reader, extras: bool) -> Any:
        """The status record for a caller who is not root, or None (root: ours as is).
        Its wait channel and UTS namespace come from ptrace-guarded files, which the
        caller's worker reads: Linux shows it 0 (nochan) and no namespace ('-') where it
        may not ptrace-read the target, as it would show the caller itself."""
        b = self.boundary
        if b is None or reader.uid == 0 or getattr(self.backend, "name", "") != "linux":
            return None
        w = b.worker_for(reader, p.ident.pid, False)
        if w is None:
            return None
        g = b.guarded_status(w, p.ident.pid, p.ident.start_ticks)
        return self.backend.status(p, extras=extras, guarded=g)

    def image_gate(self, name: str, p: Any, reader: Reader) -> None:
        """etype/osrel read the executable: only for a caller the kernel lets follow
        /proc/PID/exe (the worker tries; EACCES otherwise)."""
        if name in _boundary.IMAGE and not p.ident.system:
            w = self.worker(name, p.ident.pid, reader)
            if w is not None and self.boundary is not None:
                self.boundary.image(w, p.ident.pid, p.ident.start_ticks)

    # ------------------------------------------------------------ attributes
    def attr_root(self) -> Attr:
        return Attr(DIR, 0o555, 0, 0, ROOT_INO, time=time.time())

    def attr_rootnode(self, name: str) -> Attr:
        for n in self.root_nodes:
            if n.name == name:
                return Attr(LINK, n.mode, 0, 0, n.fileno, time=time.time())
        raise fail(ENOENT, None, name, "no such node")

    def attr_pid(self, pid: int, reader: Reader) -> Attr:
        c = self.proc(pid, reader).ident.creds
        return Attr(DIR, 0o555, c.ruid, c.rgid, _ino(PIDDIR.fileno, pid), time=time.time())

    def attr_node(self, pid: int, name: str, reader: Reader) -> Attr:
        node, p = self.lookup(pid, name, reader)
        return self._attr(node, p)

    def _attr(self, node: Node, p: Any) -> Attr:
        # P_SUGID zeroes the mode of attr-callback nodes (cite: nodes.sugid); the owner is
        # the target's real uid and gid (cite: pfs.getattr.owner)
        mode = 0 if (node.attr and p.ident.sugid) else node.mode
        c = p.ident.creds
        return Attr(node.kind, mode, c.ruid, c.rgid, _ino(node.fileno, p.ident.pid),
                    time=time.time())

    def getattr(self, parts: list[str], reader: Reader) -> Attr:
        """stat(2) of a path below the mount, as path components."""
        if not parts:
            return self.attr_root()
        if len(parts) == 1:
            if parts[0] in {n.name for n in self.root_nodes}:
                return self.attr_rootnode(parts[0])
            return self.attr_pid(self.resolve(parts[0], reader), reader)
        if len(parts) == 2:
            return self.attr_node(self.resolve(parts[0], reader), parts[1], reader)
        raise fail(ENOENT, parts[0], "/".join(parts[1:]), "no such node")

    # --------------------------------------------------------------- readdir
    def list_root(self, reader: Reader) -> list[str]:
        """pfs_readdir of the root: the sibling list, with the <pid> template expanded to
        the visible processes of allproc (newest first; cite: pfs.readdir.procs).
        procfs_init creates curproc, (self,) then the pid directory after pfs_fixup_dir's
        "." and "..": appended since 13 (cite: pfs.readdir.append), inserted at the head
        before (cite: pfs.readdir.prepend), so 10.x-12.x list the pids, curproc, "..",
        "."."""
        pids = []
        for pid in self.backend.pids():
            try:
                self.proc(pid, reader)
            except ProcfsError:
                continue
            pids.append(str(pid))
        names = [".", "..", *(n.name for n in self.root_nodes)]
        if self.profile.readdir_prepend:
            return pids + names[::-1]
        return names + pids

    def list_pid(self, pid: int, reader: Reader) -> list[str]:
        p = self.proc(pid, reader)
        names = [".", "..", *(n.name for n in self.pid_nodes if self.visible(n, p, reader))]
        return names[::-1] if self.profile.readdir_prepend else names

    # -------------------------------------------------------------- symlinks
    def readlink(self, parts: list[str], reader: Reader) -> str:
        if len(parts) == 1 and parts[0] in {n.name for n in self.root_nodes}:
            return str(reader.pid)                 # cite: curproc.link
        if len(parts) != 2:
            raise fail(EINVAL, parts[0] if parts else None, None, "not a symbolic link")
        pid = self.resolve(parts[0], reader)
        node, p = self.lookup(pid, parts[1], reader)
        if node.kind != LINK:
            raise fail(EINVAL, pid, node.name, "not a symbolic link")
        w = self.worker(node.name, pid, reader)
        if w is not None and self.boundary is not None:
            return self.boundary.readlink(w, pid, node.name, reader, p.ident.start_ticks)
        target = self.backend.binpath(p).path
        # pfs_readlink's PATH_MAX sbuf (cite: pfs.readlink)
        if len(target.encode("utf-8", "surrogateescape")) >= n_file.PATH_MAX:
            raise fail(ENAMETOOLONG, pid, node.name, "path longer than PATH_MAX")
        return str(target)

    # ------------------------------------------------------------------ open
    def open(self, pid: int, name: str, reader: Reader, read: bool = True,
             write: bool = False) -> Handle:
        """Lookup + vaccess (pfs_open itself never refuses; cite: pfs.open); the handle
        pins the process by its start time."""
        node, p = self.lookup(pid, name, reader)
        if node.kind == LINK:
            raise fail(EINVAL, pid, name, "a symbolic link cannot be opened as a file here")
        if not reader.privileged and not vaccess(self._attr(node, p), reader, read, write):
            raise fail(EACCES, pid, name, "permission denied by the node's mode")
        w = self.worker(name, pid, reader)
        if w is not None and self.boundary is not None and name not in _boundary.IMAGE:
            return self.boundary.open(w, pid, node, reader, read, write,  # type: ignore
                                      p.ident.start_ticks)
        return Handle(self, node, pid, p.ident.start_ticks, reader, p.ident)

    def read(self, pid: int, name: str, reader: Reader, size: int = -1,
             offset: int = 0) -> bytes:
        """open + read + close in one call: the open's lookup serves the read, so the
        target's /proc files are read once (the whole-system status scan halves)."""
        node, p = self.lookup(pid, name, reader)
        if node.kind == LINK:
            raise fail(EINVAL, pid, name, "a symbolic link cannot be opened as a file here")
        if not reader.privileged and not vaccess(self._attr(node, p), reader, True, False):
            raise fail(EACCES, pid, name, "permission denied by the node's mode")
        w = self.worker(name, pid, reader)
        if w is not None and self.boundary is not None and name not in _boundary.IMAGE:
            return self.boundary.read(w, pid, name, reader, size, offset, p.ident.start_ticks)
        self.image_gate(name, p, reader)
        if node.rd and not node.raw and name != "map" and offset >= 0:
            # a plain text node: Handle.read_from's own path, minus the Handle
            rec = self.guarded_status(p, reader, False) if name == "status" else None
            data = self._renders[name](rec if rec is not None else self._render_fills[name](p),
                                       self.profile)
            limit = self.profile.read_limit      # cite: pfs.read.maxbufsiz
            if size < 0 and offset == 0 and len(data) <= limit:
                return data                  # the whole node: no copies
            data = data[:limit]
            return data[offset:] if size < 0 else data[offset:offset + size]
        h = Handle(self, node, pid, p.ident.start_ticks, reader, p.ident)
        try:
            return h.read_from(p, size, offset)
        finally:
            h.close()

    # ------------------------------------------------------------------ fill
    def record(self, node: Node, p: Any, reader: Reader | None = None) -> Any:
        """The node's record (before rendering); the API's --json path."""
        if reader is not None and node.name in ("file", "exe") and self.worker(
                node.name, p.ident.pid, reader) is not None:
            return FileRecord(self.readlink([str(p.ident.pid), node.name], reader))
        if reader is not None:
            self.image_gate(node.name, p, reader)
            if node.name == "status":
                rec = self.guarded_status(p, reader, True)
                if rec is not None:
                    return rec
        return self._fills[node.name](p)

    def render(self, node: Node, p: Any, reader: Reader | None = None) -> bytes:
        if node.name == "status" and reader is not None:
            rec = self.guarded_status(p, reader, False)
            if rec is not None:
                return self._renders["status"](rec, self.profile)
        if node.name == "map" and self._map_bytes is not None:
            data = self._map_bytes(p)
            if data is not None:
                return data
        return self._renders[node.name](self._render_fills[node.name](p), self.profile)


class Handle:
    """An open file: every read regenerates the node (no stale snapshots)."""

    def __init__(self, tree: ProcTree, node: Node, pid: int, start_ticks: int,
                 reader: Reader, ident: Any = None) -> None:
        self.tree = tree
        self.node = node
        self.pid = pid
        self.start_ticks = start_ticks
        self.reader = reader
        #: the target's credentials when this file was opened: a debug node's fd must not
        #: outlive an exec that changed them (an fd kept across a set-id exec would
        #: otherwise debug the privileged image: the reader's own pid passes p_candebug)
        self.opened = (ident.creds, ident.sugid) if ident is not None else None
        self.debug_class = node.vis == "candebug" or node.name == "ctl"
        self._memfd: dict[bool, int] = {}
        #: ctl wait/step: a predicate polled while blocking (FUSE: fuse_interrupted)
        #: and an optional limit in seconds; either ends the wait with EINTR.
        self.interrupted: Callable[[], bool] | None = None
        self.timeout: float | None = None
        #: counted in the mem vnode's opens: its last close runs procfs_close
        self._ioctl_open = node.name == "mem" and tree.profile.has_ioctl
        if self._ioctl_open:
            tree.stop_events.opened(pid)

    def _target(self) -> Any:
        """The same process, still visible, or EIO (pseudofs on a vanished target;
        cite: pfs.read.eio)."""
        p = self.tree.pinned(self.pid, self.node.name, self.reader)
        if p is not None and p.ident.start_ticks == self.start_ticks:
            return p
        try:
            p = self.tree.backend.lookup(self.pid)
        except ProcfsError:
            raise fail(EIO, self.pid, self.node.name, "process has exited") from None
        if p.ident.start_ticks != self.start_ticks:
            raise fail(EIO, self.pid, self.node.name, "process has exited (pid reused)")
        if (self.debug_class and self.opened is not None
                and (p.ident.creds, p.ident.sugid) != self.opened):
            raise fail(EIO, self.pid, self.node.name,
                       "credentials changed since open (a set-id exec?)")
        if p_cansee(self.reader, p.ident, self.tree.policy) or not self.tree.visible(
                self.node, p, self.reader):
            raise fail(EIO, self.pid, self.node.name, "no longer visible")
        return p

    def _candebug(self, p: Any) -> None:
        err = p_candebug(self.reader, p.ident, self.tree.policy)
        if err:
            raise fail(err, self.pid, self.node.name, "reader may not debug the target")

    def _recheck(self) -> Callable[[], None] | None:
        """For the tracer thread: the same rules again, once the target is stopped (it
        cannot exec then), so a check here cannot be overtaken by a set-id exec.  Root
        passes every rule, so it needs none (and keeps the single-step path fast)."""
        if self.reader.privileged:
            return None
        return lambda: self._candebug(self._target())

    def _mem(self, write: bool) -> int | None:
        """/proc/PID/mem opened once per handle, THEN checked: the fd is bound to the
        address space it was opened on, so an exec after the check cannot redirect it."""
        fd = self._memfd.get(write)
        if fd is None:
            opener = getattr(self.tree.backend.debugger, "mem_open", None)
            if opener is None:
                return None
            fd = int(opener(self.pid, write))
            try:
                self._candebug(self._target())
            except BaseException:
                os.close(fd)
                raise
            self._memfd[write] = fd
        return fd

    def close(self) -> None:
        if self._ioctl_open:
            self._ioctl_open = False
            self.tree.stop_events.closed(self.pid)
        for fd in self._memfd.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._memfd.clear()

    def __del__(self) -> None:
        self.close()

    def ioctl(self, request: int, arg: int | bytes | None = 0) -> bytes:
        """pfs_ioctl + procfs_ioctl: ENOTTY for a node without the handler, EIO for a
        target no longer visible (cite: pfs.ioctl); the bytes a request hands back
        (struct procfs_status, the flags), empty for the others."""
        from .nodes import ioctl as n_ioctl
        if not (self.node.name == "mem" and self.tree.profile.has_ioctl):
            raise fail(ENOTTY, self.pid, self.node.name, "no ioctl handler on this node")
        self._target()
        n = n_ioctl.decode(request, self.pid)
        se = self.tree.stop_events
        if n == 1:
            se.set_stops(self.pid, add=n_ioctl.int_arg(arg))
        elif n == 2:
            se.set_stops(self.pid, clear=n_ioctl.int_arg(arg))
        elif n == 3:
            se.set_flags(self.pid, n_ioctl.int_arg(arg), self.reader.privileged)
        elif n == 4:
            return bytes(se.wait(self.pid, self.interrupted, self.timeout))
        elif n == 5:
            se.cont(self.pid, n_ioctl.int_arg(arg), n_ioctl.host_signal)
        elif n == 6:
            return bytes(se.status(self.pid))
        elif n == 7:
            return int(se.flags(self.pid)).to_bytes(4, "little")
        return b""

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        node = self.node
        if not node.rd:                                   # cite: pfs.read.ebadf
            raise fail(EBADF, self.pid, node.name, "node is not readable")
        if offset < 0:
            raise fail(EINVAL, self.pid, node.name, "negative offset")
        return self.read_from(self._target(), size, offset)

    def read_from(self, p: Any, size: int, offset: int) -> bytes:
        """Read with ``p``, a snapshot of the target taken by this very operation."""
        node = self.node
        if not node.rd:
            raise fail(EBADF, self.pid, node.name, "node is not readable")
        if offset < 0:
            raise fail(EINVAL, self.pid, node.name, "negative offset")
        if node.raw:
            return self._read_raw(p, size, offset)
        if node.name == "map":
            self._candebug(p)     # procfs_domap re-checks p_candebug (cite: map.candebug)
        self.tree.image_gate(node.name, p, self.reader)
        data = self.tree.render(node, p, self.reader)[: self.tree.profile.read_limit]
        end = len(data) if size < 0 else offset + size
        return data[offset:end]

    def _read_raw(self, p: Any, size: int, offset: int) -> bytes:
        name = self.node.name
        dbg = self.tree.backend.debugger
        if name == "mem":
            if size == 0:                                  # cite: mem.rw
                return b""
            self._candebug(p)
            return bytes(dbg.mem_read(self.pid, offset, size if size > 0 else 4096,
                                      fd=self._mem(False)))
        if offset != 0:                # cite: regs.rules, dbregs.rules
            return b""                 # regs/fpregs/dbregs: whole struct at offset 0 only
        self._candebug(p)
        from .nodes import module_for
        data = module_for(name).render(dbg.read_regset(self.pid, name, check=self._recheck()),
                                       self.tree.profile)
        self.tree.pin(self.pid, p, self.reader)
        return bytes(data if size < 0 else data[:size])

    def write(self, data: bytes, offset: int = 0) -> int:
        node = self.node
        if not node.wr:                                   # cite: pfs.write.ebadf
            raise fail(EBADF, self.pid, node.name, "node is not writable")
        if len(data) > PFS_MAXBUFSIZ and self.tree.profile.write_limit:  # cite: pfs.write.limit
            raise fail(EIO, self.pid, node.name, "write larger than 1 MiB")
        if offset < 0:
            raise fail(EINVAL, self.pid, node.name, "negative offset")
        p = self._target()
        name = node.name
        if node.raw:
            dbg = self.tree.backend.debugger
            if name == "mem":
                if not data:
                    return 0
                self._candebug(p)
                return int(dbg.mem_write(self.pid, offset, data, fd=self._mem(True)))
            if offset != 0:
                return 0
            self._candebug(p)
            return int(dbg.write_regset(self.pid, name, data, check=self._recheck()))
        if name in ("note", "notepg"):
            # cite: note.eopnotsupp
            raise fail(EOPNOTSUPP, self.pid, name, "not implemented (as in FreeBSD)")
        if name == "osrel":
            self.tree.backend.set_osrel(p, n_osrel.parse_write(data, self.pid))
            return len(data)
        if name == "ctl":
            cmd = n_ctl.parse(data, self.tree.profile)
            if cmd.is_signal:
                # procfs_doprocctl posts signals without p_candebug; Linux's kill rule
                # is the floor.  The check then only decides whether the signal may
                # also resume a stopped tracee (TRACE_WAIT_P) or is merely posted.
                err = linux_may_signal(self.reader, p.ident)
                if err:
                    raise fail(err, self.pid, name, "Linux would refuse this signal")
            elif cmd.word != "detach":
                self._candebug(p)
            self.tree.backend.debugger.ctl(self.pid, cmd, self.reader, profile=self.tree.profile,
                                           interrupted=self.interrupted, timeout=self.timeout,
                                           check=None if cmd.word == "detach"
                                           else self._recheck())
            self.tree.pin(self.pid, p, self.reader)
            return len(data)
        raise fail(EBADF, self.pid, name, "node is not writable")


def host_pid_of_tid(tid: int) -> int:
    """FUSE reports the caller's thread id; procfs names processes."""
    # os.open/os.read of the head only: this runs on every FUSE request that
    # needs the caller's pid (3x cheaper than open() + line iteration, measured).
    try:
        fd = os.open(f"/proc/{tid}/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, 512)
        finally:
            os.close(fd)
        i = head.find(b"\nTgid:")
        if i >= 0:
            return int(head[i + 6: head.index(b"\n", i + 1)])
    except (OSError, ValueError):
        pass
    return tid


__all__ = ["Attr", "Handle", "Node", "PID_NODES", "ProcTree", "ROOT_NODES", "host_pid_of_tid",
           "vaccess"]
