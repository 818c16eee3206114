"""FreeBSD ps(1) (bin/ps, 14.x layout) over the bsdprocfs API.

Every per-process fact comes from ``ProcFS``: the ``status`` and ``cmdline``
records and the documented :class:`~bsdprocfs.records.ProcExtras` extension
on the status record; zombies, which procfs hides, come from
``ProcFS.zombies()``.  Only system-wide facts (physical memory for %MEM, the
clock) are read directly.  The rules below (keyword table, STAT letters, TT
naming, TIME format, selection, sorting, dynamic column widths) follow
FreeBSD's ps.c, keyword.c, print.c and fmt.c.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..records import ProcExtras, StatusRecord

#: ps.c: default, -j, -l, -u formats and -O's surroundings.
DFMT = "pid,tt,state,time,command"
JFMT = "user,pid,ppid,pgid,sid,jobc,state,tt,time,command"
LFMT = "uid,pid,ppid,cpu,pri,nice,vsz,rss,mwchan,state,tt,time,command"
UFMT = "user,pid,%cpu,%mem,vsz,rss,tt,state,start,time,command"
O1, O2 = "pid", "tt,state,time,command"

UNLIMITED = 0
#: Non-interactive default width.  FreeBSD <= 13 used 79; later releases switched
#: to unlimited (ps.c comment "It has been changed to unlimited") -- the 14.x
#: boundary is UNVERIFIED, so the traditional 79 is kept here.
DEFAULT_WIDTH = 79
POSIX2_LINE_MAX = 2048          # fwidthmax of every field (ps.c)
COMMAND_WIDTH = ARGUMENTS_WIDTH = 16
MAXCOMLEN = 19
NO_PID = 100000                 # ki_tpgid when the tty has no foreground group

LJUST, USER, COMM = 1, 2, 4


@dataclass
class KInfo:
    """One process as ps sees it (FreeBSD's KINFO): status record + argv."""

    st: StatusRecord
    ex: ProcExtras
    args: tuple[bytes, ...]
    zombie: bool = False
    jobc: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tty(self) -> bool:
        """ki_tdev != NODEV: P_CONTROLT with a live tty."""
        return self.st.tty is not None

    @property
    def tdev(self) -> int:
        return self.ex.tty_dev if self.has_tty else -1

    @property
    def runtime_us(self) -> int:
        return self.st.utime.total_us + self.st.stime.total_us


# ------------------------------------------------------------------ collect
def collect(fs: Any, reader: Any = None) -> list[KInfo]:
    """Every process the reader may see: live ones through the status and cmdline
    nodes, zombies through the ProcFS.zombies() extension."""
    out: list[KInfo] = []
    for pid in fs.pids(reader):
        try:
            st = fs.record(pid, "status", reader)
        except OSError:
            continue                        # exited between readdir and read
        try:
            args = fs.record(pid, "cmdline", reader).args
        except OSError:
            args = ()
        out.append(KInfo(_comm19(st), st.extras or ProcExtras(), tuple(args)))
    for st in fs.zombies(reader):
        out.append(KInfo(_comm19(st), st.extras or ProcExtras(state="Z"), (), zombie=True))
    _fill_jobc(out)
    return out


def _comm19(st: StatusRecord) -> StatusRecord:
    """ki_comm holds COMMLEN (19) bytes; Linux kernel threads report longer names."""
    return st if len(st.comm) <= MAXCOMLEN else replace(st, comm=st.comm[:MAXCOMLEN])


def _fill_jobc(kis: list[KInfo]) -> None:
    """pgrp_calc_jobc(): members whose parent is in another group of the session."""
    by_pid = {k.st.pid: k for k in kis if not k.zombie}
    count: dict[int, int] = {}
    for k in by_pid.values():
        parent = by_pid.get(k.st.ppid)
        if parent and parent.st.pgid != k.st.pgid and parent.st.sid == k.st.sid:
            count[k.st.pgid] = count.get(k.st.pgid, 0) + 1
    for k in kis:
        k.jobc = count.get(k.st.pgid, 0)


# ------------------------------------------------------------------ strings
_CSTYLE = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\v": "\\v",
           "\0": "\\0", "\t": "\\t"}


def _vis(s: str, *, tab: bool, nl: bool, cstyle: bool, noslash: bool) -> str:
    """strvis(3) subset: encode what a terminal must not see raw.  Nearly every
    argument is printable text without a backslash, which encodes to itself: that
    case is one C-speed check (isprintable() is False for tab, newline, control
    characters and undecodable bytes)."""
    if s.isprintable() and (noslash or "\\" not in s):
        return s
    return _vis_each(s, tab=tab, nl=nl, cstyle=cstyle, noslash=noslash)


def _vis_each(s: str, *, tab: bool, nl: bool, cstyle: bool, noslash: bool) -> str:
    """_vis, one character at a time."""
    out = []
    for c in s:
        o = ord(c)
        if c == "\\" and not noslash:
            out.append("\\\\")
        elif (c == "\t" and not tab) or (c == "\n" and not nl):
            out.append(c)
        elif 0xDC80 <= o <= 0xDCFF:                     # undecodable byte
            out.append("\\%03o" % (o - 0xDC00))
        elif c == " " or c.isprintable():
            out.append(c)
        elif cstyle and c in _CSTYLE:
            out.append(_CSTYLE[c])
        elif o < 0x20 or o == 0x7F:
            out.append("\\^" + ("?" if o == 0x7F else chr(o + 0x40)))
        else:
            out.append("\\%03o" % (o & 0xFF))
    return "".join(out)


def _str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def shquote(args: Iterable[bytes]) -> str:
    """fmt.c shquote(): non-empty args, each strvisx(VIS_NL | VIS_CSTYLE), joined by ' '."""
    return " ".join(_vis(_str(a), tab=False, nl=True, cstyle=True, noslash=False)
                    for a in args if a)


def fmt_argv(args: tuple[bytes, ...], comm: bytes, maxlen: int = MAXCOMLEN) -> str:
    """fmt.c fmt_argv(): the argv, '(comm)' appended when argv[0] no longer names
    the command, '[comm]' when there is no argv (kernel processes)."""
    c = _str(comm[:maxlen])
    if not args:
        return f"[{c}]"
    a0 = args[0]
    base = a0[a0.rfind(b"/") + 1:]
    ap = shquote(args)
    if base[:maxlen] != comm[:maxlen]:
        return f"{ap} ({c})"
    return ap


def uid_name(uid: int) -> str:
    """user_from_uid(uid, 0): the name, else the number."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def gid_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def tt_name(k: KInfo) -> str:
    """print.c tname(): 'tty'/'cua' and 'pts/' stripped, then ' ' (KI_CTTY) or '-'."""
    name = k.st.tty
    if not k.has_tty or name is None:
        return "- "
    if name.startswith(("tty", "cua")):
        name = name[3:]
    if name.startswith("pts/"):
        name = name[4:]
    return name + (" " if k.st.ctty else "-")


def state_letters(k: KInfo) -> str:
    """print.c state(): run state, then W < N X E V L C s + J in FreeBSD's order.

    W (not P_INMEM), V (vfork wait) and C (capability mode) have no source on Linux
    and never appear; FreeBSD prints no multithreading letter (see nlwp)."""
    ex, st = k.ex, k.st
    s = "Z" if k.zombie and ex.state in ("Z", "X") else (ex.state or "?")[:1]
    if s not in "RSDTZIWL":
        s = "?"
    if ex.nice < 0 or ex.priority < 0:         # raised nice, or a realtime class
        s += "<"
    elif ex.nice > 0:
        s += "N"
    if ex.traced:
        s += "X"
    if (ex.exiting or k.zombie) and s[0] != "Z":
        s += "E"
    if ex.system or ex.locked_pages:
        s += "L"
    if st.sldr:
        s += "s"
    if k.has_tty and st.pgid == ex.tpgid:
        s += "+"
    if st.jail is not None:
        s += "J"
    return s


def printtime(us: int) -> str:
    """print.c printtime(): m:ss.hh, hundredths rounded."""
    secs, psecs = divmod(us, 1_000_000)
    psecs = (psecs + 5000) // 10000
    secs += psecs // 100
    psecs %= 100
    return f"{secs // 60}:{secs % 60:02d}.{psecs:02d}"


def started(start: float, now: float) -> str:
    """print.c started() with use_ampm (the C locale's T_FMT_AMPM is non-empty)."""
    tm = time.localtime(start)
    if now - start < 24 * 3600:
        return time.strftime("%l:%M%p", tm)
    if now - start < 7 * 86400:
        return time.strftime("%a%I%p", tm)
    return time.strftime("%e%b%y", tm)


def elapsed(secs: int) -> str:
    days, secs = divmod(secs, 86400)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    if days:
        return f"{days:3d}-{hours:02d}:{mins:02d}:{secs:02d}"
    if hours:
        return f"{hours:02d}:{mins:02d}:{secs:02d}"
    return f"{mins:02d}:{secs:02d}"


# ----------------------------------------------------------------- keywords
@dataclass(frozen=True)
class Var:
    name: str
    header: str
    flag: int
    fn: Callable[[KInfo, Ctx], str | None]


@dataclass
class Ctx:
    """What an output routine may need besides the process (print.c globals)."""

    now: float
    mempages: int
    cflag: bool = False
    last: bool = False


def _start(k: KInfo) -> float | None:
    return None if k.st.start is None else k.st.start.sec + k.st.start.usec / 1e6


def _pcpu(k: KInfo, c: Ctx) -> float:
    """Linux keeps no decaying p_pctcpu: CPU time over lifetime (as procps)."""
    s = _start(k)
    if s is None or k.zombie:
        return 0.0
    life = c.now - s
    return 100.0 * (k.runtime_us / 1e6) / life if life > 0 else 0.0


def _pmem(k: KInfo, c: Ctx) -> float:
    return 100.0 * k.ex.rss_pages / c.mempages if c.mempages else 0.0


def _pgtok(k: KInfo, pages: int) -> str:
    return str(pages * k.ex.page_size // 1024)


def _command(k: KInfo, c: Ctx) -> str:
    if c.cflag:
        return _str(k.st.comm)
    if k.zombie:
        args = "<defunct>"
    else:
        args = k.cache.get("args") or fmt_argv(k.args, k.st.comm)
        k.cache["args"] = args
    s = _vis(args, tab=True, nl=True, cstyle=False, noslash=True)
    return s if c.last else s[:COMMAND_WIDTH]


def _arguments(k: KInfo, c: Ctx) -> str:
    args = "<defunct>" if k.zombie else fmt_argv(k.args, k.st.comm)
    s = _vis(args, tab=True, nl=True, cstyle=False, noslash=True)
    return s if c.last else s[:ARGUMENTS_WIDTH]


def _wchan(k: KInfo, c: Ctx) -> str | None:
    return None if k.zombie or k.st.wmesg in ("nochan", "") else k.st.wmesg


def _lstart(k: KInfo, c: Ctx) -> str | None:
    s = _start(k)
    return None if s is None else time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(s))


def _etime(k: KInfo, c: Ctx) -> str | None:
    s = _start(k)
    return None if s is None else elapsed(max(0, int(c.now) - int(s)))


def _etimes(k: KInfo, c: Ctx) -> str | None:
    s = _start(k)
    return None if s is None else str(max(0, int(c.now) - int(s)))


def _tpgid(k: KInfo, c: Ctx) -> str:
    if not k.has_tty:
        return "0"
    return str(k.ex.tpgid if k.ex.tpgid > 0 else NO_PID)


def _started(k: KInfo, c: Ctx) -> str | None:
    s = _start(k)
    return None if s is None else started(s, c.now)


KEYWORDS: dict[str, Var] = {v.name: v for v in (
    Var("%cpu", "%CPU", 0, lambda k, c: f"{_pcpu(k, c):.1f}"),
    Var("%mem", "%MEM", 0, lambda k, c: f"{_pmem(k, c):.1f}"),
    Var("args", "COMMAND", LJUST | USER | COMM, _arguments),
    Var("comm", "COMMAND", LJUST, lambda k, c: _str(k.st.comm)),
    Var("command", "COMMAND", LJUST | USER | COMM, _command),
    Var("cpu", "C", 0, lambda k, c: str(k.ex.lastcpu)),
    Var("etime", "ELAPSED", USER, _etime),
    Var("etimes", "ELAPSED", USER, _etimes),
    Var("gid", "GID", 0, lambda k, c: str(k.st.groups[0] if k.st.groups else k.st.rgid)),
    Var("group", "GROUP", LJUST, lambda k, c: gid_name(
        k.st.groups[0] if k.st.groups else k.st.rgid)),
    Var("jail", "JAIL", LJUST, lambda k, c: k.st.jail or "-"),
    Var("jid", "JID", 0, lambda k, c: "0" if k.st.jail is None else "-1"),
    Var("jobc", "JOBC", 0, lambda k, c: str(k.jobc)),
    Var("lstart", "STARTED", LJUST | USER, _lstart),
    Var("mwchan", "MWCHAN", LJUST, _wchan),
    Var("nice", "NI", 0, lambda k, c: str(k.ex.nice)),
    Var("nlwp", "NLWP", 0, lambda k, c: str(k.ex.nthreads)),
    Var("pgid", "PGID", 0, lambda k, c: str(k.st.pgid)),
    Var("pid", "PID", 0, lambda k, c: str(k.st.pid)),
    Var("ppid", "PPID", 0, lambda k, c: str(k.st.ppid)),
    Var("pri", "PRI", 0, lambda k, c: str(k.ex.priority)),
    Var("rgid", "RGID", 0, lambda k, c: str(k.st.rgid)),
    Var("rgroup", "RGROUP", LJUST, lambda k, c: gid_name(k.st.rgid)),
    Var("rss", "RSS", 0, lambda k, c: _pgtok(k, k.ex.rss_pages)),
    Var("ruid", "RUID", 0, lambda k, c: str(k.st.ruid)),
    Var("ruser", "RUSER", LJUST, lambda k, c: uid_name(k.st.ruid)),
    Var("sid", "SID", 0, lambda k, c: str(k.st.sid)),
    Var("start", "STARTED", LJUST | USER, _started),
    Var("state", "STAT", LJUST, lambda k, c: state_letters(k)),
    Var("systime", "SYSTIME", USER, lambda k, c: printtime(k.st.stime.total_us)),
    Var("tdev", "TDEV", 0, lambda k, c: f"{k.tdev:#x}" if k.has_tty else "-"),
    Var("time", "TIME", USER, lambda k, c: printtime(k.runtime_us)),
    Var("tpgid", "TPGID", 0, _tpgid),
    Var("tracer", "TRACER", 0, lambda k, c: str(k.ex.tracer)),
    Var("tsid", "TSID", 0, lambda k, c: str(k.st.sid) if k.has_tty else "0"),
    Var("tt", "TT ", 0, lambda k, c: tt_name(k)),
    Var("tty", "TTY", LJUST, lambda k, c: k.st.tty if k.has_tty and k.st.tty else "-"),
    Var("ucomm", "UCOMM", LJUST, lambda k, c: _str(k.st.comm)),
    Var("uid", "UID", 0, lambda k, c: str(k.st.euid)),
    Var("user", "USER", LJUST, lambda k, c: uid_name(k.st.euid)),
    Var("usertime", "USERTIME", USER, lambda k, c: printtime(k.st.utime.total_us)),
    Var("vsz", "VSZ", 0, lambda k, c: str(k.ex.vsz // 1024)),
    Var("wchan", "WCHAN", LJUST, _wchan),
)}

#: keyword.c aliases (each resolves to one keyword).
ALIASES = {
    "cputime": "time", "egid": "gid", "egroup": "group", "euid": "uid", "ni": "nice",
    "pcpu": "%cpu", "pmem": "%mem", "stat": "state", "vsize": "vsz",
}


@dataclass
class Column:
    var: Var
    header: str
    user: bool                     # added by -o/-O (VE_KEEP), not by a canned format
    width: int = 0


def parsefmt(spec: str, cols: list[Column], user: bool, warn: list[str]) -> None:
    """keyword.c parsefmt(): separators ' \\t,\\n'; 'kw=header' takes the rest."""
    rest = spec
    while rest:
        cut = len(rest)
        for i, ch in enumerate(rest):
            if ch in "= \t,\n":
                cut = i
                break
        if cut < len(rest) and rest[cut] == "=":
            name, header, rest = rest[:cut], rest[cut + 1:], ""
        else:
            name, header, rest = rest[:cut], None, rest[cut + 1:]
        if not name:
            continue
        v = KEYWORDS.get(ALIASES.get(name, name))
        if v is None:
            warn.append(f"{name}: keyword not found")
            continue
        if not user and any(c.var.name == v.name for c in cols):
            continue
        cols.append(Column(v, v.header if header is None else header, user))


# ----------------------------------------------------------------- selection
@dataclass
class Selection:
    all: bool = False
    xkeep: int = -1                 # -1 neither -x nor -X
    xkeep_implied: bool = False
    nselectors: int = 0
    pids: list[int] = field(default_factory=list)
    ttys: list[int] = field(default_factory=list)
    uids: list[int] = field(default_factory=list)


def select(kis: list[KInfo], sel: Selection) -> list[KInfo]:
    """ps.c's keep loop: pids always; then -X/-x; then any matching selector."""
    xkeep = sel.xkeep if sel.xkeep >= 0 else int(sel.xkeep_implied)
    uids, nsel = sel.uids, sel.nselectors
    if nsel == 0:                       # no selector: the real user's processes
        uids, nsel = [os.getuid()], 1
    keep_all = nsel == 1 and sel.all    # -a alone: kvm returns every process
    out = []
    for k in kis:
        if k.st.pid in sel.pids:
            out.append(k)
        elif xkeep == 0 and not k.has_tty:
            continue
        elif keep_all or (k.has_tty and k.tdev in sel.ttys) or k.st.euid in uids:
            out.append(k)
    return out


def pscomp_key(k: KInfo) -> tuple[int, int, int]:
    """NODEV processes first, then by tty device, then by pid."""
    return (0 if not k.has_tty else 1, k.tdev if k.has_tty else 0, k.st.pid)


# ------------------------------------------------------------------ output
def format_rows(kis: list[KInfo], cols: list[Column], ctx: Ctx) -> list[list[str | None]]:
    rows = []
    for k in kis:
        row = []
        for i, col in enumerate(cols):
            ctx.last = i == len(cols) - 1
            s = col.var.fn(k, ctx)
            row.append(s)
            col.width = max(col.width, len(s) if s is not None else 1)
        rows.append(row)
    for col in cols:
        col.width = max(col.width, len(col.header))
    return rows


def header_line(cols: list[Column]) -> str | None:
    """print.c printheader(): nothing when every header is empty."""
    if not any(c.header for c in cols):
        return None
    parts = []
    for i, c in enumerate(cols):
        last = i == len(cols) - 1
        if c.var.flag & LJUST:
            parts.append(c.header if last else c.header.ljust(c.width))
        else:
            parts.append(c.header.rjust(c.width))
    return " ".join(parts)


def row_line(row: list[str | None], cols: list[Column], termwidth: int) -> str:
    """ps.c output loop: only the rightmost column is cut at the terminal width."""
    out, linelen = [], 0
    for i, (s, c) in enumerate(zip(row, cols, strict=True)):
        last = i == len(cols) - 1
        text = "-" if s is None else s
        fmax = POSIX2_LINE_MAX
        if last and termwidth != UNLIMITED and s is not None:
            left = termwidth - linelen
            if 0 < left < len(text):
                fmax = left
        fmin = 0 if (last and c.var.flag & LJUST) else c.width
        text = text[:fmax]
        out.append(text.ljust(fmin) if c.var.flag & LJUST else text.rjust(fmin))
        linelen += fmin
        if not last:
            out.append(" ")
            linelen += 1
    return "".join(out)


def render(kis: list[KInfo], cols: list[Column], ctx: Ctx, termwidth: int) -> list[str]:
    rows = format_rows(kis, cols, ctx)
    lines = []
    h = header_line(cols)
    if h is not None:
        lines.append(h)
    lines.extend(row_line(r, cols, termwidth) for r in rows)
    return lines


def json_rows(kis: list[KInfo], cols: list[Column], ctx: Ctx) -> list[dict[str, Any]]:
    rows = format_rows(kis, cols, ctx)
    return [{c.var.name: (None if s is None else s.strip()) for s, c in zip(r, cols, strict=True)}
            for r in rows]


def mempages() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 0
