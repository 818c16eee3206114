"""``bsdprocfs cat``, ``ls``, ``parse``, ``show``, ``profiles`` and ``fidelity``:
the nodes of one process, and the tables that describe the shim."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    NODE_NAMES,
    PID_HELP,
    add_backend,
    add_profile,
    err,
    node_list,
    parser,
    terminal_width,
    to_jsonable,
)
from .common import procfs as _procfs


def cmd_cat(args: argparse.Namespace) -> int:
    fs = _procfs(args)
    try:
        if args.json:
            import json
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
    from .. import parse
    from ..errors import ParseError
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
    import json
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
            data = fs.read(pid, node)
        except OSError as e:
            sys.stdout.flush()
            rc = err(f"{pid}/{node}", e)
            continue
        sys.stdout.write(data.decode("utf-8", "backslashreplace"))
        sys.stdout.flush()
    return rc


def want_table(fmt: str) -> bool:
    """--format auto: a table on a terminal, Markdown into a file or a pipe."""
    return fmt == "table" or (fmt == "auto" and sys.stdout.isatty())


def cmd_profiles(args: argparse.Namespace) -> int:
    from ..profiles import PROFILES
    from ..tree import PID_NODES, ROOT_NODES
    from . import table
    head = ("profile", "release", "rlimits", "ctl", "self, exe", "map types")
    rows = [(p.name, p.release, str(p.nlimits),
             ("yes, attacher only" if p.ctl_attacher_only else "yes") if p.has_ctl else "no",
             "yes" if p.has_self_exe else "no", " ".join(p.map_types))
            for p in PROFILES.values()]
    nodes = [(p.name, " ".join(n.name for n in ROOT_NODES + PID_NODES if n.present(p)))
             for p in PROFILES.values()]
    notes = [(p.name, note) for p in PROFILES.values() for note in p.notes]
    bounds = [(p.name, f"mem ioctls {'yes' if p.has_ioctl else 'no'}, readdir "
               f"{'head insertion' if p.readdir_prepend else 'creation order'}, read limit "
               f"{p.read_limit}, setattr {'EOPNOTSUPP' if p.setattr_errno else 'ignored'}"
               + (f"; cites: {' '.join(p.cites)}" if p.cites else ""))
              for p in PROFILES.values()]
    if want_table(args.format):
        width = terminal_width()
        out = [table.text(head, rows, width), "\nnodes:\n"]
        out += [table.paragraph(f"{name}: {ns}", width, "  ") for name, ns in nodes]
        out.append("\nboundaries (each cited in conformance/citations.toml):\n")
        out += [table.paragraph(f"{name}: {b}", width, "  ") for name, b in bounds]
        out.append("\nnotes (each 'missing:' is a boundary the source did not pin down):\n")
        out += [table.paragraph(f"{name}: {note}", width, "  ") for name, note in notes]
        sys.stdout.write("".join(out))
        return 0
    out = ["# Release profiles\n\n", table.markdown(head, rows), "\n## Nodes\n\n"]
    out += [f"- **{name}**: {ns}\n" for name, ns in nodes]
    out.append("\n## Boundaries\n\n")
    out += [f"- **{name}**: {b}\n" for name, b in bounds]
    out.append("\n## Notes\n\n")
    out += [f"- **{name}**: {note}\n" for name, note in notes]
    sys.stdout.write("".join(out))
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from ..fidelity import FIDELITY, markdown
    if not want_table(args.format):
        sys.stdout.write(markdown())
        return 0
    from . import table
    sys.stdout.write(table.text(("node", "field", "grade", "source and bound"),
                                FIDELITY, terminal_width(), floor=12))
    return 0


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("auto", "table", "md"), default="auto",
                   help="table: laid out for the terminal's width; md: Markdown; "
                   "auto (default): a table on a terminal, Markdown into a file or pipe")


def register(sub: Any) -> None:
    p = parser(sub, "cat", "print one node of a process, byte-exact",
               "Write a FreeBSD procfs node of a process to stdout, exactly the bytes "
               "FreeBSD's /proc/PID/NODE would give, or with --json the parsed record. "
               "Errors are FreeBSD's errnos.",
               """
bsdprocfs cat curproc status                this process's status line
bsdprocfs cat --profile freebsd-13 1 rlimit pid 1's limits, FreeBSD 13 style
bsdprocfs cat --json 1 status               the parsed record as JSON
bsdprocfs cat 1 regs | xxd                  binary nodes are raw structs
""", epilog_extra="nodes:\n" + node_list())
    add_profile(p)
    add_backend(p)
    p.add_argument("--json", action="store_true", help="print the parsed record as JSON")
    p.add_argument("pid", metavar="PID", help=PID_HELP)
    p.add_argument("node", metavar="NODE", choices=NODE_NAMES,
                   help="which file of the process directory (listed below)")
    p.set_defaults(func=cmd_cat, sigpipe=True)

    p = parser(sub, "ls", "list the procfs root or one process directory",
               "List the entries of the FreeBSD procfs root (curproc, self and one "
               "directory per visible process) or of one process directory, in "
               "FreeBSD's readdir order.",
               """
bsdprocfs ls              curproc, self, then the pids
bsdprocfs ls curproc      the nodes this profile has
""")
    add_profile(p)
    add_backend(p)
    p.add_argument("pid", nargs="?", metavar="PID", help=PID_HELP + " (default: the root)")
    p.set_defaults(func=cmd_ls, sigpipe=True)

    from ..nodes import FORMATS
    p = parser(sub, "parse", "check FreeBSD-format bytes and print them as JSON",
               "Parse the bytes of a FreeBSD procfs node strictly (as FreeBSD prints "
               "it, nothing else) and print the record as JSON. Malformed input exits "
               "2 and names the field and byte offset.",
               """
bsdprocfs parse status < saved-status
bsdprocfs parse --profile freebsd-15 rlimit saved-rlimit
""", epilog_extra="nodes with a format:\n" + node_list(tuple(FORMATS)))
    add_profile(p)
    p.add_argument("node", metavar="NODE", choices=sorted(FORMATS),
                   help="the node the bytes came from (listed below)")
    p.add_argument("file", nargs="?", help="input file (default: stdin)")
    p.set_defaults(func=cmd_parse, sigpipe=True)

    p = parser(sub, "show", "status, rlimit and map of a process",
               "Print the status, rlimit and map nodes of one process, each under a "
               "'==> /proc/PID/NODE <==' heading.",
               """
bsdprocfs show            this process
bsdprocfs show 1 | less
""")
    add_profile(p)
    add_backend(p)
    p.add_argument("pid", nargs="?", metavar="PID", help=PID_HELP + " (default: curproc)")
    p.set_defaults(func=cmd_show, sigpipe=True)

    p = parser(sub, "profiles", "list the FreeBSD release profiles",
               "List the release profiles: which FreeBSD release each stands for, its "
               "node set and formats, its cited boundaries, and what the source left open.",
               "bsdprocfs profiles\nbsdprocfs profiles --format md > profiles.md")
    add_format(p)
    p.set_defaults(func=cmd_profiles, sigpipe=True)

    p = parser(sub, "fidelity", "how faithfully Linux supplies each FreeBSD field",
               "Print the fidelity table: for every field the Linux backend fills, "
               "whether it is exact, approximated (with the bound) or constant, and "
               "where it comes from. docs/fidelity.md is this table in Markdown.",
               "bsdprocfs fidelity | less\nbsdprocfs fidelity > docs/fidelity.md")
    add_format(p)
    p.set_defaults(func=cmd_fidelity, sigpipe=True)
