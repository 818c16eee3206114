"""FreeBSD errnos and the two error types every layer raises.

FreeBSD and Linux share the numbers of the errnos procfs uses except EOPNOTSUPP
(FreeBSD 45, Linux 95).  The API raises the *host* errno constant so that
``os.strerror`` and ``OSError`` subclasses behave natively, and
``freebsd_errno()`` gives the FreeBSD number for reports.
"""

from __future__ import annotations

import errno as _errno

ENOENT = _errno.ENOENT
EIO = _errno.EIO
EBADF = _errno.EBADF
EINVAL = _errno.EINVAL
EPERM = _errno.EPERM
EACCES = _errno.EACCES
EBUSY = _errno.EBUSY
EFAULT = _errno.EFAULT
EINTR = _errno.EINTR
ENAMETOOLONG = _errno.ENAMETOOLONG
ESRCH = _errno.ESRCH
ENOTDIR = _errno.ENOTDIR
EISDIR = _errno.EISDIR
EOPNOTSUPP = _errno.EOPNOTSUPP
ENOTTY = _errno.ENOTTY

#: FreeBSD's own numbers, for reports that compare against a native /proc.
FREEBSD_ERRNO = {
    _errno.EPERM: 1, _errno.ENOENT: 2, _errno.ESRCH: 3, _errno.EINTR: 4, _errno.EIO: 5,
    _errno.EBADF: 9, _errno.EACCES: 13, _errno.EFAULT: 14, _errno.EBUSY: 16,
    _errno.ENOTDIR: 20, _errno.EISDIR: 21, _errno.EINVAL: 22, _errno.ENOTTY: 25,
    _errno.EOPNOTSUPP: 45, _errno.ENAMETOOLONG: 63,
}


def freebsd_errno(host_errno: int) -> int:
    return FREEBSD_ERRNO.get(host_errno, host_errno)


class ProcfsError(OSError):
    """An OSError carrying the FreeBSD errno, with pid and node in the message."""

    def __init__(self, err: int, pid: object = None, node: str | None = None,
                 detail: str | None = None) -> None:
        where = "/".join(str(p) for p in (pid, node) if p is not None) or "procfs"
        msg = _errno.errorcode.get(err, str(err))
        text = f"{where}: {detail}" if detail else where
        super().__init__(err, f"{__import__('os').strerror(err)} ({msg})", text)
        self.pid = pid
        self.node = node


def fail(err: int, pid: object = None, node: str | None = None,
         detail: str | None = None) -> ProcfsError:
    """Build the error; callers ``raise fail(...)`` so tracebacks point at the rule."""
    return ProcfsError(err, pid, node, detail)


class ParseError(ValueError):
    """Malformed FreeBSD-format input: names the node, the field and the byte offset."""

    def __init__(self, node: str, field: str, offset: int, reason: str) -> None:
        super().__init__(f"{node}: field {field!r} at byte {offset}: {reason}")
        self.node = node
        self.field = field
        self.offset = offset
        self.reason = reason
