"""The ``bsdprocfs`` command: argument parsing only; every subcommand calls the API.

Each module of this package adds its subcommands with ``register(subparsers)``
and imports what its commands need only when they run, so that a short command
costs little more than the interpreter's own start-up.

Commands that only print (``sigpipe=True`` in their defaults) end silently on
a closed pipe, killed by SIGPIPE as a C tool is; the others (ctl, mount, exec,
bench, conformance) finish their clean-up first and then exit 0 quietly.
"""

from __future__ import annotations

import sys
from typing import Any

from .. import __version__

#: every subcommand and the module of this package that adds it, in the order
#: --help lists them (a test holds this equal to what the modules register).
COMMANDS = {
    "cat": "proc", "ls": "proc", "parse": "proc", "show": "proc", "profiles": "proc",
    "fidelity": "proc", "mount": "mount", "umount": "mount", "exec": "mount", "ps": "tools",
    "w": "tools", "bench": "bench", "conformance": "conformance", "ctl": "ctl",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))

DESCRIPTION = """\
FreeBSD's procfs(5) on this machine: read any process's FreeBSD /proc files
(status, map, rlimit, regs, ...) byte-exact, mount them with FUSE, run FreeBSD's
ps and w over them, and judge a procfs implementation with the conformance suite.
"""

EPILOG = """\
examples:
  bsdprocfs cat curproc status       this process's FreeBSD status line
  bsdprocfs show 1                   status, rlimit and map of pid 1
  bsdprocfs ps ax                    FreeBSD ps(1)
  bsdprocfs conformance --api        judge the API with the conformance suite

'bsdprocfs COMMAND --help' explains one command.
"""


def build_parser(command: str | None = None) -> Any:
    """The whole parser, or (``command`` given) one that knows only that command:
    enough to run it (argparse builds a help formatter for every option it is given,
    which costs more than a short command's own work)."""
    import argparse
    import importlib

    from .common import BUILD_ONLY, HelpFormatter
    BUILD_ONLY[0] = command if command in COMMANDS else None
    ap = argparse.ArgumentParser(prog="bsdprocfs", description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"bsdprocfs {__version__}",
                    help="print the version and exit")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    try:
        for name in (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    finally:
        BUILD_ONLY[0] = None
    return ap


def main(argv: list[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in _environ():
        return _complete()
    argv = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word; before it only -h/--help/--version may come
    first = next((a for a in argv if not a.startswith("-")), None)
    ap = build_parser(first if first == (argv[0] if argv else None) else None)
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    if getattr(args, "sigpipe", False):
        import signal
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        return 130


def _environ() -> Any:
    import os
    return os.environ


def _complete() -> int:
    """Shell completion (argcomplete; set up with
    eval "$(register-python-argcomplete bsdprocfs)"): costs nothing unless the shell
    asks, since only then is the whole parser built and argcomplete imported."""
    try:
        import argcomplete
    except ImportError:
        return 1
    argcomplete.autocomplete(build_parser())     # prints the candidates and exits
    return 1


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail loudly."""
    import os
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
