#!/bin/sh
# One entry point for the conformance runs in VMs (and on this machine with --local).
#
# usage: vagrant/run-conformance.sh [freebsd|linux|all] [--local]
#   freebsd   vagrant/freebsd VM (FreeBSD 14.3 by default; BSDPROCFS_FREEBSD_RELEASE=13.5|14.3|15.0)
#   linux     vagrant/linux VM (Debian 12)
#   all       both (default)
#   --local   no VM: run the same provisioning script on this machine (its OS must
#             match: linux on Linux, freebsd on FreeBSD). Needs root for FUSE.
# Every run executes vagrant/provision/conformance.sh, the script the Vagrantfiles
# and the GitHub workflows use. Reports land in $BSDPROCFS_RESULTS/<vm>/
# (default vagrant/results/): freebsd-<release>/, linux/, local-<os>/.
# VAGRANT names the vagrant binary (default: vagrant on PATH).
# Exit status: 0 if every run passed, 1 if one failed, 69 (EX_UNAVAILABLE) if a VM
# run was asked for and vagrant is not installed, 2 for usage errors.

set -u
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
PROVISION=$HERE/provision/conformance.sh
RESULTS=${BSDPROCFS_RESULTS:-$HERE/results}
VM_OUT=/var/tmp/bsdprocfs-results     # inside the VM; must match the Vagrantfiles' args
VAGRANT=${VAGRANT:-vagrant}

usage() {
    echo "usage: $0 [freebsd|linux|all] [--local]" >&2
    exit 2
}

log() { printf '==> [run-conformance.sh] %s\n' "$*"; }

TARGET=all
LOCAL=0
for a in "$@"; do
    case $a in
        freebsd|linux|all) TARGET=$a ;;
        --local) LOCAL=1 ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done

run_local() {   # run_local OS
    case $(uname -s) in
        Linux) host=linux ;;
        FreeBSD) host=freebsd ;;
        *) host=unknown ;;
    esac
    if [ "$1" != "$host" ]; then
        echo "run-conformance.sh: --local runs on this machine; '$1' needs a $1 host (this is $(uname -s))" >&2
        return 2
    fi
    out=$RESULTS/local-$1
    log "local $1 run -> $out"
    sh "$PROVISION" "$1" "$out" --src "$ROOT"
}

run_vm() {   # run_vm OS
    if ! command -v "$VAGRANT" >/dev/null 2>&1; then
        cat >&2 <<EOF
run-conformance.sh: vagrant is not installed ('$VAGRANT' not found), so the $1 VM cannot run.
  Install Vagrant and a provider (VirtualBox; the official FreeBSD boxes ship for it),
  or run the Linux lane on this machine without a VM:  $0 linux --local
  Nothing was run: exiting 69 (EX_UNAVAILABLE) rather than reporting success.
EOF
        return 69
    fi
    if [ "$1" = freebsd ]; then
        vm=freebsd-${BSDPROCFS_FREEBSD_RELEASE:-14.3}
    else
        vm=linux
    fi
    out=$RESULTS/$vm
    mkdir -p "$out"
    log "$vm: vagrant up --provision (vagrant/$1/Vagrantfile)"
    (cd "$HERE/$1" && "$VAGRANT" up --provision)
    rc=$?
    # rsync synced folders are one-way (host -> guest): fetch the reports over ssh.
    log "$vm: copying $VM_OUT back to $out"
    cfg=$(mktemp "${TMPDIR:-/tmp}/bsdprocfs-ssh.XXXXXX")
    if (cd "$HERE/$1" && "$VAGRANT" ssh-config --host bsdprocfs-vm >"$cfg") \
        && scp -q -F "$cfg" -r "bsdprocfs-vm:$VM_OUT/*" "$out/"; then
        log "$vm: reports in $out"
    else
        echo "run-conformance.sh: $vm: could not copy the reports back" >&2
        [ "$rc" -ne 0 ] || rc=1
    fi
    rm -f "$cfg"
    return "$rc"
}

STATUS=0
for os in freebsd linux; do
    [ "$TARGET" = all ] || [ "$TARGET" = "$os" ] || continue
    if [ "$LOCAL" = 1 ]; then
        [ "$TARGET" = all ] && [ "$os" = freebsd ] && [ "$(uname -s)" != FreeBSD ] && continue
        [ "$TARGET" = all ] && [ "$os" = linux ] && [ "$(uname -s)" != Linux ] && continue
        run_local "$os"
    else
        run_vm "$os"
    fi
    rc=$?
    [ "$rc" -eq 0 ] && continue
    if [ "$rc" -eq 69 ] || [ "$rc" -eq 2 ]; then STATUS=$rc; break; fi
    STATUS=1
done
exit "$STATUS"
