"""The mem node's PIOC* ioctls (sys/pioctl.h, procfs_ioctl.c; 10.x-12.x): request
numbers, struct procfs_status and the request decoding.

The numbers are pioctl.h's definitions, ``_IOWINT('p', n)`` and ``_IOR('p', n, T)``
(cite: ioctl.numbers), encoded with FreeBSD's sys/ioccom.h.  A program built on Linux
from the same definitions gets Linux's <asm-generic/ioctl.h> encoding of them (its
_IOR is FreeBSD's IOC_OUT under another bit), which is the only one Linux's FUSE copies
data back for: :func:`decode` accepts both spellings of each request.
"""

from __future__ import annotations

import signal as _signal
import struct

from ..errors import ENOTTY, fail
from .ctl import SIGNALS

NODE = "mem"

# FreeBSD sys/ioccom.h
IOCPARM_MASK = 0x1FFF
IOC_VOID, IOC_OUT, IOC_IN = 0x20000000, 0x40000000, 0x80000000


def _ioc(inout: int, group: str, num: int, length: int) -> int:
    return inout | ((length & IOCPARM_MASK) << 16) | (ord(group) << 8) | num


#: struct procfs_status on LP64: int state, int flags, u_long events, int why, u_long val
#: (cite: ioctl.status): 4 + 4 + 8 + 4 (+4 padding) + 8 = 32 bytes.
PROCFS_STATUS = struct.Struct("=iiQi4xQ")
INT = 4

PIOCBIS = _ioc(IOC_VOID, "p", 1, INT)         # _IOWINT('p', 1): set event flags
PIOCBIC = _ioc(IOC_VOID, "p", 2, INT)         # _IOWINT('p', 2): clear event flags
PIOCSFL = _ioc(IOC_VOID, "p", 3, INT)         # _IOWINT('p', 3): set flags
PIOCWAIT = _ioc(IOC_OUT, "p", 4, PROCFS_STATUS.size)
PIOCCONT = _ioc(IOC_VOID, "p", 5, INT)        # _IOWINT('p', 5)
PIOCSTATUS = _ioc(IOC_OUT, "p", 6, PROCFS_STATUS.size)
PIOCGFL = _ioc(IOC_OUT, "p", 7, INT)          # _IOR('p', 7, unsigned int)

NAMES = {1: "PIOCBIS", 2: "PIOCBIC", 3: "PIOCSFL", 4: "PIOCWAIT", 5: "PIOCCONT",
         6: "PIOCSTATUS", 7: "PIOCGFL"}
#: requests that hand data back, and how many bytes
OUT_SIZE = {4: PROCFS_STATUS.size, 6: PROCFS_STATUS.size, 7: INT}

# stop events and flags (cite: ioctl.events, ioctl.flags)
S_EXEC, S_SIG, S_SCE, S_SCX, S_CORE, S_EXIT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
S_ALLSTOPS = 0x3F
PF_LINGER, PF_ISUGID, PF_FORK = 0x01, 0x02, 0x04

# Linux <asm-generic/ioctl.h>
_L_NONE, _L_WRITE, _L_READ = 0, 1, 2


def _linux(direction: int, num: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("p") << 8) | num


#: every accepted spelling -> pioctl.h request number
REQUESTS: dict[int, int] = {}
for _n, _out in ((1, 0), (2, 0), (3, 0), (5, 0), (4, OUT_SIZE[4]), (6, OUT_SIZE[6]),
                 (7, OUT_SIZE[7])):
    REQUESTS[_ioc(IOC_OUT, "p", _n, _out) if _out else _ioc(IOC_VOID, "p", _n, INT)] = _n
    REQUESTS[_linux(_L_READ, _n, _out) if _out else _linux(_L_NONE, _n, 0)] = _n
    if not _out:
        REQUESTS[_linux(_L_WRITE, _n, INT)] = _n        # _IOW('p', n, int) by pointer


def decode(request: int, pid: object = None) -> int:
    """The pioctl.h number (1..7) of a request; anything else ENOTTY (cite: ioctl.enotty)."""
    n = REQUESTS.get(request & 0xFFFFFFFF)
    if n is None:
        raise fail(ENOTTY, pid, NODE, f"ioctl 0x{request & 0xFFFFFFFF:08x} is not a PIOC request")
    return n


def pack_status(state: int, flags: int, events: int, why: int, val: int) -> bytes:
    return PROCFS_STATUS.pack(state, flags, events & 0xFFFFFFFFFFFFFFFF, why,
                              val & 0xFFFFFFFFFFFFFFFF)


def unpack_status(data: bytes) -> tuple[int, int, int, int, int]:
    state, flags, events, why, val = PROCFS_STATUS.unpack(data[:PROCFS_STATUS.size])
    return state, flags, events, why, val


def int_arg(arg: int | bytes | None) -> int:
    """An _IOWINT argument: by value, or the 4 bytes a pointer-passing caller sent."""
    if arg is None:
        return 0
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return int(struct.unpack("=I", bytes(arg[:4]).ljust(4, b"\0"))[0])
    return int(arg) & 0xFFFFFFFF


_BY_NUMBER = {v: k for k, v in SIGNALS.items()}


def host_signal(sig: int) -> int | None:
    """The host's number for a FreeBSD signal number (None: no such signal here)."""
    name = _BY_NUMBER.get(sig)
    if name is None:
        return None
    got = getattr(_signal, {"iot": "SIGABRT", "io": "SIGIO"}.get(name, "SIG" + name.upper()),
                  None)
    return int(got) if got is not None else None


def freebsd_signal(host_sig: int) -> int:
    """FreeBSD's number for a host signal (p_xsig of an S_SIG stop); 0 if it has none."""
    for name, num in SIGNALS.items():
        if host_signal(num) == host_sig and name != "iot":
            return num
    return 0
