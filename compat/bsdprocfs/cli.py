"""``bsdprocfs`` command line: argument parsing only; every subcommand calls the API.

Subcommand groups live in their own modules, each exposing
``register(subparsers)``; this file only lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from typing import Any

from . import __version__
from .errors import ParseError
from .profiles import PROFILES

#: modules that add subcommands (each defines register(subparsers)).
COMMAND_MODULES = (
    "bsdprocfs.cli",
    "bsdprocfs.cli_mount",
    "bsdprocfs.cli_tools",
    "bsdprocfs.bench",
    "bsdprocfs.cli_conformance",
    "bsdprocfs.cli_debug",
)


def add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="compat", choices=sorted(PROFILES),
                   help="FreeBSD release profile (default: compat)")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=("auto", "linux", "freebsd"))
    p.add_argument("--root", default=None, help="source /proc to read (default: /proc)")


def to_jsonable(obj: Any) -> Any:
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


def _procfs(args: argparse.Namespace) -> Any:
    from .api import ProcFS
    return ProcFS(backend=args.backend, profile=args.profile, root=args.root)


def cmd_cat(args: argparse.Namespace) -> int:
    fs = _procfs(args)
    try:
        if args.json:
            rec = fs.record(args.pid, args.node)
            print(json.dumps(to_jsonable(rec), indent=2))
            return 0
        data = fs.read(args.pid, args.node)
    except OSError as e:
        return err(f"{args.pid}/{args.node}", e)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    fs = _procfs(args)
    try:
        names = fs.listdir(args.pid)
    except OSError as e:
        return err(str(args.pid) if args.pid else "/", e)
    for n in names:
        print(n)
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from . import parse
    if args.file in (None, "-"):
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            data = f.read()
    try:
        rec = parse(args.node, data, args.profile)
    except ParseError as e:
        print(f"bsdprocfs: parse: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"bsdprocfs: parse: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bsdprocfs: parse: {e.strerror or e}", file=sys.stderr)
        return 2
    print(json.dumps(to_jsonable(rec), indent=2))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The README's main job: status, rlimit and map of a live process."""
    fs = _procfs(args)
    pid = args.pid or "curproc"
    rc = 0
    for node in ("status", "rlimit", "map"):
        print(f"==> /proc/{pid}/{node} <==")
        try:
            sys.stdout.write(fs.read(pid, node).decode("utf-8", "backslashreplace"))
        except OSError as e:
            rc = err(f"{pid}/{node}", e)
        sys.stdout.flush()
    return rc


def cmd_profiles(args: argparse.Namespace) -> int:
    from .tree import PID_NODES, ROOT_NODES
    for p in PROFILES.values():
        nodes = [n.name for n in ROOT_NODES + PID_NODES if n.present(p)]
        print(f"{p.name}: release {p.release}, {p.nlimits} rlimits, "
              f"map types {'/'.join(p.map_types)}")
        print(f"  nodes: {' '.join(nodes)}")
        print(f"  ctl {'yes' if p.has_ctl else 'no'}, mem ioctls "
              f"{'yes' if p.has_ioctl else 'no'}, readdir "
              f"{'head insertion' if p.readdir_prepend else 'creation order'}, "
              f"read limit {p.read_limit}, setattr "
              f"{'EOPNOTSUPP' if p.setattr_errno else 'ignored'}")
        if p.cites:
            print(f"  cites: {' '.join(p.cites)}")
        for note in p.notes:
            print(f"  note: {note}")
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from .fidelity import markdown
    sys.stdout.write(markdown())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("cat", help="write a node's exact bytes to stdout")
    add_profile(p)
    add_backend(p)
    p.add_argument("--json", action="store_true", help="print the parsed record as JSON")
    p.add_argument("pid", help="a pid, curproc or self")
    p.add_argument("node")
    p.set_defaults(func=cmd_cat)

    p = sub.add_parser("ls", help="list the root or a process directory")
    add_profile(p)
    add_backend(p)
    p.add_argument("pid", nargs="?")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("parse", help="validate FreeBSD-format input and print it as JSON")
    add_profile(p)
    p.add_argument("node")
    p.add_argument("file", nargs="?", help="input file (default: stdin)")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("show", help="status, rlimit and map of a process (default: curproc)")
    add_profile(p)
    add_backend(p)
    p.add_argument("pid", nargs="?")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("profiles", help="list release profiles and their node sets")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("fidelity", help="print the Linux fidelity table (Markdown)")
    p.set_defaults(func=cmd_fidelity)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bsdprocfs", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"bsdprocfs {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
