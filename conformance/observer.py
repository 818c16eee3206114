"""The unprivileged observer: runs procfs operations as another user.

Started by the suite (as root) under the test user's credentials with a JSON
config in argv[1] and a JSON list of operations on stdin; prints one JSON
object: its pid, uid and each operation's result or errno.  It imports the
``targets`` module copied next to it, so it needs no installed package for a
path target.
"""

from __future__ import annotations

import json
import os
import sys


def run(t: object, op: list) -> object:
    import targets
    name, rel, *args = op
    if name == "listdir":
        return t.listdir(rel)                            # type: ignore[attr-defined]
    if name == "lstat":
        s = t.lstat(rel)                                 # type: ignore[attr-defined]
        return [s.kind, s.mode, s.uid, s.gid]
    if name == "readlink":
        return t.readlink(rel)                           # type: ignore[attr-defined]
    if name == "open":
        t.open(rel, args[0]).close()                     # type: ignore[attr-defined]
        return "opened"
    if name == "read":
        return targets.read(t, rel, *args).hex()          # type: ignore[arg-type]
    if name == "write":
        return targets.write(t, rel, bytes.fromhex(args[0]), *args[1:])  # type: ignore[arg-type]
    raise ValueError(name)


def main() -> None:
    import targets
    cfg = json.loads(sys.argv[1])
    ops = json.loads(sys.stdin.read())
    t = targets.make_target(cfg["root"], cfg["api"], cfg["profile"], cfg.get("factory"))
    out = []
    for op in ops:
        try:
            out.append({"ok": run(t, op)})
        except OSError as e:
            out.append({"errno": e.errno})
    print(json.dumps({"pid": os.getpid(), "uid": os.geteuid(), "gid": os.getegid(),
                      "groups": os.getgroups(),
                      "results": out}))


if __name__ == "__main__":
    main()
