"""mem: /proc/PID/mem with FreeBSD's errnos (procfs_mem.c -> proc_rwmem).

No ptrace stop is needed: Linux checks the ptrace access mode when the file is
opened and binds the fd to the address space of that moment, so an exec after
the open cannot redirect it (tree.Handle opens once per handle, then checks).
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable
from typing import Any

from ..errors import EFAULT, EINVAL, EIO, EPERM, fail


def mem_open(pid: int, write: bool) -> int:
    """An fd on /proc/PID/mem, bound by Linux to the address space of the moment."""
    try:
        return os.open(f"/proc/{pid}/mem", (os.O_RDWR if write else os.O_RDONLY)
                       | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail(EIO, pid, "mem", "process has exited") from None
    except PermissionError:
        raise fail(EPERM, pid, "mem", "no right to debug the target") from None


def _mem_io(pid: int, offset: int, write: bool, io: Callable[[int], Any],
            fd: int | None = None) -> Any:
    """One pread/pwrite with FreeBSD's errnos (EINVAL, EFAULT); on ``fd`` when the
    caller holds one (see tree.Handle._mem), else on a fresh one."""
    own = fd is None
    if fd is None:
        fd = mem_open(pid, write)
    try:
        return io(fd)
    except OverflowError:
        raise fail(EINVAL, pid, "mem", "offset beyond off_t") from None
    except OSError as e:
        raise _mem_error(e, pid, offset) from None
    finally:
        if own:
            os.close(fd)


def mem_read(pid: int, offset: int, size: int, fd: int | None = None) -> bytes:
    data: bytes = _mem_io(pid, offset, False, lambda f: os.pread(f, size, offset), fd)
    if len(data) < size:
        # proc_rwmem reports EFAULT even when part of the range was transferred
        raise fail(EFAULT, pid, "mem", f"address {offset + len(data):#x} is not mapped")
    return data


def mem_write(pid: int, offset: int, data: bytes, fd: int | None = None) -> int:
    n = int(_mem_io(pid, offset, True, lambda f: os.pwrite(f, data, offset), fd))
    if n < len(data):
        raise fail(EFAULT, pid, "mem", f"address {offset + n:#x} is not mapped")
    return n


def _mem_error(e: OSError, pid: int, offset: int) -> OSError:
    if e.errno in (_errno.EIO, _errno.EFAULT):
        return fail(EFAULT, pid, "mem", f"address {offset:#x} is not mapped")
    if e.errno in (_errno.EPERM, _errno.EACCES):
        return fail(EPERM, pid, "mem", "no right to debug the target")
    if e.errno == _errno.ESRCH:
        return fail(EIO, pid, "mem", "process has exited")
    return fail(e.errno or EIO, pid, "mem", e.strerror)
