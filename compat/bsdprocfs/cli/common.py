"""What every subcommand shares: the --profile/--backend options, errors, JSON.

Kept free of heavy imports: building the parser must not load the API.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

#: Per-process nodes (FreeBSD's procfs_init() order) and what each holds; a test keeps
#: the names equal to bsdprocfs.tree.PID_NODES.
PID_NODES: tuple[tuple[str, str], ...] = (
    ("cmdline", "the argument vector, NUL-separated"),
    ("ctl", "write-only: attach, detach, step, run, wait or a signal name"),
    ("dbregs", "debug registers (struct dbreg, binary)"),
    ("etype", "the ABI the executable runs under, e.g. 'FreeBSD ELF64'"),
    ("fpregs", "floating-point registers (struct fpreg, binary)"),
    ("map", "memory mappings, one line each"),
    ("mem", "the address space (read at offset = address)"),
    ("note", "write-only; not implemented in FreeBSD either (EOPNOTSUPP)"),
    ("notepg", "write-only; not implemented in FreeBSD either (EOPNOTSUPP)"),
    ("regs", "general registers (struct reg, binary)"),
    ("rlimit", "resource limits, soft and hard"),
    ("status", "one line: command, pids, tty, start and CPU times, wait channel, ids"),
    ("osrel", "the osreldate the process sees (read and write)"),
    ("file", "symlink to the executable"),
    ("exe", "symlink to the executable (freebsd-14 and later)"),
)
NODE_NAMES = tuple(n for n, _ in PID_NODES)

#: how a PID argument may be written, for help texts
PID_HELP = "a process id, or curproc (the process reading) or self"


def node_list(names: tuple[str, ...] | None = None) -> str:
    """'  name   meaning' lines for an epilog."""
    rows = [(n, m) for n, m in PID_NODES if names is None or n in names]
    width = max(len(n) for n, _ in rows)
    return "\n".join(f"  {n:<{width}}  {m}" for n, m in rows)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps the description's paragraphs to the terminal; keeps the epilog's example
    and list lines (indented) exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap
        out = []
        for para in text.split("\n\n"):
            if para.startswith(" ") or "\n " in para or para.rstrip().endswith(":"):
                out.append(para.rstrip("\n"))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out) + "\n"


#: the one subcommand whose options are built (None: all of them); see parser()
BUILD_ONLY: list[str | None] = [None]


class Unbuilt:
    """Takes the options of a subcommand that is not being run, and drops them.

    argparse builds a help formatter (terminal size, gettext look-ups) for every
    option it is given, which costs more than a short command's own work: when a
    command is named on the command line, only it is built (see build_parser).
    """

    def add_argument(self, *a: Any, **kw: Any) -> None:
        return None

    def add_mutually_exclusive_group(self, *a: Any, **kw: Any) -> Unbuilt:
        return self

    def set_defaults(self, **kw: Any) -> None:
        return None


def parser(sub: Any, name: str, summary: str, description: str, examples: str = "",
           **kw: Any) -> Any:
    """A subcommand: one-line summary for `bsdprocfs --help`, a description and
    examples for `bsdprocfs NAME --help` (laid out as written). Returns an
    :class:`Unbuilt` when another command is being run."""
    epilog = "examples:\n" + "\n".join("  " + ln for ln in examples.strip().splitlines()) \
        if examples else None
    extra = kw.pop("epilog_extra", "")
    if extra:
        epilog = extra + ("\n\n" + epilog if epilog else "")
    if BUILD_ONLY[0] is not None and BUILD_ONLY[0] != name:
        return Unbuilt()
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=HelpFormatter, **kw)


def add_profile(p: argparse.ArgumentParser, default: str | None = "compat") -> None:
    from ..profiles import PROFILES
    names = sorted(PROFILES)
    p.add_argument("--profile", default=default, choices=names, metavar="PROFILE",
                   help="the FreeBSD release whose formats and node set to use: "
                   f"{', '.join(names)} (default: {default or 'auto'}; "
                   "see 'bsdprocfs profiles')")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=("auto", "linux", "freebsd"),
                   metavar="BACKEND",
                   help="where the process facts come from: linux (/proc and ptrace), "
                   "freebsd (a native FreeBSD /proc) or auto (this system's; default)")
    p.add_argument("--root", default=None, metavar="PATH",
                   help="the /proc to read facts from (default: /proc)")


def procfs(args: argparse.Namespace) -> Any:
    from ..api import ProcFS
    return ProcFS(backend=args.backend, profile=args.profile, root=args.root)


def to_jsonable(obj: Any) -> Any:
    import dataclasses
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    return obj


def err(where: str, e: OSError) -> int:
    print(f"bsdprocfs: {where}: {os.strerror(e.errno) if e.errno else e}", file=sys.stderr)
    return 1


def terminal_width() -> int:
    """Columns to lay tables out in: $COLUMNS, the terminal's, else 80."""
    import shutil
    return max(40, shutil.get_terminal_size((80, 24)).columns)
