#!/bin/sh
# One entry point for the conformance runs in VMs (and on this machine with --local).
#
# usage: vagrant/run-conformance.sh [freebsd|linux|all] [--local]
#                                   [--arch amd64|i386|arm64] [--release 12|13]
#   freebsd   vagrant/freebsd VM (FreeBSD 14.3 by default; BSDPROCFS_FREEBSD_RELEASE=13.5|14.3|15.0)
#   linux     vagrant/linux VM: Debian --release (12 by default) for --arch (amd64 by
#             default), on libvirt, from a box built here (vagrant/boxes/build-box.sh)
#   all       both (default)
#   --local   no VM: run the same provisioning script on this machine (its OS must
#             match: linux on Linux, freebsd on FreeBSD). Needs root for FUSE.
# Every run executes vagrant/provision/conformance.sh, the script the Vagrantfiles
# and the GitHub workflows use. Reports land in $BSDPROCFS_RESULTS/<vm>/
# (default vagrant/results/): freebsd-<release>/, linux-<release>-<arch>/, local-<os>/.
#
# The Linux VM needs no network and no download but Debian packages and PyPI wheels,
# fetched on the host: the box (cached by content in $BSDPROCFS_BOX_CACHE, default
# /var/cache/bsdprocfs-boxes) and a wheelhouse for the guest's Python and architecture.
# What the run starts it stops again, after success, failure or SIGINT: the VM
# (vagrant destroy), and libvirtd, virtlogd, the default network and storage pool if
# they were not running before (runs of different lanes may overlap: the last one out
# stops them). A lane's runs take turns (lock $BSDPROCFS_BOX_CACHE/lock-<lane>).
# Unit tests inside the VM: BSDPROCFS_UNIT_TESTS (pytest arguments; default the
# register and ptrace tests that differ by architecture; "all" for the whole suite).
# VAGRANT names the vagrant binary (default: vagrant on PATH).
# Exit status: 0 if every run passed, 1 if one failed, 69 (EX_UNAVAILABLE) if a VM
# run was asked for and vagrant (or libvirt, for linux) is not installed, 2 for usage
# errors, 130 after SIGINT.

set -u
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
PROVISION=$HERE/provision/conformance.sh
RESULTS=${BSDPROCFS_RESULTS:-$HERE/results}
VM_OUT=/var/tmp/bsdprocfs-results     # inside the VM; must match the Vagrantfiles' args
VAGRANT=${VAGRANT:-vagrant}
CACHE=${BSDPROCFS_BOX_CACHE:-/var/cache/bsdprocfs-boxes}
DEFAULT_UNIT_TESTS="tests/test_regs_known.py tests/test_ptrace_regs.py tests/test_ptrace_layouts.py"

usage() {
    echo "usage: $0 [freebsd|linux|all] [--local] [--arch amd64|i386|arm64] [--release 12|13]" >&2
    exit 2
}

log() { printf '==> [run-conformance.sh] %s\n' "$*"; }

TARGET=all
LOCAL=0
ARCH=amd64
RELEASE=12
while [ $# -gt 0 ]; do
    case $1 in
        freebsd|linux|all) TARGET=$1; shift ;;
        --local) LOCAL=1; shift ;;
        --arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
        --release) [ $# -ge 2 ] || usage; RELEASE=$2; shift 2 ;;
        *) usage ;;
    esac
done
case $ARCH in amd64|i386|arm64) ;; *) usage ;; esac
case $RELEASE in 12|13) ;; *) usage ;; esac

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

# ------------------------------------------------------------ what this run started
# What the runs started is recorded in $LV (tmpfs), shared by runs of other lanes that
# overlap: the last run out stops it, none stops what it found running.
LV=/run/bsdprocfs-libvirt
LV_USER=0
VM_DIR=""          # the Vagrant project dir whose machine is up
DOMAIN=""          # its libvirt domain (vagrant-libvirt: <default_prefix>default)
CHILD=""           # the vagrant command running now

# vagrant runs in the background and the script waits for it: a trapped signal
# interrupts `wait` at once (a foreground command would first run to its end, and
# vagrant itself answers one ^C by finishing the provisioner). The trap then stops it.
vg() {
    "$VAGRANT" "$@" &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=""
    return "$rc"
}
now() { date +%s; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {   # stop_pidfile NAME PIDFILE: SIGTERM, wait up to 20 s
    [ -f "$2" ] || return 0
    pid=$(cat "$2")
    kill "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null; fi
    log "stopped $1 (pid $pid)"
}

# shellcheck disable=SC2317  # reached through trap
cleanup() {
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
        CHILD=""
    fi
    if [ -n "$VM_DIR" ]; then
        log "vagrant destroy -f"
        (cd "$VM_DIR" && "$VAGRANT" destroy -f) || log "WARNING: vagrant destroy failed"
        VM_DIR=""
    fi
    if [ -n "$DOMAIN" ]; then
        # a vagrant stopped mid-create may not know its domain yet: remove it by name
        if virsh -q dominfo "$DOMAIN" >/dev/null 2>&1; then
            virsh -q destroy "$DOMAIN" >/dev/null 2>&1
            virsh -q undefine "$DOMAIN" --remove-all-storage >/dev/null 2>&1
            log "removed leftover domain $DOMAIN"
        fi
        if virsh -q vol-info --pool default "$DOMAIN.img" >/dev/null 2>&1; then
            virsh -q vol-delete --pool default "$DOMAIN.img" >/dev/null 2>&1
        fi
        DOMAIN=""
    fi
    libvirt_down
}
trap cleanup EXIT
trap 'log "interrupted: cleaning up"; cleanup; exit 130' INT TERM HUP
# whoever read our output is gone: clean up silently
trap 'exec >/dev/null 2>&1; cleanup; exit 141' PIPE

started() { grep -qx "$1" "$LV/started" 2>/dev/null; }
mark() { echo "$1" >>"$LV/started"; }

libvirt_up() {   # start virtlogd, libvirtd, the default network and pool if needed
    mkdir -p "$LV/users" || return 1
    exec 8>"$LV/lock"
    flock 8
    : >"$LV/users/$$"
    LV_USER=1
    rc=0
    libvirt_start || rc=1
    flock -u 8
    return "$rc"
}

libvirt_start() {
    if ! pid_alive /run/virtlogd.pid; then
        virtlogd -d || return 1
        mark virtlogd
        log "started virtlogd"
    fi
    if ! pid_alive /run/libvirtd.pid; then
        libvirtd -d || return 1
        mark libvirtd
        log "started libvirtd (no systemd needed)"
    fi
    i=0
    until virsh -q version >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "run-conformance.sh: libvirtd does not answer" >&2; return 1; }
        sleep 0.3
    done
    if ! virsh -q net-info default >/dev/null 2>&1; then
        # libvirt's NAT network as Debian's package defines it
        virsh -q net-define /usr/share/libvirt/networks/default.xml >/dev/null || return 1
        mark netdef
    fi
    if ! virsh -q net-info default 2>/dev/null | grep -Eq '^Active: +yes'; then
        virsh -q net-start default >/dev/null || return 1
        mark net
        log "started libvirt network default"
    fi
    if ! virsh -q pool-info default >/dev/null 2>&1; then
        mkdir -p /var/lib/libvirt/images
        virsh -q pool-define-as default dir --target /var/lib/libvirt/images >/dev/null || return 1
        mark pooldef
    fi
    if ! virsh -q pool-info default 2>/dev/null | grep -Eq '^State: +running'; then
        virsh -q pool-start default >/dev/null || return 1
        mark pool
    fi
}

# shellcheck disable=SC2317  # reached through trap
libvirt_down() {   # the last run out stops what the runs started
    [ "$LV_USER" = 1 ] || return 0
    flock 8
    rm -f "$LV/users/$$"
    LV_USER=0
    for u in "$LV"/users/*; do
        [ -e "$u" ] || continue
        kill -0 "${u##*/}" 2>/dev/null || rm -f "$u"
    done
    if [ -n "$(ls "$LV/users")" ]; then
        log "libvirt stays up for the other runs ($(cd "$LV/users" && echo *))"
    else
        # a libvirtd we started brought the network up by autostart: ours too
        if started net || started libvirtd; then
            if virsh -q net-info default 2>/dev/null | grep -Eq '^Active: +yes'; then
                virsh -q net-destroy default >/dev/null && log "stopped libvirt network default"
            fi
        fi
        started netdef && virsh -q net-undefine default >/dev/null 2>&1
        if started pool || started pooldef; then virsh -q pool-destroy default >/dev/null 2>&1; fi
        started pooldef && virsh -q pool-undefine default >/dev/null 2>&1
        started libvirtd && stop_pidfile libvirtd /run/libvirtd.pid
        started virtlogd && stop_pidfile virtlogd /run/virtlogd.pid
        rm -f "$LV/started"
    fi
    flock -u 8
}

unavailable() {   # unavailable WHAT HINT
    cat >&2 <<EOF
run-conformance.sh: $1, so the VM cannot run.
  $2
  or run the Linux lane on this machine without a VM:  $0 linux --local
  Nothing was run: exiting 69 (EX_UNAVAILABLE) rather than reporting success.
EOF
    return 69
}

run_linux_vm() {
    case $ARCH in amd64) machine=x86_64 ;; i386) machine=i686 ;; arm64) machine=aarch64 ;; esac
    # Debian 13 has no i386 kernel: its i386 box boots the amd64 one
    [ "$ARCH$RELEASE" = i38613 ] && machine=x86_64
    qemu=qemu-system-$machine
    [ "$machine" = i686 ] && qemu="qemu-system-i386"
    for t in virsh libvirtd virtlogd "$qemu" mmdebstrap qemu-img; do
        command -v "$t" >/dev/null 2>&1 || { unavailable "$t is not installed" \
            "apt-get install libvirt-daemon-system vagrant-libvirt qemu-system-x86 qemu-system-arm qemu-utils qemu-user-static mmdebstrap extlinux"; return; }
    done
    "$VAGRANT" plugin list 2>/dev/null | grep -q vagrant-libvirt || { unavailable \
        "the vagrant-libvirt plugin is missing" "apt-get install vagrant-libvirt"; return; }
    [ "$(id -u)" -eq 0 ] || { echo "run-conformance.sh: the libvirt lane needs root" >&2; return 2; }
    lane=linux-$RELEASE-$ARCH
    out=$RESULTS/$lane
    mkdir -p "$out" "$CACHE" || return 1
    rm -f "$out"/*.xml "$out"/*.md "$out"/*.json "$out"/summary.txt "$out"/console.log
    exec 9>"$CACHE/lock-$lane"
    if ! flock -n 9; then log "waiting for another $lane run (lock $CACHE/lock-$lane)"; flock 9; fi

    t0=$(now)
    py=3.11; [ "$RELEASE" = 13 ] && py=3.13
    wkey=$(cat "$ROOT/pyproject.toml" "$HERE/boxes/wheelhouse.py" | sha256sum | cut -c1-12)
    wheels=$CACHE/wheels/cp$py-$ARCH-$wkey
    if [ ! -f "$wheels/.complete" ]; then
        log "wheelhouse for CPython $py on $ARCH -> $wheels"
        python3 "$HERE/boxes/wheelhouse.py" --arch "$ARCH" --python "$py" --out "$wheels" \
            || { echo "run-conformance.sh: the wheelhouse failed" >&2; return 1; }
    fi
    box=$("$HERE/boxes/build-box.sh" --arch "$ARCH" --release "$RELEASE" --cache "$CACHE" \
        --wheels "$wheels" | tail -1)
    [ -n "$box" ] || { echo "run-conformance.sh: building the box failed" >&2; return 1; }
    t1=$(now)
    log "$lane: box $box and wheelhouse ready in $((t1 - t0)) s"

    libvirt_up || { echo "run-conformance.sh: could not start libvirt" >&2; return 1; }
    units=${BSDPROCFS_UNIT_TESTS:-$DEFAULT_UNIT_TESTS}
    [ "$units" = all ] && units=""
    export VAGRANT_HOME="$CACHE/vagrant.d" VAGRANT_DOTFILE_PATH="$HERE/linux/.vagrant-$lane" \
        VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_CHECKPOINT_DISABLE=1 \
        BSDPROCFS_LINUX_BOX="$box" BSDPROCFS_VM_ARCH="$ARCH" BSDPROCFS_VM_MACHINE="$machine" \
        BSDPROCFS_WHEELS="$wheels" BSDPROCFS_UNIT_TESTS="$units" \
        BSDPROCFS_VM_CONSOLE="$out/console.log" BSDPROCFS_VM_NAME="bsdprocfs-$lane"
    # base volumes of this lane's older boxes go (the current one is kept: no upload)
    virsh -q vol-list default 2>/dev/null | awk -v p="bsdprocfs-debian$RELEASE-$ARCH-" \
        -v b="${box}_vagrant_box_image" 'index($1, p) == 1 && index($1, b) != 1 {print $1}' |
        while read -r vol; do virsh -q vol-delete --pool default "$vol" >/dev/null; done
    VM_DIR=$HERE/linux
    DOMAIN=bsdprocfs-${lane}_default
    cd "$VM_DIR" || return 1
    log "$lane: vagrant up --provider=libvirt --no-provision"
    vg up --provider=libvirt --no-provision
    rc=$?
    t2=$(now)
    log "$lane: boot (vagrant up) $((t2 - t1)) s, exit $rc"
    if [ "$rc" -eq 0 ]; then
        log "$lane: vagrant provision (vagrant/provision/conformance.sh in the VM)"
        vg provision
        rc=$?
        t3=$(now)
        log "$lane: suite $((t3 - t2)) s, exit $rc"
        fetch_reports "$VM_DIR" "$lane" "$out" || { [ "$rc" -ne 0 ] || rc=1; }
        printf 'box %s\nboot %s\nsuite %s\n' "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" \
            >"$out/timings.txt"
    fi
    cd "$ROOT" || true
    cleanup
    flock -u 9
    return "$rc"
}

fetch_reports() {   # fetch_reports DIR VM OUT: rsync folders are one-way; scp them back
    log "$2: copying $VM_OUT back to $3"
    cfg=$(mktemp "${TMPDIR:-/tmp}/bsdprocfs-ssh.XXXXXX")
    if (cd "$1" && "$VAGRANT" ssh-config --host bsdprocfs-vm >"$cfg") \
        && scp -q -F "$cfg" -r "bsdprocfs-vm:$VM_OUT/*" "$3/"; then
        rm -f "$cfg"
        log "$2: reports in $3"
        return 0
    fi
    rm -f "$cfg"
    echo "run-conformance.sh: $2: could not copy the reports back" >&2
    return 1
}

run_vm() {   # run_vm OS
    if ! command -v "$VAGRANT" >/dev/null 2>&1; then
        cat >&2 <<EOF
run-conformance.sh: vagrant is not installed ('$VAGRANT' not found), so the $1 VM cannot run.
  Install Vagrant and a provider (libvirt: apt-get install vagrant-libvirt
  libvirt-daemon-system; VirtualBox for the official FreeBSD boxes),
  or run the Linux lane on this machine without a VM:  $0 linux --local
  Nothing was run: exiting 69 (EX_UNAVAILABLE) rather than reporting success.
EOF
        return 69
    fi
    if [ "$1" = linux ]; then
        run_linux_vm
        return
    fi
    vm=freebsd-${BSDPROCFS_FREEBSD_RELEASE:-14.3}
    out=$RESULTS/$vm
    mkdir -p "$out"
    log "$vm: vagrant up --provision (vagrant/$1/Vagrantfile)"
    (cd "$HERE/$1" && "$VAGRANT" up --provision)
    rc=$?
    fetch_reports "$HERE/$1" "$vm" "$out" || { [ "$rc" -ne 0 ] || rc=1; }
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
