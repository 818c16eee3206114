"""The public API: ``ProcFS`` answers like a FreeBSD /proc would.

Every call takes an optional ``reader`` (the credentials of the process doing
the operation); by default it is this process, so ``curproc`` is ``os.getpid()``.
"""

from __future__ import annotations

from typing import Any

from .access import DEFAULT_POLICY, Policy, Reader, p_cansee
from .backends import get_backend
from .errors import EINVAL, fail
from .nodes import module_for
from .profiles import Profile, get_profile
from .tree import LINK, Attr, Handle, ProcTree

Pid = int | str


class ProcFS:
    """FreeBSD procfs over the host's process facts.

    backend: "auto" (the host's), "linux" or "freebsd"; root: the source /proc
    (a native FreeBSD procfs, or a Linux /proc for the linux backend).
    """

    def __init__(self, backend: str = "auto", profile: str | Profile = "compat",
                 root: str | None = None, policy: Policy = DEFAULT_POLICY,
                 fast_map: bool = False) -> None:
        self.backend = get_backend(backend, root)
        self.profile = get_profile(profile)
        self.tree = ProcTree(self.backend, self.profile, policy, fast_map=fast_map)
        self._ioctl_handles: dict[tuple[int, str, int], Handle] = {}

    @staticmethod
    def _reader(reader: Reader | None) -> Reader:
        return reader or Reader.current()

    def _pid(self, pid: Pid, reader: Reader) -> int:
        return self.tree.resolve(pid, reader)

    def open(self, pid: Pid, node: str, mode: str = "r", reader: Reader | None = None) -> Handle:
        """An open handle; mode "r", "w" or "rw" (vaccess decides, like open(2))."""
        r = self._reader(reader)
        if mode not in ("r", "w", "rw"):
            raise ValueError("mode must be 'r', 'w' or 'rw'")
        return self.tree.open(self._pid(pid, r), node, r, read="r" in mode, write="w" in mode)

    def read(self, pid: Pid, node: str, offset: int = 0, size: int = -1,
             reader: Reader | None = None) -> bytes:
        """The node's bytes; for the file/exe symlinks, the link text."""
        r = reader or Reader.current()
        tree = self.tree
        if tree.node(node, pid).kind == LINK:
            return self.readlink(pid, node, r).encode("utf-8", "surrogateescape")
        return tree.read(tree.resolve(pid, r), node, r, size, offset)

    def write(self, pid: Pid, node: str, data: bytes, offset: int = 0,
              reader: Reader | None = None) -> int:
        r = self._reader(reader)
        h = self.open(pid, node, "w", r)
        try:
            return h.write(bytes(data), offset)
        finally:
            h.close()

    def readlink(self, pid: Pid, node: str | None = None, reader: Reader | None = None) -> str:
        """readlink of curproc/self (pid given as that name, node None) or of file/exe."""
        r = self._reader(reader)
        if node is None:
            if pid in ("curproc", "self"):
                return self.tree.readlink([str(pid)], r)
            raise fail(EINVAL, pid, None, "a process directory is not a symbolic link")
        return self.tree.readlink([str(self._pid(pid, r)), node], r)

    def ioctl(self, pid: Pid, node: str, request: int, arg: int | bytes | None = 0,
              reader: Reader | None = None) -> bytes:
        """An ioctl(2) on the node (the mem PIOC* requests of 10.x-12.x; others ENOTTY).
        The node stays open for this reader until :meth:`release`: its last close
        clears the stop events (procfs_close), as closing the fd would."""
        r = self._reader(reader)
        p = self._pid(pid, r)
        key = (p, node, r.pid)
        h = self._ioctl_handles.get(key)
        if h is None:
            h = self.tree.open(p, node, r, read=True, write=True)
            self._ioctl_handles[key] = h
        return h.ioctl(request, arg)

    def release(self, pid: Pid, node: str = "mem", reader: Reader | None = None) -> None:
        """Close what :meth:`ioctl` opened (the last close resets p_stops)."""
        r = self._reader(reader)
        h = self._ioctl_handles.pop((self._pid(pid, r), node, r.pid), None)
        if h is not None:
            h.close()

    def close(self) -> None:
        """Close every ioctl handle and release every target held for stop events."""
        for h in list(self._ioctl_handles.values()):
            h.close()
        self._ioctl_handles.clear()
        self.tree.close()

    def listdir(self, pid: Pid | None = None, reader: Reader | None = None) -> list[str]:
        """Directory entries in pseudofs order, without '.' and '..'."""
        r = self._reader(reader)
        names = (self.tree.list_root(r) if pid is None
                 else self.tree.list_pid(self._pid(pid, r), r))
        return [n for n in names if n not in (".", "..")]

    def stat(self, pid: Pid | None = None, node: str | None = None,
             reader: Reader | None = None) -> Attr:
        r = self._reader(reader)
        if pid is None:
            return self.tree.getattr([], r)
        if node is None and pid in ("curproc", "self"):
            return self.tree.getattr([str(pid)], r)      # the symlink itself (lstat)
        parts = [str(self._pid(pid, r))] + ([node] if node else [])
        return self.tree.getattr(parts, r)

    def record(self, pid: Pid, node: str, reader: Reader | None = None) -> Any:
        """The parsed record of a node (status carries the ProcExtras extension)."""
        r = self._reader(reader)
        p_int = self._pid(pid, r)
        n, p = self.tree.lookup(p_int, node, r)
        if node in ("status", "cmdline", "rlimit", "etype", "osrel", "file", "exe"):
            return self.tree.record(n, p, r)
        return module_for(node).parse(self.read(p_int, node, reader=r), self.profile)

    def pids(self, reader: Reader | None = None) -> list[int]:
        return [int(n) for n in self.listdir(None, reader) if n.isdigit()]

    def zombies(self, reader: Reader | None = None) -> list[Any]:
        """Extension, not a procfs node: status records (with extras) of exiting and
        zombie processes the reader may see.  FreeBSD procfs hides P_WEXIT processes,
        but ps(1) lists them from kern.proc, so its port needs this one extra door."""
        r = self._reader(reader)
        backend = self.tree.backend
        out = []
        for pid in backend.pids():
            try:
                p = backend.lookup(pid, zombies=True)
                if not p.ident.zombie or p_cansee(r, p.ident, self.tree.policy):
                    continue
                out.append(backend.status(p))
            except OSError:
                continue
        return out
