"""``bsdprocfs ctl PID WORD...``: a ctl word sequence in one process, one tracer.

Linux ties a tracee to the tracing thread, so ``echo attach > ctl`` from one
shell command and ``echo step > ctl`` from the next cannot share a tracer
without a daemon (the FUSE mount is that daemon).  This command is the
daemon-less way: every word is written to the API's ctl node in order, and
``regs``, ``fpregs`` and ``dbregs`` in the sequence print the parsed struct as
one JSON line each.  On the first error it prints
``bsdprocfs: PID/ctl: WORD: <strerror>`` and exits 1; whatever it attached is
detached (and left running) before it exits, on success too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .common import add_backend, add_profile, parser

READ_WORDS = ("regs", "fpregs", "dbregs")


def register(sub: Any) -> None:
    p = parser(sub, "ctl", "drive a process with ctl words (attach, step, regs, ...)",
               "Write ctl words to a process, in order, from one tracer: attach, wait, "
               "step, run, detach or a signal name (hup ... usr2). The words regs, fpregs "
               "and dbregs print that register set as one JSON line. Anything attached is "
               "detached and left running when the command ends. On the first error it "
               "prints 'bsdprocfs: PID/ctl: WORD: <error>' and exits 1.\n\n"
               "One command holds one tracer: Linux ties a traced process to the thread "
               "that traces it, so separate 'echo step > ctl' commands need the FUSE "
               "mount's daemon; this command is the way without one.",
               """
bsdprocfs ctl 1234 attach wait regs detach
bsdprocfs ctl 1234 attach wait step step regs detach
bsdprocfs ctl --timeout 5 1234 attach wait
""")
    p.add_argument("pid", metavar="PID", help="a process id")
    p.add_argument("words", nargs="+", metavar="WORD",
                   help="ctl command, signal name, or regs/fpregs/dbregs to print")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up a blocking wait/step after this many seconds (EINTR)")
    add_profile(p)
    add_backend(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..api import ProcFS
    from ..nodes import module_for
    fs = ProcFS(backend=args.backend, profile=args.profile, root=args.root)
    pid = args.pid
    attached = False
    word = ""
    try:
        for word in args.words:
            if word in READ_WORDS:
                rec = module_for(word).parse(fs.read(pid, word), fs.profile)
                print(json.dumps(rec.to_json(), separators=(",", ":")), flush=True)
                continue
            h = fs.open(pid, "ctl", "w")
            h.timeout = args.timeout
            h.write(word.encode("utf-8", "surrogateescape"))
            if word == "attach":
                attached = True
            elif word == "detach":
                attached = False
        return 0
    except OSError as e:
        msg = os.strerror(e.errno) if e.errno else str(e)
        print(f"bsdprocfs: {pid}/ctl: {word}: {msg}", file=sys.stderr)
        return 1
    finally:
        if attached:
            try:
                fs.write(pid, "ctl", b"detach")
            except OSError:
                pass
