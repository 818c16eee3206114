"""Release profiles: which nodes exist and which formats they use.

A profile only switches tables; it never selects a different code path.
Release boundaries the spec could not pin down are marked UNVERIFIED here
and in ``bsdprocfs profiles`` output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: rlimit_ident[] of sys/sys/resource.h, index = RLIMIT_* value.
RLIMIT_IDENTS: tuple[str, ...] = (
    "cpu", "fsize", "data", "stack", "core", "rss", "memlock", "nproc", "nofile",
    "sbsize", "vmem", "npts", "swap", "kqueues", "umtx", "pipebuf", "vmm",
)

#: map field 12: OBJT-based names (<= 13) and kvme-based names (14+).
MAP_TYPES_OBJ = ("default", "vnode", "swap", "device", "none")
MAP_TYPES_KVME = ("vnode", "swap", "phys", "dead", "device", "unknown", "none")


@dataclass(frozen=True)
class Profile:
    name: str
    #: FreeBSD release emulated, e.g. "14.3"; "compat" for the synthetic profile.
    release: str
    #: __FreeBSD_version range this profile stands for (for auto-detection).
    osreldate_min: int
    osreldate_max: int
    has_ctl: bool
    has_self_exe: bool
    nlimits: int
    kvme_map_types: bool
    notes: tuple[str, ...] = field(default=())
    #: ctl step/run/wait and signal-resume only for the process that wrote "attach"
    #: (FreeBSD's "child of the caller" rule); False lets any caller passing p_candebug
    #: drive the target (a FUSE mount runs every write in a new process).
    ctl_attacher_only: bool = False

    @property
    def rlimit_idents(self) -> tuple[str, ...]:
        return RLIMIT_IDENTS[: self.nlimits]

    @property
    def map_types(self) -> tuple[str, ...]:
        return MAP_TYPES_KVME if self.kvme_map_types else MAP_TYPES_OBJ

    def map_type_name(self, kvme_name: str) -> str:
        """Translate a kvme-style type name into this profile's vocabulary."""
        if self.kvme_map_types:
            return kvme_name
        # OBJT-era kernels: anonymous swap-backed memory without a pager was OBJT_DEFAULT;
        # phys/dead/unknown objects fell into the `default:` case.
        return {"swap": "default", "phys": "default", "dead": "default",
                "unknown": "default"}.get(kvme_name, kvme_name)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("freebsd-10", "10.4", 1000000, 1099999, has_ctl=True, has_self_exe=False,
                nlimits=14, kvme_map_types=False,
                ctl_attacher_only=True,
                notes=("14 rlimit lines (kqueues last): kqueues since ~10.x is UNVERIFIED",)),
        Profile("freebsd-13", "13.5", 1300000, 1399999, has_ctl=False, has_self_exe=False,
                nlimits=15, kvme_map_types=False,
                notes=("ctl removed between 10.4 and 12.2: exact commit UNVERIFIED",
                       "OBJT map type names until 13: release of the switch UNVERIFIED")),
        Profile("freebsd-14", "14.3", 1400000, 1499999, has_ctl=False, has_self_exe=True,
                nlimits=16, kvme_map_types=True,
                notes=("self/exe from PR #976 (Feb 2024, 14.1+); 14.0 lacks them",
                       "pipebuf (16 lines) from 14.2: per a ports patch, UNVERIFIED",
                       "kvme map type names from 14: release of the switch UNVERIFIED")),
        Profile("freebsd-15", "15.0", 1500000, 1599999, has_ctl=False, has_self_exe=True,
                nlimits=17, kvme_map_types=True,
                notes=("vmm ident read from a main-derived fork: UNVERIFIED upstream",
                       "egid kept first in the group list although 15.0 moved it out of "
                       "cr_groups: procfs_status.c change UNVERIFIED")),
        Profile("compat", "compat", 0, 0, has_ctl=True, has_self_exe=True,
                nlimits=17, kvme_map_types=True,
                notes=("newest formats plus the historical ctl file",)),
    )
}

DEFAULT_PROFILE = "compat"


def get_profile(profile: str | Profile | None) -> Profile:
    if isinstance(profile, Profile):
        return profile
    name = profile or DEFAULT_PROFILE
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def profile_for_osreldate(osreldate: int) -> Profile:
    """Pick the profile of a native FreeBSD kernel from kern.osreldate."""
    for p in PROFILES.values():
        if p.osreldate_min <= osreldate <= p.osreldate_max:
            return p
    if osreldate >= 1600000:
        return PROFILES["freebsd-15"]
    if osreldate < 1100000:
        return PROFILES["freebsd-10"]
    return PROFILES["freebsd-13"]
