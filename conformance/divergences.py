"""Declared divergences per implementation: never silent.

Each entry names checks (fnmatch patterns over ``<module>::<test name>``, the
module without ``test_``) and the reason.  A matching check runs as a strict
xfail: it is reported as "expected divergence" when it fails, and an
unexpected pass fails the run, so a fixed divergence is noticed.
Tolerances state how far a value may be from the truth for that impl.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Divergence:
    pattern: str
    reason: str
    profiles: tuple[str, ...] = ()        # only under these profiles (empty: all)


#: default tolerances (native FreeBSD: the kernel's own clocks).
TOLERANCES: dict[str, int] = {
    "start_us": 1_000,        # status start below the fork window (clock reads)
    "start_hi_us": 1_000,     # status start above the fork window (clock reads)
    "cpu_us": 1_000,          # status ut/st vs getrusage (the same calcru, rounding)
    "cputotal_us": 1_000,     # ut + st vs getrusage's sum
}

_LINUX_SHIM_TOL = {
    # CLK_TCK 100 on Linux: starttime is counted in 10 ms ticks, truncated, so start
    # may read up to one tick before the fork, never after it.
    "start_us": 10_000 + 1_000,
    # calcru splits the precise run time by the ratio of the user and system tick
    # counts, which /proc/PID/stat truncates: each part may move by one tick;
    # the sum is the run time itself.
    "cpu_us": 10_000 + 1_000,
}

_LINUX_SHIM: tuple[Divergence, ...] = (
    Divergence("ctl::test_ctl_signal_posted[[]emt[]]",
               "Linux has no SIGEMT: the shim refuses the word with EOPNOTSUPP instead of "
               "posting a signal the host cannot represent"),
)

#: The in-process API runs with its caller's rights: an unprivileged caller cannot
#: readlink (or open) Linux's /proc/PID/exe of another user's process, which
#: file, exe and etype (the ELF brand) are built from.  The FUSE daemon runs as root
#: but holds its callers to the same kernel rule (ptrace/boundary.py), so both agree.
_API_UNPRIVILEGED = tuple(
    Divergence(f"perms::test_observer_node[[]{who}-{node}[]]",
               "unprivileged API caller: Linux hides /proc/PID/exe of other users' "
               "processes (ptrace_may_access), so the node fails with EACCES")
    for who in ("other", "sugid", "dropped", "fgid", "grouped", "split")
    for node in ("etype", "file", "exe"))

#: The kernel's rule is a floor on Linux (issue 12): what the kernel refuses the observer
#: directly (ptrace_may_access: its fs gid must be the target's real, effective and saved
#: gid, where FreeBSD's p_candebug takes any of its groups; /proc/PID/exe of a process it
#: may not ptrace) both bsdprocfs doors refuse, where FreeBSD would answer.
_KERNEL_FLOOR = tuple(
    Divergence(f"credentials::test_credential_node[[]{who}-{node}[]]",
               "Linux refuses the observer /proc/PID/exe of this process "
               "(ptrace_may_access): etype, file and exe fail with EACCES")
    for who in ("setuid_exec", "changed_nonexec", "group_other_uid", "group_same_uid")
    for node in ("etype", "file", "exe")) + tuple(
    Divergence(f"credentials::test_credential_node[[]group_same_uid-{node}[]]",
               "Linux lets a caller ptrace only a target whose real, effective and saved "
               "gids are its own gid (a supplementary group is not enough): the "
               "ptrace-guarded read fails (map/mem EPERM, osrel EACCES, dbregs EPERM)")
    for node in ("map", "mem", "dbregs", "osrel"))

IMPLS: dict[str, tuple[tuple[Divergence, ...], dict[str, int]]] = {
    "native-freebsd": ((), {}),
    "bsdprocfs-api": (_LINUX_SHIM + _API_UNPRIVILEGED + _KERNEL_FLOOR, _LINUX_SHIM_TOL),
    "bsdprocfs-fuse": (_LINUX_SHIM + _API_UNPRIVILEGED + _KERNEL_FLOOR + (
        Divergence("tree::test_read_directory",
                   "Linux VFS answers read(2) on a directory with EISDIR before FUSE sees "
                   "it, as FreeBSD 13+ does; 10.x-12.x pseudofs said EINVAL",
                   profiles=("freebsd-10", "freebsd-11", "freebsd-12")),
    ), _LINUX_SHIM_TOL),
    "other": ((), {}),
}


def divergences(impl: str) -> tuple[Divergence, ...]:
    return IMPLS.get(impl, ((), {}))[0]


def tolerance(impl: str, name: str) -> int:
    return IMPLS.get(impl, ((), {}))[1].get(name, TOLERANCES[name])


def match(impl: str, check_id: str, profile: str | None = None) -> Divergence | None:
    for d in divergences(impl):
        if d.profiles and profile not in d.profiles:
            continue
        if fnmatch.fnmatchcase(check_id, d.pattern):
            return d
    return None
