"""FreeBSD w(1) (usr.bin/w: w.c, pr_time.c, proc_compare use) over the bsdprocfs API.

Logins come from a utmp file (Linux ``struct utmp``; ``--utmp`` names another
file), IDLE from the tty's atime, WHAT from the processes read through
``ProcFS``: the first process (API order = newest first, FreeBSD's allproc
order) on the login's terminal whose pgid is the terminal's foreground group.
FreeBSD's loop only calls proc_compare() while no candidate is chosen yet, so
the first match wins there too.  Uptime is CLOCK_BOOTTIME (FreeBSD:
CLOCK_UPTIME) and load averages are getloadavg(3): system facts, not
per-process ones, so they do not go through procfs.
"""

from __future__ import annotations

import os
import socket
import stat as _stat
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from .ps import KInfo, _vis, fmt_argv

#: glibc <utmp.h> on Linux (x86_64 and the other 64-bit ABIs with 32-bit ut_tv).
UTMP_FORMAT = "<hhi32s4s32s256shhiii4i20s"
UTMP_SIZE = struct.calcsize(UTMP_FORMAT)        # 384
USER_PROCESS = 7
DEFAULT_UTMP = "/var/run/utmp"

W_DISPUSERSIZE, W_DISPLINESIZE, W_MAXHOSTSIZE = 10, 8, 40
HEADER_LOGIN_IDLE = "LOGIN@  IDLE "


@dataclass
class Utmp:
    type: int
    pid: int
    line: str
    id: bytes
    user: str
    host: str
    tv_sec: int
    tv_usec: int = 0

    def pack(self) -> bytes:
        return struct.pack(UTMP_FORMAT, self.type, 0, self.pid, self.line.encode(), self.id,
                           self.user.encode(), self.host.encode(), 0, 0, 0,
                           self.tv_sec, self.tv_usec, 0, 0, 0, 0, b"")


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def read_utmp(path: str = DEFAULT_UTMP) -> list[Utmp]:
    """getutxent() over a Linux utmp file; a missing file means nobody is logged in.
    Elsewhere (FreeBSD's utx.active has another layout) the default source is
    psutil.users(), the portable getutxent()."""
    if path == DEFAULT_UTMP and not sys.platform.startswith("linux"):
        import psutil
        return [Utmp(USER_PROCESS, u.pid or 0, u.terminal or "", b"", u.name, u.host or "",
                     int(u.started)) for u in psutil.users()]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for off in range(0, len(data) - UTMP_SIZE + 1, UTMP_SIZE):
        r = struct.unpack_from(UTMP_FORMAT, data, off)
        out.append(Utmp(r[0], r[2], _cstr(r[3]), r[4], _cstr(r[5]), _cstr(r[6]),
                        r[10], r[11]))
    return out


def ttystat(line: str) -> os.stat_result | None:
    """w.c ttystat(): /dev/LINE when it is a character device, else None."""
    try:
        st = os.stat("/dev/" + line)
    except OSError:
        return None
    return st if _stat.S_ISCHR(st.st_mode) else None


# ------------------------------------------------------------------- header
def uptime_text(secs: int) -> str:
    """w.c pr_header(): over 60 s, rounded to the minute; FreeBSD's wording."""
    mins, s = divmod(secs, 60)
    hrs, mins = divmod(mins, 60)
    days, hrs = divmod(hrs, 24)
    if secs > 60:
        mins, s = divmod(secs + 30, 60)
        s = 0
        hrs, mins = divmod(mins, 60)
        days, hrs = divmod(hrs, 24)
    out = ""
    if days > 0:
        out += f" {days} day{'s' if days > 1 else ''},"
    if hrs > 0 and mins > 0:
        out += f" {hrs:2d}:{mins:02d},"
    elif hrs > 0:
        out += f" {hrs} hr{'s' if hrs > 1 else ''},"
    elif mins > 0:
        out += f" {mins} min{'s' if mins > 1 else ''},"
    else:
        out += f" {s} sec{'s' if s > 1 else ''},"
    return out


def header(now: float, uptime: int, nusers: int, loadavg: tuple[float, float, float]) -> str:
    tod = time.strftime("%l:%M%p", time.localtime(now))
    return (f"{tod}  up{uptime_text(uptime)} {nusers} user{'' if nusers == 1 else 's'}, "
            "load averages: " + ", ".join(f"{x:.2f}" for x in loadavg))


def column_header(fromwidth: int) -> str:
    return ("USER".ljust(W_DISPUSERSIZE) + " " + "TTY".ljust(W_DISPLINESIZE) + " "
            + "FROM".ljust(fromwidth)[:fromwidth] + "  " + HEADER_LOGIN_IDLE + "WHAT")


# ------------------------------------------------------------------- fields
def pr_attime(started: float, now: float) -> tuple[str, int]:
    """pr_time.c pr_attime() with use_ampm: (7-column text, excess width)."""
    tp, tm = time.localtime(started), time.localtime(now)
    if now - started > 86400 * 7:
        fmt = "%d%b%y"
    elif (tm.tm_mday, tm.tm_mon, tm.tm_year) != (tp.tm_mday, tp.tm_mon, tp.tm_year):
        fmt = "%a%I%p"
    else:
        fmt = "%l:%M%p"
    # "%-7.7s": with single-byte text the excess-width branch never triggers.
    return time.strftime(fmt, tp)[:7].ljust(7), 0


def pr_idle(idle: int) -> tuple[str, int]:
    """pr_time.c pr_idle(): (text, excess width used by a long idle time)."""
    if idle >= 36 * 3600:
        days = idle // 86400
        return f" {days}day{'s' if days > 1 else ' '} ", (
            2 if days >= 100 else 1 if days >= 10 else 0)
    if idle >= 3600:
        return f" {idle // 3600:2d}:{(idle % 3600) // 60:02d} ", 0
    if idle // 60 == 0:
        return "     - ", 0
    return f"    {idle // 60:2d} ", 0


def from_host(host: str, nflag: int) -> str:
    """w.c: ':display' suffix kept aside; addresses named unless -n; -nn the reverse."""
    p = host or "-"
    suffix = None
    i = p.rfind(":")
    if i >= 0:
        tail = p[i + 1:]
        dot = tail.find(".")
        if dot >= 0 and "." not in tail[dot + 1:]:
            p, suffix = p[:i], tail
    isaddr = False
    for fam in (socket.AF_INET6, socket.AF_INET):
        try:
            socket.inet_pton(fam, p)
            isaddr = True
            break
        except OSError:
            pass
    if nflag == 0 and isaddr:
        try:
            p = socket.gethostbyaddr(p)[0]
        except OSError:
            pass
    elif nflag > 1 and not isaddr and p != "-":
        try:
            infos = {str(ai[4][0]) for ai in socket.getaddrinfo(p, None, 0, socket.SOCK_STREAM)}
            if len(infos) == 1:
                p = infos.pop()
        except OSError:
            pass
    return f"{p}:{suffix}" if suffix else p


@dataclass
class Entry:
    ut: Utmp
    tdev: int
    idle: int
    frm: str
    kp: KInfo | None = None
    args: str = "-"


def entries(utmps: list[Utmp], now: float, users: list[str], nflag: int
            ) -> tuple[list[Entry], int]:
    """The selected USER_PROCESS records on a real tty, and the user count."""
    out, nusers = [], 0
    for u in utmps:
        if u.type != USER_PROCESS:
            continue
        st = ttystat(u.line)
        if st is None:
            continue                    # corrupted record
        nusers += 1
        if users and u.user not in users:
            continue
        touched = max(int(st.st_atime), u.tv_sec)   # untouched since before login
        out.append(Entry(u, st.st_rdev, max(0, int(now) - touched), from_host(u.host, nflag)))
    return out, nusers


def attach(ents: list[Entry], kis: list[KInfo]) -> None:
    """w.c: the first foreground process on each entry's terminal is its WHAT."""
    for k in kis:
        if k.zombie or not k.has_tty:
            continue
        for e in ents:
            if e.tdev == k.tdev and e.kp is None and k.st.pgid == k.ex.tpgid:
                e.kp = k
    for e in ents:
        if e.kp is not None:
            e.args = fmt_argv(e.kp.args, e.kp.st.comm)


def tty_field(line: str) -> str:
    if not line:
        return "-"
    return line[3:] if line.startswith(("tty", "cua")) else line


def render(ents: list[Entry], now: float, nusers: int, uptime: int,
           loadavg: tuple[float, float, float], show_header: bool, ttywidth: int,
           sortidle: bool = False) -> list[str]:
    fromwidth = max([len(e.frm) for e in ents] + [0])
    fromwidth = min(max(fromwidth, len("FROM") + 1) + 1, W_MAXHOSTSIZE)
    wused = W_DISPUSERSIZE + W_DISPLINESIZE + fromwidth + len(HEADER_LOGIN_IDLE) + 1 + 3
    argwidth = ttywidth - wused
    if argwidth < 4:
        argwidth = 8
    lines = []
    if show_header:
        lines.append(header(now, uptime, nusers, loadavg))
        lines.append(column_header(fromwidth))
    if sortidle:
        ents = sorted(ents, key=lambda e: e.idle)
    for e in ents:
        login, long_at = pr_attime(e.ut.tv_sec, now)
        idle, long_idle = pr_idle(e.idle)
        what = _vis(e.args, tab=True, nl=True, cstyle=False, noslash=True)
        lines.append(e.ut.user[:W_DISPUSERSIZE].ljust(W_DISPUSERSIZE) + " "
                     + tty_field(e.ut.line)[:W_DISPLINESIZE].ljust(W_DISPLINESIZE) + " "
                     + e.frm[:fromwidth].ljust(fromwidth) + " " + login + idle
                     + what[:max(0, argwidth - long_idle - long_at)])
    return lines


def json_rows(ents: list[Entry], now: float) -> list[dict[str, Any]]:
    return [{"user": e.ut.user, "tty": tty_field(e.ut.line), "from": e.frm,
             "login": pr_attime(e.ut.tv_sec, now)[0].strip(), "login_time": e.ut.tv_sec,
             "idle": pr_idle(e.idle)[0].strip(), "idle_seconds": e.idle,
             "what": e.args, "pid": e.kp.st.pid if e.kp else None} for e in ents]


def uptime_seconds() -> int:
    """Seconds since boot, counting suspend: CLOCK_BOOTTIME on Linux, CLOCK_UPTIME on
    FreeBSD (what w.c's kern.boottime arithmetic amounts to)."""
    clock = int(getattr(time, "CLOCK_BOOTTIME", getattr(time, "CLOCK_UPTIME",
                                                        time.CLOCK_MONOTONIC)))
    return int(time.clock_gettime(clock))
