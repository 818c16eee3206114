"""``bsdprocfs ps`` and ``bsdprocfs w``: FreeBSD's tools ported onto the API.

Options are kept in command-line order (FreeBSD parses -j/-l/-u/-o/-O as they
come), so every flag goes through one recording action.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pwd
import stat as _stat
import struct
import sys
import termios
import time
from typing import Any

from .common import add_backend, add_profile, parser


class _Op(argparse.Action):
    """Append (flag, value) to ns.ops, keeping the order getopt would see."""

    def __call__(self, parser: Any, ns: Any, values: Any, option_string: Any = None) -> None:
        ops = list(getattr(ns, "ops", None) or [])
        ops.append((self.dest, values))
        ns.ops = ops


def _procfs(args: argparse.Namespace) -> Any:
    from ..api import ProcFS
    return ProcFS(backend=args.backend, profile=args.profile, root=args.root)


def _winsize() -> tuple[int, int] | None:
    """TIOCGWINSZ on stdout, stderr, then stdin (ps.c and w.c order)."""
    for fd in (1, 2, 0):
        try:
            rows, cols = struct.unpack("hh", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 4))
        except OSError:
            continue
        return rows, cols
    return None


def _warn(prog: str, msg: str) -> None:
    print(f"{prog}: {msg}", file=sys.stderr)


def _split_list(arg: str) -> list[str]:
    """ps.c add_list(): elements separated by blanks or one comma."""
    return [x for x in arg.replace(",", " ").split()] or [""]


def _tty_dev(elem: str) -> int | None:
    """ps.c addelem_tty(): /dev/X, X, or the TT abbreviation.  Linux reuses
    /dev/ttyN for virtual consoles, so /dev/pts/X is tried before /dev/ttyX."""
    if elem.startswith("/"):
        cands = [elem]
    elif elem == "co":
        cands = ["/dev/console"]
    elif elem.startswith(("tty", "pts/")) or elem == "console":
        cands = ["/dev/" + elem]
    else:
        cands = ["/dev/pts/" + elem, "/dev/tty" + elem, "/dev/" + elem]
    for path in cands:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if _stat.S_ISCHR(st.st_mode):
            return st.st_rdev
    _warn("ps", f"{', '.join(cands)}: No such file or directory or not a terminal")
    return None


def _uid(elem: str) -> int | None:
    try:
        return pwd.getpwnam(elem).pw_uid
    except KeyError:
        pass
    if elem.isdigit():
        try:
            return pwd.getpwuid(int(elem)).pw_uid
        except KeyError:
            _warn("ps", f"No user name or ID matches '{elem}'")
            return None
    _warn("ps", f"No user named '{elem}'")
    return None


# ----------------------------------------------------------------------- ps
def cmd_ps(args: argparse.Namespace) -> int:
    from ..tools import ps

    ops = list(args.ops or [])
    rest = list(args.rest or [])
    if rest and not rest[0][:1].isdigit():
        # ps.c kludge_oldps_options(): "ps aux" means "ps -aux".
        again = args.parser.parse_args(["-" + rest[0], *rest[1:]])
        ops += list(again.ops or [])
        rest = list(again.rest or [])
        args.json = args.json or again.json
    cols: list[ps.Column] = []
    warn: list[str] = []
    sel = ps.Selection()
    fatal = False
    sortcpu = cflag = False
    explicit_fmt = False
    win = _winsize()
    env_cols = os.environ.get("COLUMNS", "")
    if env_cols:
        try:
            termwidth = int(env_cols)
        except ValueError:
            termwidth = 0
    elif win is None or win[1] == 0:
        termwidth = ps.DEFAULT_WIDTH
    else:
        termwidth = win[1] - 1
    wflag = 0
    for flag, val in ops:
        if flag == "A":
            sel.nselectors += 1
            sel.all, sel.xkeep = True, 1
        elif flag == "a":
            sel.nselectors += 1
            sel.all = True
        elif flag == "c":
            cflag = True
        elif flag == "j":
            ps.parsefmt(ps.JFMT, cols, False, warn)
            explicit_fmt = True
        elif flag == "l":
            ps.parsefmt(ps.LFMT, cols, False, warn)
            explicit_fmt = True
        elif flag == "u":
            ps.parsefmt(ps.UFMT, cols, False, warn)
            sortcpu = explicit_fmt = True
        elif flag == "o":
            ps.parsefmt(val, cols, True, warn)
            explicit_fmt = True
        elif flag == "O":
            for spec in (ps.O1, val, ps.O2):
                ps.parsefmt(spec, cols, True, warn)
            explicit_fmt = True
        elif flag == "p":
            sel.nselectors += 1
            for e in _split_list(val):
                if not e.isdigit():
                    _warn("ps", f"Invalid process id: {e}")
                    fatal = True
                else:
                    sel.pids.append(int(e))
        elif flag == "t":
            sel.nselectors += 1
            sel.xkeep_implied = True
            for e in _split_list(val):
                dev = _tty_dev(e)
                fatal |= dev is None
                if dev is not None:
                    sel.ttys.append(dev)
        elif flag == "U":
            sel.nselectors += 1
            sel.xkeep_implied = True
            for e in _split_list(val):
                uid = _uid(e)
                fatal |= uid is None
                if uid is not None:
                    sel.uids.append(uid)
        elif flag == "w":
            if wflag:
                termwidth = ps.UNLIMITED
            elif termwidth < 131 and termwidth != ps.UNLIMITED:
                termwidth = 131
            wflag += 1
        elif flag == "x":
            sel.xkeep = 1
        elif flag == "X":
            sel.xkeep = 0
        elif flag == "L":
            names = sorted([*ps.KEYWORDS, *ps.ALIASES])
            print(" ".join(names))
            return 0
    for e in rest:
        if not e.isdigit():
            _warn("ps", f"illegal argument: {e}")
            return 1
        sel.pids.append(int(e))
    for w in warn:
        _warn("ps", w)
    if fatal:
        return 1
    if not explicit_fmt:
        ps.parsefmt(ps.DFMT, cols, False, warn)
    if not cols:
        _warn("ps", "no valid keywords; valid keywords:")
        print(" ".join(sorted(ps.KEYWORDS)), file=sys.stderr)
        return 1
    fs = _procfs(args)
    kis = ps.select(ps.collect(fs), sel)
    ctx = ps.Ctx(now=time.time(), mempages=ps.mempages(), cflag=cflag)
    if sortcpu:
        kis.sort(key=lambda k: (-ps._pcpu(k, ctx), *ps.pscomp_key(k)))
    else:
        kis.sort(key=ps.pscomp_key)
    if args.json:
        import json
        print(json.dumps(ps.json_rows(kis, cols, ctx), indent=2))
        return 1 if not kis else (1 if warn else 0)
    for line in ps.render(kis, cols, ctx, termwidth):
        sys.stdout.write(line + "\n")
    return 1 if (not kis or warn) else 0


# ------------------------------------------------------------------------ w
def cmd_w(args: argparse.Namespace) -> int:
    from ..tools import ps, w

    now = time.time()
    ents, nusers = w.entries(w.read_utmp(args.utmp or w.DEFAULT_UTMP), now, list(args.user), args.n)
    if ents:
        w.attach(ents, ps.collect(_procfs(args)))
    if args.json:
        import json
        print(json.dumps(w.json_rows(ents, now), indent=2))
        return 0
    win = _winsize()
    ttywidth = 79 if win is None or win[1] == 0 else win[1] - 1
    for line in w.render(ents, now, nusers, w.uptime_seconds(), os.getloadavg(),
                         not args.h, ttywidth, sortidle=args.i):
        sys.stdout.write(line + "\n")
    return 0


def register(sub: Any) -> None:
    p = parser(sub, "ps", "FreeBSD ps(1): process status",
               "FreeBSD's ps(1), reading every process fact through the procfs API. "
               "Flags as in FreeBSD; old-style 'ps aux' works.",
               """
bsdprocfs ps                      your processes with a terminal
bsdprocfs ps ax                   every process
bsdprocfs ps -ax -o pid,ppid,tt,stat,command
bsdprocfs ps -U root -u
""", add_help=False)
    p.add_argument("--help", action="help", help="show this help and exit")
    add_profile(p)
    add_backend(p)
    p.add_argument("--json", action="store_true", help="print a list of row objects")
    for flag, what in (("A", "all processes (= -ax)"), ("a", "other users' processes too"),
                       ("c", "command name only"), ("j", "job format"),
                       ("L", "list keywords"), ("l", "long format"), ("u", "user format"),
                       ("w", "131 columns; twice: unlimited"),
                       ("x", "also processes without a terminal"),
                       ("X", "only processes with a terminal")):
        p.add_argument("-" + flag, dest=flag, nargs=0, action=_Op, help=what)
    for flag, what in (("o", "keywords to display"), ("O", "keywords after pid"),
                       ("p", "pids"), ("t", "terminals"), ("U", "users")):
        p.add_argument("-" + flag, dest=flag, action=_Op, metavar=flag.upper() * 2, help=what)
    p.add_argument("rest", nargs="*", metavar="PID",
                   help="pids, or old-style flags such as 'aux'")
    p.set_defaults(func=cmd_ps, ops=None, parser=p, sigpipe=True)

    p = parser(sub, "w", "FreeBSD w(1): who is logged in and what they are doing",
               "FreeBSD's w(1): uptime, load averages, and for each login its terminal, "
               "origin, login time, idle time and current command.",
               """
bsdprocfs w
bsdprocfs w -h root
""", add_help=False)
    p.add_argument("--help", action="help", help="show this help and exit")
    add_profile(p)
    add_backend(p)
    p.add_argument("--json", action="store_true", help="print a list of row objects")
    p.add_argument("-h", action="store_true", help="no heading")
    p.add_argument("-i", action="store_true", help="sort by idle time")
    p.add_argument("-n", action="count", default=0, help="no address-to-name lookup")
    p.add_argument("--utmp", default=None,
                   help="utmp file to read (default: /var/run/utmp)")
    p.add_argument("user", nargs="*", help="show only these users' logins")
    p.set_defaults(func=cmd_w, sigpipe=True)

