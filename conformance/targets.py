"""One interface over any procfs implementation: a mounted path or the API.

Paths are relative to the procfs root ("", "curproc", "1234", "1234/status").
Every failure is an OSError carrying the errno the implementation gave.
"""

from __future__ import annotations

import errno
import importlib
import os
import stat as _stat
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class St:
    kind: str            # "dir", "file", "link"
    mode: int            # permission bits
    uid: int
    gid: int
    size: int
    nlink: int
    ino: int


class Handle(Protocol):
    def pread(self, size: int, offset: int) -> bytes: ...
    def pwrite(self, data: bytes, offset: int) -> int: ...
    def close(self) -> None: ...


class Target(Protocol):
    kind: str
    description: str

    def listdir(self, rel: str = "") -> list[str]: ...
    def lstat(self, rel: str) -> St: ...
    def stat(self, rel: str) -> St: ...
    def readlink(self, rel: str) -> str: ...
    def open(self, rel: str, mode: str = "r") -> Handle: ...


def read(t: Target, rel: str, size: int = -1, offset: int = 0) -> bytes:
    """open + one pread + close.  size -1 reads up to PFS_MAXBUFSIZ in a single call:
    pseudofs regenerates a node on every read, so a second read may see a longer
    snapshot and splice its tail on (the way to read procfs is one large read)."""
    h = t.open(rel, "r")
    try:
        return h.pread((1 << 20) if size < 0 else size, offset)
    finally:
        h.close()


def write(t: Target, rel: str, data: bytes, offset: int = 0) -> int:
    h = t.open(rel, "w")
    try:
        return h.pwrite(data, offset)
    finally:
        h.close()


def errno_of(fn: Any, *args: Any, **kw: Any) -> int:
    """0 if the call succeeds, else its errno (any other exception propagates)."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return int(e.errno or -1)
    return 0


# ------------------------------------------------------------------ path target
def _st(s: os.stat_result) -> St:
    kind = ("dir" if _stat.S_ISDIR(s.st_mode) else "link" if _stat.S_ISLNK(s.st_mode)
            else "file")
    return St(kind, _stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, s.st_size, s.st_nlink,
              s.st_ino)


class _FdHandle:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def fstat(self) -> St:
        return _st(os.fstat(self.fd))

    def ioctl(self, n: int, arg: int = 0) -> bytes:
        """pioctl.h request n, encoded as this host's <sys/ioctl.h> would."""
        import fcntl

        from .spec import PIOC, pioc_request
        from .subjects import FREEBSD
        req, out = pioc_request(n, FREEBSD), PIOC[n][1]
        if out:
            buf = bytearray(out)
            fcntl.ioctl(self.fd, req, buf)
            return bytes(buf)
        fcntl.ioctl(self.fd, req, arg)
        return b""

    def close(self) -> None:
        os.close(self.fd)


class PathTarget:
    """A mounted procfs: native FreeBSD /proc, a bsdprocfs FUSE mount, anything."""

    kind = "path"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.description = f"path {self.root}"

    def p(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def listdir(self, rel: str = "") -> list[str]:
        # os.listdir keeps readdir order (scandir), minus "." and ".."
        return [e.name for e in os.scandir(self.p(rel))]

    def lstat(self, rel: str) -> St:
        return _st(os.lstat(self.p(rel)))

    def stat(self, rel: str) -> St:
        return _st(os.stat(self.p(rel)))

    def readlink(self, rel: str) -> str:
        return os.readlink(self.p(rel))

    def open(self, rel: str, mode: str = "r") -> _FdHandle:
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[mode]
        return _FdHandle(os.open(self.p(rel), flags | getattr(os, "O_CLOEXEC", 0)))

    def read_directory(self, rel: str) -> bytes:
        fd = os.open(self.p(rel), os.O_RDONLY)
        try:
            return os.read(fd, 64)
        finally:
            os.close(fd)


# ------------------------------------------------------------------- API target
class _ApiHandle:
    def __init__(self, h: Any) -> None:
        self.h = h

    def pread(self, size: int, offset: int) -> bytes:
        return bytes(self.h.read(size, offset))

    def pwrite(self, data: bytes, offset: int) -> int:
        return int(self.h.write(bytes(data), offset))

    def ioctl(self, n: int, arg: int = 0) -> bytes:
        """pioctl.h request n with FreeBSD's encoding, through the API's Handle.ioctl."""
        from .spec import PIOC, pioc_request
        fn = getattr(self.h, "ioctl", None)
        if fn is None:
            raise OSError(errno.ENOTTY, "the implementation has no ioctl")
        return bytes(fn(pioc_request(n, True), arg))[:PIOC[n][1]]

    def close(self) -> None:
        close = getattr(self.h, "close", None)
        if close:
            close()


def default_factory(profile: str) -> Any:
    from bsdprocfs import ProcFS
    return ProcFS(profile=profile)


def load_factory(spec: str | None) -> Any:
    """``module:callable`` -> callable(profile) building a ProcFS-like object."""
    if not spec:
        return default_factory
    mod, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"--procfs-api-factory {spec!r}: expected module:callable")
    return getattr(importlib.import_module(mod), name)


class ApiTarget:
    """The in-process bsdprocfs API (ProcFS), or a factory's variant of it."""

    kind = "api"

    def __init__(self, profile: str, factory: str | None = None) -> None:
        self.fs = load_factory(factory)(profile)
        self.description = "bsdprocfs API" + (f" via {factory}" if factory else "")

    @staticmethod
    def _split(rel: str) -> list[str]:
        return [p for p in rel.split("/") if p]

    def _resolve(self, rel: str) -> list[str]:
        parts = self._split(rel)
        if len(parts) >= 2 and parts[0] in ("curproc", "self"):
            parts[0] = self.fs.readlink(parts[0])
        if len(parts) > 2:
            raise FileNotFoundError(2, "no such node", rel)
        return parts

    def listdir(self, rel: str = "") -> list[str]:
        parts = self._resolve(rel)
        if parts and parts[0] in ("curproc", "self"):
            parts[0] = self.fs.readlink(parts[0])
        if len(parts) > 1:
            self.fs.stat(*parts)
            raise NotADirectoryError(20, "not a directory", rel)
        return list(self.fs.listdir(parts[0] if parts else None))

    def _attr(self, parts: list[str]) -> St:
        a = self.fs.stat(*parts) if parts else self.fs.stat()
        return St(a.kind, a.mode, a.uid, a.gid, a.size, a.nlink, a.ino)

    def lstat(self, rel: str) -> St:
        return self._attr(self._resolve(rel))

    def stat(self, rel: str) -> St:
        parts = self._resolve(rel)
        if len(parts) == 1 and parts[0] in ("curproc", "self"):
            self.fs.stat(parts[0])
            parts = [self.fs.readlink(parts[0])]
        st = self._attr(parts)
        if st.kind == "link":           # file/exe: stat follows to the executable
            return _st(os.stat(self.readlink(rel)))
        return st

    def readlink(self, rel: str) -> str:
        parts = self._resolve(rel)
        if len(parts) == 1:
            return str(self.fs.readlink(parts[0]))
        if not parts:
            raise OSError(22, "not a symbolic link", rel)
        return str(self.fs.readlink(parts[0], parts[1]))

    def open(self, rel: str, mode: str = "r") -> _ApiHandle:
        parts = self._resolve(rel)
        if len(parts) != 2:
            if not parts or parts[0] not in ("curproc", "self"):
                self.lstat(rel)
            raise IsADirectoryError(21, "is a directory", rel)
        return _ApiHandle(self.fs.open(parts[0], parts[1], mode))


def make_target(root: str | None, api: bool, profile: str, factory: str | None = None) -> Any:
    if api:
        return ApiTarget(profile, factory)
    if not root:
        raise ValueError("no procfs target: give --procfs-root PATH or --procfs-api")
    return PathTarget(root)
