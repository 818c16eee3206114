#!/bin/sh
# The one list of conformance steps. Every place that runs the suite calls this
# script and nothing else, so what a VM checks is what the tests check here:
#   vagrant/freebsd/Vagrantfile, vagrant/linux/Vagrantfile  (shell provisioner)
#   .github/workflows/freebsd.yml, .github/workflows/linux.yml
#   vagrant/run-conformance.sh --local, tox -e conformance, tests/test_vm_ci.py
# POSIX sh on purpose: FreeBSD has no bash, and vmactions runs `sh`.
#
# usage: conformance.sh OS OUTDIR [--src DIR] [--unit-tests]
#   OS            freebsd | linux | auto (uname)
#   OUTDIR        reports go here: <target>.xml (JUnit), <target>.md, <target>.json,
#                 summary.txt; targets: native (FreeBSD only), api, fuse, unit
#   --src DIR     the source tree (default: two levels above this script; Vagrant
#                 uploads the script alone, so the Vagrantfiles pass it)
#   --unit-tests  also run the project's pytest suite (JUnit in OUTDIR/unit.xml)
# environment:
#   BSDPROCFS_VENV  venv to use. If it already runs `bsdprocfs conformance` it is
#                   reused as is; otherwise the package is installed into it.
#                   Default /var/tmp/bsdprocfs-venv (created on a fresh machine;
#                   reinstalled when it holds another checkout).
#   BSDPROCFS_JOBS  conformance/pytest workers (-n), default 2
#   BSDPROCFS_PROFILE  profile of the shim's API and FUSE mount, default compat
#                   (native FreeBSD /proc is judged with the profile the suite detects)
#   BSDPROCFS_WHEELS  a wheelhouse (vagrant/boxes/wheelhouse.py): pip installs from it
#                   alone (--no-index), for a machine without network (the Vagrant VMs)
#   BSDPROCFS_UNIT_TESTS  pytest arguments of the --unit-tests step (default: the suite)
#   PYTHON          interpreter that creates the venv, default python3
# Exit status: 0 only if every step passed; 2 for usage or set-up errors.

set -u

usage() {
    echo "usage: $0 freebsd|linux|auto OUTDIR [--src DIR] [--unit-tests]" >&2
    exit 2
}

log() { printf '==> [conformance.sh] %s\n' "$*"; }
die() { printf 'conformance.sh: %s\n' "$*" >&2; exit 2; }

[ $# -ge 2 ] || usage
OS=$1
OUT=$2
shift 2
SRC=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)
UNIT=0
while [ $# -gt 0 ]; do
    case $1 in
        --src) [ $# -ge 2 ] || usage; SRC=$2; shift 2 ;;
        --unit-tests) UNIT=1; shift ;;
        *) usage ;;
    esac
done
if [ "$OS" = auto ]; then
    case $(uname -s) in
        FreeBSD) OS=freebsd ;;
        Linux) OS=linux ;;
        *) die "auto: unsupported system $(uname -s)" ;;
    esac
fi
case $OS in freebsd|linux) ;; *) usage ;; esac
[ -f "$SRC/pyproject.toml" ] || die "--src $SRC: not the bsdprocfs source tree (no pyproject.toml)"
SRC=$(cd "$SRC" && pwd -P)
PYTHON=${PYTHON:-python3}
JOBS=${BSDPROCFS_JOBS:-2}
VENV=${BSDPROCFS_VENV:-/var/tmp/bsdprocfs-venv}
SHIM_PROFILE=${BSDPROCFS_PROFILE:-compat}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root for: $*"
    fi
}

# ---------------------------------------------------------------- system set-up
setup_linux() {
    log "system: $(uname -srm)"
    need=""
    command -v fusermount3 >/dev/null 2>&1 || need="$need fuse3"
    if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        need="$need python3-venv"
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || need="$need python3"
    if [ -n "$need" ]; then
        command -v apt-get >/dev/null 2>&1 || die "missing:$need (install them; no apt-get here)"
        log "apt-get install -y$need"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
        # shellcheck disable=SC2086  # $need is a word list
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need \
            || die "apt-get install$need failed"
    fi
    log "fuse3: $(command -v fusermount3) ($(fusermount3 -V 2>&1))"
    [ -e /dev/fuse ] || as_root modprobe fuse || true
    [ -e /dev/fuse ] || log "WARNING: /dev/fuse is missing; the fuse target will fail"
}

setup_freebsd() {
    log "system: $(uname -srm) ($(freebsd-version 2>/dev/null || echo unknown userland))"
    need=""
    command -v "$PYTHON" >/dev/null 2>&1 || need="$need python3"
    [ -e /usr/local/lib/libfuse3.so ] || need="$need fusefs-libs3"
    if [ -n "$need" ]; then
        log "pkg install -y$need"
        # shellcheck disable=SC2086  # $need is a word list
        as_root env ASSUME_ALWAYS_YES=yes pkg install -y $need || die "pkg install$need failed"
    fi
    as_root kldload -n fusefs || log "WARNING: kldload fusefs failed; the fuse target will fail"
    # procfs(4): the fstab line from its SYNOPSIS, and mount it now (EXAMPLES).
    if ! grep -Eq '^[[:space:]]*proc[[:space:]]+/proc[[:space:]]+procfs' /etc/fstab; then
        log "adding 'proc /proc procfs rw 0 0' to /etc/fstab"
        printf 'proc\t/proc\tprocfs\trw\t0\t0\n' | as_root tee -a /etc/fstab >/dev/null
    fi
    if [ ! -e /proc/curproc/status ]; then
        log "mount -t procfs proc /proc"
        as_root mount -t procfs proc /proc || die "mount -t procfs proc /proc failed"
    fi
    log "procfs: $(mount -p | awk '$2 == "/proc"')"
}

# ---------------------------------------------------------------- the package
BSDPROCFS=$VENV/bin/bsdprocfs

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$BSDPROCFS" conformance --help >/dev/null 2>&1 \
        && "$VENV/bin/python" -c 'import bsdprocfs, mfusepy' 2>/dev/null
}

venv_from_src() {
    where=$("$VENV/bin/python" -c \
        'import bsdprocfs, os; print(os.path.realpath(bsdprocfs.__file__))' 2>/dev/null) \
        || return 1
    case $where in "$SRC"/*) return 0 ;; *) return 1 ;; esac
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv $VENV failed"
        install=1
    elif ! venv_ok; then
        log "venv $VENV lacks a working bsdprocfs conformance: installing"
        install=1
    elif [ -z "${BSDPROCFS_VENV:-}" ] && ! venv_from_src; then
        log "venv $VENV holds another checkout: reinstalling from $SRC"
        install=1
    else
        log "reusing venv $VENV (bsdprocfs conformance runs; not reinstalling)"
        install=0
    fi
    if [ "$install" = 1 ]; then
        # [test]: the conformance suite is a pytest plugin run with xdist (-n),
        # and --unit-tests needs the rest of it.
        if [ -n "${BSDPROCFS_WHEELS:-}" ]; then
            log "pip install -e ${SRC}[test] from the wheelhouse $BSDPROCFS_WHEELS (no index)"
            set -- --no-index --find-links "$BSDPROCFS_WHEELS"
            # a venv that already holds the build backend (a box's) builds in place
            if "$VENV/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
                set -- "$@" --no-build-isolation
            fi
        else
            log "pip install -e ${SRC}[test]"
            set --
        fi
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" -e "${SRC}[test]" \
            || die "pip install failed"
        venv_ok || die "bsdprocfs conformance does not run after installing"
    fi
    log "package: $("$BSDPROCFS" --version 2>&1) from $("$VENV/bin/python" -c \
        'import bsdprocfs, os; print(os.path.dirname(bsdprocfs.__file__))')"
}

# ---------------------------------------------------------------- the runs
STATUS=0
record() {   # record NAME RC
    printf '%s %s\n' "$1" "$2" >>"$OUT/summary.txt"
    if [ "$2" -eq 0 ]; then log "$1: passed"; else log "$1: FAILED (exit $2)"; STATUS=1; fi
}

suite() {    # suite NAME conformance-args...
    name=$1
    shift
    log "bsdprocfs conformance $* -n $JOBS  ->  $OUT/$name.{xml,md,json}"
    "$BSDPROCFS" conformance "$@" -n "$JOBS" \
        --junit "$OUT/$name.xml" --report "$OUT/$name.md" --json "$OUT/$name.json"
    record "$name" $?
}

MNT=""
# shellcheck disable=SC2317  # reached through trap
cleanup() {
    if [ -n "$MNT" ]; then
        "$BSDPROCFS" umount --pidfile "$MNT.pid" "$MNT" >/dev/null 2>&1 || true
        rmdir "$MNT" 2>/dev/null || true
        MNT=""
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

run_fuse() {
    MNT=$(mktemp -d "${TMPDIR:-/tmp}/bsdprocfs-mnt.XXXXXX") || die "mktemp failed"
    log "bsdprocfs mount $MNT"
    if ! "$BSDPROCFS" mount --profile "$SHIM_PROFILE" --logfile "$OUT/fuse-daemon.log" \
        --pidfile "$MNT.pid" "$MNT"; then
        record fuse-mount 1
        rmdir "$MNT" 2>/dev/null
        MNT=""
        return
    fi
    suite fuse --root "$MNT" --profile "$SHIM_PROFILE" --impl bsdprocfs-fuse
    log "bsdprocfs umount $MNT"
    "$BSDPROCFS" umount --pidfile "$MNT.pid" "$MNT"
    record fuse-umount $?
    rmdir "$MNT" 2>/dev/null
    MNT=""
}

# sudo (Vagrant's privileged provisioner) leaves a hard core limit of 0; the suite's
# unprivileged subjects set known rlimits (core max = infinity) and inherit ours
# shellcheck disable=SC3045  # -H -c: dash, bash and FreeBSD sh all have them
if [ "$(id -u)" -eq 0 ]; then ulimit -H -c unlimited 2>/dev/null || true; fi
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd -P)
for f in native api fuse unit; do rm -f "$OUT/$f.xml" "$OUT/$f.md" "$OUT/$f.json"; done
rm -f "$OUT/summary.txt" "$OUT/fuse-daemon.log"
log "os=$OS src=$SRC out=$OUT venv=$VENV"

case $OS in
    freebsd) setup_freebsd ;;
    linux) setup_linux ;;
esac
setup_venv

if [ "$OS" = freebsd ]; then
    # The kernel's own procfs, judged with the profile the suite detects from it.
    suite native --root /proc --impl native-freebsd
fi
suite api --api --profile "$SHIM_PROFILE" --impl bsdprocfs-api
run_fuse
if [ "$UNIT" = 1 ]; then
    log "pytest -n $JOBS ${BSDPROCFS_UNIT_TESTS:-} (unit tests)  ->  $OUT/unit.xml"
    # shellcheck disable=SC2086  # BSDPROCFS_UNIT_TESTS is a word list of pytest arguments
    (cd "$SRC" && "$VENV/bin/python" -m pytest -n "$JOBS" -p no:cacheprovider \
        --junitxml "$OUT/unit.xml" ${BSDPROCFS_UNIT_TESTS:-})
    record unit $?
fi

chmod -R a+rX "$OUT" 2>/dev/null || true
log "summary ($OUT/summary.txt):"
sed 's/^/    /' "$OUT/summary.txt"
exit "$STATUS"
