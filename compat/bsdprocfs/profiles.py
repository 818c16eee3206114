"""Release profiles: which nodes exist and which formats they use.

A profile only switches tables; it never selects a different code path.
Every boundary names its citations (conformance/citations.toml, ``cites``);
what the stored sources could not pin down is kept as ``UNVERIFIED (missing: ...)``,
here and in ``bsdprocfs profiles`` output.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field

#: rlimit_ident[] of sys/sys/resource.h, index = RLIMIT_* value (cite: rlimit.idents.vmm).
RLIMIT_IDENTS: tuple[str, ...] = (
    "cpu", "fsize", "data", "stack", "core", "rss", "memlock", "nproc", "nofile",
    "sbsize", "vmem", "npts", "swap", "kqueues", "umtx", "pipebuf", "vmm",
)

#: map field 12: OBJT-based names (<= 13; cite: map.type.objt) and kvme-based names
#: (14+; cite: map.type.kvme).
MAP_TYPES_OBJ = ("default", "vnode", "swap", "device", "none")
MAP_TYPES_KVME = ("vnode", "swap", "phys", "dead", "device", "unknown", "none")


#: OBJ_* flags of the map's field 9.  kvme era (vm_object.h, 14+): OBJ_ANON 0x10 and
#: OBJ_SWAP 0x200 (cite: map.flags.kvme); OBJT era (<= 13) the same bits meant
#: OBJ_NOSPLIT and OBJ_TMPFS_NODE, and an anonymous default object carried
#: OBJ_ONEMAPPING 0x2000 from _vm_object_allocate (cite: map.flags.objt,
#: map.flags.objt.alloc).
OBJ_ANON, OBJ_SWAP = 0x10, 0x200
OBJ_ONEMAPPING_OBJT = 0x2000

MAXPHYS = 128 * 1024           # pfs_read's sbuf cap before PFS_MAXBUFSIZ (cite: pfs.read.maxphys)
PFS_MAXBUFSIZ = 1 << 20        # cite: pfs.read.maxbufsiz


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
    #: mem answers the PIOC* ioctls of sys/pioctl.h (procfs_ioctl.c; cite: ioctl.node).
    has_ioctl: bool = False
    #: pfs_add_node inserted at the head of the sibling list (<= 12): readdir shows
    #: nodes in reverse creation order with ".." and "." last (cite: pfs.readdir.prepend).
    readdir_prepend: bool = False
    #: the most bytes a non-raw read returns: buflen capped at MAXPHYS with an sbuf of
    #: buflen + 1 (<= 12), or an sbuf of at most PFS_MAXBUFSIZ holding one byte less.
    read_limit: int = PFS_MAXBUFSIZ - 1
    #: pfs_write refuses resid > PFS_MAXBUFSIZ with EIO (absent <= 12: cite pfs.write.limit).
    write_limit: bool = True
    #: pfs_setattr: EOPNOTSUPP (<= 12) or silently 0 (cite: pfs.setattr).
    setattr_errno: int = 0
    #: read(2) of a directory: pseudofs's EINVAL (<= 12) or the VFS's EISDIR (13+).
    read_dir_errno: int = _errno.EISDIR
    #: cr_canseeothergids: 15 matches the reader's rgid+supplementary groups against
    #: the target's real group set (cite: cansee.gids.15); <= 14 the reader's cr_groups
    #: against the target's cr_groups (cite: cansee.gids).
    cansee_real_groups: bool = False
    #: citation ids (conformance/citations.toml) of this profile's boundaries.
    cites: tuple[str, ...] = field(default=())

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
        # phys/dead/unknown objects fell into the `default:` case (cite: map.type.objt).
        return {"swap": "default", "phys": "default", "dead": "default",
                "unknown": "default"}.get(kvme_name, kvme_name)

    def map_flags(self, kvme_name: str, flags: int) -> int:
        """Translate kvme-era OBJ_* flags into this profile's: an anonymous object
        (OBJ_ANON|OBJ_SWAP) was an OBJT_DEFAULT object with OBJ_ONEMAPPING before 14."""
        if (self.kvme_map_types or kvme_name != "swap"
                or flags & (OBJ_ANON | OBJ_SWAP) != OBJ_ANON | OBJ_SWAP):
            return flags
        return OBJ_ONEMAPPING_OBJT


_OLD_PFS = dict(readdir_prepend=True, read_limit=MAXPHYS, write_limit=False,
                setattr_errno=_errno.EOPNOTSUPP, read_dir_errno=_errno.EINVAL)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("freebsd-10", "10.4", 1000000, 1099999, has_ctl=True, has_self_exe=False,
                nlimits=13, kvme_map_types=False, ctl_attacher_only=True, has_ioctl=True,
                **_OLD_PFS,  # type: ignore[arg-type]
                cites=("profile.10.release", "rlimit.idents.10", "nodes.ctl.10", "ioctl.node",
                       "pfs.readdir.prepend", "pfs.read.maxphys", "pfs.setattr.old",
                       "map.type.objt")),
        Profile("freebsd-11", "11.3", 1100000, 1199999, has_ctl=True, has_self_exe=False,
                nlimits=15, kvme_map_types=False, ctl_attacher_only=True, has_ioctl=True,
                **_OLD_PFS,  # type: ignore[arg-type]
                notes=("node table from 10.4's procfs.c with 11.3's procfs_ctl.c and "
                       "procfs_ioctl.c; UNVERIFIED (missing: 11.x procfs.c is not in the store)",
                       "pseudofs head insertion, MAXPHYS reads and EOPNOTSUPP setattr: "
                       "identical in 10.4 and 12.0, so 11.x between them"),
                cites=("profile.11.release", "rlimit.idents.11", "ctl.release.11",
                       "ioctl.release.11", "pfs.readdir.prepend.12")),
        Profile("freebsd-12", "12.0", 1200000, 1299999, has_ctl=False, has_self_exe=False,
                nlimits=15, kvme_map_types=False, has_ioctl=True,
                **_OLD_PFS,  # type: ignore[arg-type]
                cites=("profile.12.release", "nodes.12", "ioctl.node", "rlimit.idents.12",
                       "pfs.readdir.prepend.12", "pfs.read.maxphys.12", "pfs.setattr.old.12")),
        Profile("freebsd-13", "13.5", 1300000, 1399999, has_ctl=False, has_self_exe=False,
                nlimits=15, kvme_map_types=False,
                notes=("mem lost its PIOC ioctls in 13-CURRENT (2020, before the vn_fullpath "
                       "change): UNVERIFIED (missing: a 13.x-tagged procfs.c)",
                       "pseudofs append order, 1 MiB reads and ignored setattr from the "
                       "13/14-era tree: UNVERIFIED (missing: a 13.x-tagged pseudofs)",
                       "read(2) of a directory EISDIR: UNVERIFIED (missing: vfs_vnops.c of "
                       "13+, citation vfs.read_dir)"),
                cites=("nodes.13", "rlimit.idents.12", "pfs.readdir.append", "map.type.objt.14cur",
                       "vfs.read_dir")),
        Profile("freebsd-14", "14.3", 1400000, 1499999, has_ctl=False, has_self_exe=True,
                nlimits=16, kvme_map_types=True,
                notes=("self/exe from PR #976 (Feb 2024, 14.1+); 14.0 lacks them",
                       "pipebuf (16 lines): read from a 14.2-era main fork; the 14.2 boundary: "
                       "UNVERIFIED (missing: a 14.2-tagged resource.h)",
                       "kvme map type names: in main by 2023, after the 14-CURRENT tree with "
                       "OBJT_SWAP_TMPFS: UNVERIFIED (missing: the switch commit)"),
                cites=("nodes.self_exe", "rlimit.idents.pipebuf", "map.type.kvme",
                       "map.flags.kvme", "pfs.readdir.append")),
        Profile("freebsd-15", "15.0", 1500000, 1599999, has_ctl=False, has_self_exe=True,
                nlimits=17, kvme_map_types=True, cansee_real_groups=True,
                notes=("vmm ident read from a main-derived fork (bnovkov/freebsd-src)",
                       "egid kept first in the group list although 15.0 moved it out of "
                       "cr_groups: UNVERIFIED (missing: a procfs_status.c after D51489, "
                       "citation status.groups.15)"),
                cites=("nodes.self_exe", "rlimit.idents.vmm", "cansee.gids.15",
                       "map.type.kvme")),
        Profile("compat", "compat", 0, 0, has_ctl=True, has_self_exe=True,
                nlimits=17, kvme_map_types=True, has_ioctl=True,
                notes=("newest formats plus the historical ctl file and mem ioctls",),
                cites=("nodes.ctl.10", "ioctl.node", "rlimit.idents.vmm")),
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
    return PROFILES["freebsd-10"]
