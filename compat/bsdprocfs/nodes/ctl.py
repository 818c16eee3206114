"""ctl: the historical (FreeBSD <= 10) write-only command file, procfs_ctl.c.

The written sbuf, trailing isspace() trimmed, is compared byte-exactly
(case-sensitive, NUL-inclusive, no prefixes) against the command table and
then the signal-name table; anything else is EOPNOTSUPP.  This module is the
grammar only; what a word does lives in ptrace/ctl.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EOPNOTSUPP, ParseError, fail
from ..profiles import Profile

NODE = "ctl"

#: procfs_ctl.c ctlnames[], in table order; a write is trimmed and compared with
#: bcmp(buf, name, len + 1) (cite: ctl.findname).
COMMANDS = ("attach", "detach", "step", "run", "wait")

#: signame[] of procfs_ctl.c: name -> FreeBSD signal number (sys/signal.h; cite: ctl.names).
SIGNALS: dict[str, int] = {
    "hup": 1, "int": 2, "quit": 3, "ill": 4, "trap": 5, "abrt": 6, "iot": 6, "emt": 7,
    "fpe": 8, "kill": 9, "bus": 10, "segv": 11, "sys": 12, "pipe": 13, "alrm": 14,
    "term": 15, "urg": 16, "stop": 17, "tstp": 18, "cont": 19, "chld": 20, "ttin": 21,
    "ttou": 22, "io": 23, "xcpu": 24, "xfsz": 25, "vtalrm": 26, "prof": 27, "winch": 28,
    "info": 29, "usr1": 30, "usr2": 31,
}

_SPACE = b" \t\n\v\f\r"


@dataclass(frozen=True)
class CtlCommand:
    """A parsed ctl write: a command word, or a signal name with its FreeBSD number."""

    word: str
    signo: int | None = None          # FreeBSD signal number for signal words

    @property
    def is_signal(self) -> bool:
        return self.signo is not None


def render(cmd: CtlCommand, profile: Profile | None = None) -> bytes:
    """What one writes to send this command (the trailing newline is trimmed on input)."""
    return cmd.word.encode("ascii") + b"\n"


def lookup(data: bytes) -> CtlCommand | None:
    cmd = _EXACT.get(data)          # the common spellings, without re-parsing (hot path)
    if cmd is not None:
        return cmd
    word = data.rstrip(_SPACE)
    try:
        text = word.decode("ascii")
    except UnicodeDecodeError:
        return None
    if text in COMMANDS:
        return CtlCommand(text)
    if text in SIGNALS:
        return CtlCommand(text, SIGNALS[text])
    return None


_EXACT: dict[bytes, CtlCommand] = {
    w.encode() + nl: CtlCommand(w, SIGNALS.get(w))
    for w in (*COMMANDS, *SIGNALS) for nl in (b"", b"\n")
}


def parse(data: bytes, profile: Profile | None = None, pid: object = None) -> CtlCommand:
    """A write(2) to ctl: the command, or EOPNOTSUPP for an unknown word."""
    cmd = lookup(data)
    if cmd is None:
        raise fail(EOPNOTSUPP, pid, NODE, f"unknown ctl command {data[:64]!r}")
    return cmd


def parse_strict(data: bytes, profile: Profile | None = None) -> CtlCommand:
    """The format inverse of :func:`render`: exactly ``word\\n``."""
    cmd = lookup(data)
    if cmd is None or render(cmd) != data:
        raise ParseError(NODE, "word", 0, f"not a ctl command line: {data[:64]!r}")
    return cmd
