"""p_cansee and p_candebug (sys/kern/kern_prot.c) for a given reader.

The daemon may run as root while its callers do not, so every rule takes
the *reader's* credentials explicitly instead of trusting our own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import EPERM, ESRCH
from .records import ProcIdentity, fast_init


@fast_init
@dataclass(frozen=True)
class Reader:
    """The thread doing the filesystem operation (FreeBSD td_ucred + its pid)."""

    pid: int
    uid: int                   # effective uid (cr_uid)
    gid: int                   # effective gid
    groups: tuple[int, ...] = ()
    #: the calling thread when known (FUSE): its full Linux credentials (saved ids,
    #: capabilities) decide which of them the kernel lets it use (ptrace/boundary.py)
    tid: int = 0
    #: real uid and gid (cr_ruid, cr_rgid), which see_other_uids/gids compare;
    #: -1: the same as the effective ones
    ruid: int = -1
    rgid: int = -1

    @classmethod
    def current(cls) -> Reader:
        """This process; rebuilt when its pid (fork), euid or egid changed.  The groups
        are not in the key: changing them needs CAP_SETGID, which an unprivileged euid
        has not, and a privileged reader's groups are never consulted."""
        key = (os.getpid(), os.geteuid(), os.getegid())
        hit = _CURRENT.get(key)
        if hit is None:
            _CURRENT.clear()
            hit = _CURRENT[key] = cls(*key, tuple(os.getgroups()), os.getuid(), os.getgid())
        return hit

    @property
    def privileged(self) -> bool:
        return self.uid == 0

    def groupmember(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


_CURRENT: dict[tuple[int, int, int], Reader] = {}


@dataclass(frozen=True)
class Policy:
    """security.bsd.* knobs that p_cansee honours (FreeBSD defaults: all 1)."""

    see_other_uids: bool = True
    see_other_gids: bool = True
    #: FreeBSD 15's cr_canseeothergids (realgroupmember); set by the tree from the profile
    real_groups: bool = False


DEFAULT_POLICY = Policy()


def p_cansee(reader: Reader, target: ProcIdentity, policy: Policy = DEFAULT_POLICY) -> int:
    """0 if the reader may see the target, else ESRCH (cr_canseeotheruids/gids)."""
    if reader.privileged or reader.pid == target.pid:
        return 0
    c = target.creds
    # cr_canseeotheruids: the reader's REAL uid against the target's (cite: cansee.uids)
    ruid = reader.uid if reader.ruid < 0 else reader.ruid
    if not policy.see_other_uids and ruid != c.ruid:
        return ESRCH
    if not policy.see_other_gids:
        if policy.real_groups:
            # 15: the reader's rgid and supplementary groups against the target's real
            # group set, realgroupmember (cite: cansee.gids.15)
            rgid = reader.gid if reader.rgid < 0 else reader.rgid
            mine: tuple[int, ...] = (rgid, *reader.groups)
            theirs: tuple[int, ...] = (c.rgid, *c.groups)
        else:
            # <= 14: each of the reader's cr_groups (egid first) against the target's
            # cr_groups only, groupmember: never the target's rgid (cite: cansee.gids)
            mine = (reader.gid, *reader.groups)
            theirs = (c.egid, *c.groups)
        if not any(g in theirs for g in mine):
            return ESRCH
    return 0


def p_candebug(reader: Reader, target: ProcIdentity, policy: Policy = DEFAULT_POLICY) -> int:
    """0 if the reader may debug the target, else the FreeBSD errno (EPERM/ESRCH).

    Mirrors kern_prot.c: the target's uids must all equal the reader's euid and
    its gids be a subset of the reader's groups (cite: candebug.subset), and a
    P_SUGID target needs privilege (cite: candebug.sugid), as does any difference;
    root passes.
    """
    if reader.pid == target.pid:
        return 0
    err = p_cansee(reader, target, policy)
    if err:
        return err
    if reader.privileged:
        return 0
    c = target.creds
    grpsubset = (all(reader.groupmember(g) for g in (c.egid, *c.groups))
                 and reader.groupmember(c.rgid) and reader.groupmember(c.sgid))
    uidsubset = reader.uid == c.euid == c.suid == c.ruid
    if not (grpsubset and uidsubset):
        return EPERM
    if target.sugid:
        return EPERM
    return 0


def linux_may_signal(reader: Reader, target: ProcIdentity) -> int:
    """0 if Linux's kill(2) would let the reader signal the target, else EPERM: the
    kernel's floor under procfs_doprocctl's signal words, which FreeBSD delivers
    without p_candebug (kernel/signal.c kill_ok_by_cred: the sender's real or
    effective uid equals the target's real or saved uid, or CAP_KILL).  A reader has
    one uid (FUSE reports one), standing for both of its own: never more than the
    kernel allows."""
    if reader.privileged:
        return 0
    c = target.creds
    return 0 if reader.uid in (c.ruid, c.suid) else EPERM
