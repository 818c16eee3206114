"""Subjects whose credentials are the point: set-id by exec, changed without exec, and
ids shared with the observer only through a group.  Every id is known, so each check
has one right answer on any procfs (a native FreeBSD /proc included)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from .subjects import EXTRA_GID, Pool, Subject, _readline_json, wait_for

#: the uid of a target sharing only a group with the observer (FreeBSD and Linux: nobody)
NOBODY = 65534
CRED_SUBJECTS = ("setuid_exec", "changed_nonexec", "group_other_uid", "group_same_uid")


def _spawn(pool: Pool, name: str, spec: dict, uid: int | None, gid: int | None,
           groups: list[int] | None, exe: str | None = None) -> Subject:
    argv = [exe or pool.plain_exe, "-S", pool.helper, json.dumps({"maps": True, **spec})]
    kw: dict[str, Any] = {}
    if uid is not None:
        kw.update(user=uid, group=gid, extra_groups=groups or [])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                         cwd="/", **kw)
    s = Subject(name, p, None)
    pool.all.append(s)
    try:
        s.truth = _readline_json(p, 20)
    except Exception:
        s.kill()
        raise
    s.pid = s.truth["pid"]
    return s


def _setuid_interpreter(pool: Pool) -> str:
    """A set-uid-root copy of the subjects' interpreter."""
    exe = os.path.join(pool.dir, "bsdpfs-subject-suid")
    if not os.path.exists(exe):
        shutil.copy2(pool.plain_exe, exe)
        os.chown(exe, 0, 0)
        os.chmod(exe, 0o4755)
    return exe


def cred_subject(pool: Pool, name: str) -> Subject:
    """One subject by name, started once per pool (needs root and the observer's user)."""
    key = "cred_" + name
    if key in pool.cache:
        return pool.cache[key]
    assert pool.user, "credential subjects need root"
    uid, gid = pool.user
    if name == "setuid_exec":
        # the observer's uid execs a set-uid-root image: ruid U, euid = svuid 0 (P_SUGID
        # at exec)
        s = _spawn(pool, name, {}, uid, gid, [gid], _setuid_interpreter(pool))
    elif name == "changed_nonexec":
        # started as root, then setgroups/setresgid/setresuid to exactly the observer's
        # ids after its exec: every id is the observer's, but it changed credentials
        s = _spawn(pool, name, {"setcred": [uid, uid, gid]}, None, None, None)
    elif name == "group_other_uid":
        # another uid; its only gid is one the observer holds as a supplementary group
        s = _spawn(pool, name, {}, NOBODY, EXTRA_GID, [EXTRA_GID])
    elif name == "group_same_uid":
        # the observer's uid; its gid is only in the observer's supplementary groups
        s = _spawn(pool, name, {}, uid, EXTRA_GID, [EXTRA_GID])
    else:
        raise KeyError(name)
    from .subjects import host_state
    wait_for(lambda: host_state(s.pid) == "S", 5)
    pool.cache[key] = s
    return s
