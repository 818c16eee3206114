#!/usr/bin/env bash
# Build a Vagrant libvirt box of Debian 12 or 13 for amd64, i386 or arm64 from Debian
# packages alone (mmdebstrap), and add it to Vagrant. Nothing is downloaded but .debs.
#
# usage: build-box.sh --arch amd64|i386|arm64 --release 12|13 [--cache DIR] [--wheels DIR]
#   --cache DIR  box cache (default $BSDPROCFS_BOX_CACHE or /var/cache/bsdprocfs-boxes):
#                DIR/bsdprocfs-debian<R>-<arch>-<key>.box, DIR/vagrant.d (VAGRANT_HOME of
#                the boxes), DIR/key/vagrant{,.pub} (the ssh key this script creates)
#   --wheels DIR a wheelhouse (wheelhouse.py) for this arch and release: the box gets
#                /var/tmp/bsdprocfs-venv with its requirements installed (pip under an
#                emulated CPU takes minutes; here it runs once per box)
# Prints the box name on its last line of stdout. The key is a hash of this script,
# customize.sh, initramfs.sh, packages.txt, the wheelhouse's file list, the architecture
# and the release: an
# unchanged box is never rebuilt, a changed one replaces the old.
#
# The box: one qcow2 disk with an ext4 root (LABEL=bsdprocfs-root), user vagrant
# (passwordless sudo) with the key in authorized_keys, systemd-networkd on DHCP, a
# serial console. amd64/i386 boot with extlinux from the disk; arm64 boots its kernel
# directly (libvirt <kernel>), with an initramfs built here from the rootfs's own
# busybox-static and modules (mkinitramfs under qemu-user takes minutes).
# Needs root, mmdebstrap, qemu-utils, extlinux (x86), qemu-user-static (arm64).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
ARCH=amd64
RELEASE=12
WHEELS=""
CACHE=${BSDPROCFS_BOX_CACHE:-/var/cache/bsdprocfs-boxes}
MIRROR=${BSDPROCFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

usage() { echo "usage: $0 --arch amd64|i386|arm64 --release 12|13 [--cache DIR]" >&2; exit 2; }
log() { printf '==> [build-box.sh] %s\n' "$*" >&2; }
die() { printf 'build-box.sh: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
        --release) [ $# -ge 2 ] || usage; RELEASE=$2; shift 2 ;;
        --cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
        --wheels) [ $# -ge 2 ] || usage; WHEELS=$(cd "$2" && pwd -P); shift 2 ;;
        *) usage ;;
    esac
done
case $RELEASE in 12) SUITE=bookworm ;; 13) SUITE=trixie ;; *) usage ;; esac
case $ARCH in
    amd64) KERNEL=linux-image-amd64 ;;
    i386) KERNEL=linux-image-686-pae ;;
    arm64) KERNEL=linux-image-arm64 ;;
    *) usage ;;
esac
# Debian 13 ships no i386 kernel: its i386 userland runs on the amd64 kernel
# (multiarch), the way Debian supports i386 from trixie on.
KERNEL_ARCH=$ARCH
if [ "$ARCH" = i386 ] && [ "$RELEASE" = 13 ]; then KERNEL=linux-image-amd64:amd64; KERNEL_ARCH=amd64; fi
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, loop mount for extlinux)"
for t in mmdebstrap qemu-img mkfs.ext4 sfdisk sha256sum vagrant; do
    command -v "$t" >/dev/null || die "$t is missing (apt-get install mmdebstrap qemu-utils e2fsprogs fdisk vagrant)"
done

PACKAGES=$(grep -v '^#' "$HERE/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
[ "$ARCH" = arm64 ] && PACKAGES="$PACKAGES,busybox-static"
[ "$ARCH" = arm64 ] || PACKAGES="$PACKAGES,initramfs-tools"
PACKAGES="$PACKAGES,$KERNEL"

KEY=$( { cat "$HERE/build-box.sh" "$HERE/customize.sh" "$HERE/initramfs.sh" "$HERE/packages.txt"
         [ -z "$WHEELS" ] || cat "$WHEELS/.complete" "$WHEELS/requirements.txt"
         echo "arch=$ARCH release=$RELEASE"; } | sha256sum | cut -c1-12)
NAME=bsdprocfs-debian$RELEASE-$ARCH-$KEY
BOX=$CACHE/$NAME.box
export VAGRANT_HOME=$CACHE/vagrant.d VAGRANT_CHECKPOINT_DISABLE=1
mkdir -p "$CACHE/key" "$VAGRANT_HOME"
chmod 755 "$CACHE" "$VAGRANT_HOME"   # libvirt's qemu user reads arm64 kernels from the box

if vagrant box list 2>/dev/null | grep -q "^$NAME "; then
    log "$NAME: cached (vagrant box list), not rebuilding"
    echo "$NAME"
    exit 0
fi

# the ssh key every box of this cache carries (created once)
if [ ! -f "$CACHE/key/vagrant" ]; then
    log "creating ssh key $CACHE/key/vagrant"
    ssh-keygen -q -t ed25519 -N '' -C bsdprocfs-vagrant -f "$CACHE/key/vagrant"
fi

WORK=""
LOOP=""
MNT=""
BINFMT=/proc/sys/fs/binfmt_misc
BINFMT_MOUNTED=0
BINFMT_REGISTERED=0
binfmt_start() {   # arm64 binaries run in the chroot through qemu-user (F: fixed interpreter)
    if ! mountpoint -q "$BINFMT"; then
        mount -t binfmt_misc binfmt_misc "$BINFMT"; BINFMT_MOUNTED=1
    fi
    if [ ! -e "$BINFMT/qemu-aarch64" ]; then
        conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [ -f "$conf" ] || die "$conf missing (apt-get install qemu-user-static)"
        cat "$conf" >"$BINFMT/register"; BINFMT_REGISTERED=1
    fi
}
cleanup() {
    set +e
    [ "$BINFMT_REGISTERED" = 1 ] && echo -1 >"$BINFMT/qemu-aarch64"
    [ "$BINFMT_MOUNTED" = 1 ] && umount "$BINFMT"
    BINFMT_REGISTERED=0 BINFMT_MOUNTED=0
    [ -n "$MNT" ] && mountpoint -q "$MNT" && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    if [ -n "$WORK" ]; then
        # an mmdebstrap killed mid-run may leave its chroot mounts: never delete through them
        awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m"; done
        rm -rf --one-file-system "$WORK"
    fi
    LOOP="" MNT="" WORK=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

if [ ! -f "$BOX" ]; then
    WORK=$(mktemp -d "$CACHE/build-$NAME.XXXXXX")
    ROOTFS=$WORK/rootfs
    hooks=()
    if [ "$ARCH" = arm64 ]; then
        binfmt_start
        # no mkinitramfs under emulation: initramfs.sh builds the initramfs on the host
        # shellcheck disable=SC2016  # $1 is mmdebstrap's, expanded in the hook
        hooks+=(--essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs; printf "#!/bin/sh\nexit 0\n" >"$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"')
    fi
    arches=$ARCH
    [ "$KERNEL_ARCH" = "$ARCH" ] || arches=$ARCH,$KERNEL_ARCH
    t0=$(date +%s)
    log "$NAME: mmdebstrap $SUITE $ARCH ($PACKAGES)"
    mmdebstrap --quiet --variant=apt --architectures="$arches" --include="$PACKAGES" \
        --components=main "${hooks[@]}" \
        --customize-hook="\"$HERE/customize.sh\" \"\$1\" $ARCH $RELEASE \"$CACHE/key/vagrant.pub\" \"$WHEELS\"" \
        "$SUITE" "$ROOTFS" "$MIRROR" >&2
    t1=$(date +%s)
    log "$NAME: rootfs in $((t1 - t0)) s ($(du -sm "$ROOTFS" | cut -f1) MB)"
    KVER=$(find "$ROOTFS/lib/modules/" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
    if [ "$ARCH" = arm64 ]; then
        "$HERE/initramfs.sh" "$ROOTFS" "$KVER" "$WORK/initrd.img" >&2
        cp "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
    fi

    # the disk: rootfs + 3 GiB for the venv, the suite and its temporary files
    size_mb=$(( $(du -sm "$ROOTFS" | cut -f1) + 3072 ))
    RAW=$WORK/disk.raw
    truncate -s "${size_mb}M" "$RAW"
    if [ "$ARCH" = arm64 ]; then
        mkfs.ext4 -q -F -L bsdprocfs-root -b 4096 -d "$ROOTFS" "$RAW" $((size_mb * 256))
    else
        # MBR, one bootable partition from 1 MiB, extlinux in it
        echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW"
        mkfs.ext4 -q -F -L bsdprocfs-root -b 4096 -O ^64bit -E offset=1048576 -d "$ROOTFS" \
            "$RAW" $(( (size_mb - 1) * 256 ))
        dd if=/usr/lib/syslinux/mbr/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none
        LOOP=$(losetup --find --show --offset 1048576 "$RAW")
        MNT=$WORK/mnt
        mkdir -p "$MNT"
        mount "$LOOP" "$MNT"
        mkdir -p "$MNT/boot/extlinux"
        extlinux --install "$MNT/boot/extlinux" 2>/dev/null
        cat >"$MNT/boot/extlinux/extlinux.conf" <<EOF
DEFAULT linux
TIMEOUT 0
PROMPT 0
LABEL linux
  LINUX /boot/vmlinuz-$KVER
  INITRD /boot/initrd.img-$KVER
  APPEND root=LABEL=bsdprocfs-root ro console=ttyS0,115200 net.ifnames=0 quiet
EOF
        umount "$MNT"; MNT=""
        losetup -d "$LOOP"; LOOP=""
    fi
    qemu-img convert -O qcow2 "$RAW" "$WORK/box.img"
    rm -f "$RAW"
    vsize=$(( (size_mb + 1023) / 1024 ))
    printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$vsize" \
        >"$WORK/metadata.json"
    cp "$CACHE/key/vagrant" "$WORK/vagrant_key"
    # The box's own Vagrantfile: its key, and for arm64 its kernel (paths inside the box).
    {
        echo '# Written by bsdprocfs vagrant/boxes/build-box.sh'
        echo 'Vagrant.configure("2") do |config|'
        echo '  config.ssh.username = "vagrant"'
        echo '  config.ssh.private_key_path = File.join(__dir__, "vagrant_key")'
        echo '  config.ssh.insert_key = false'
        if [ "$ARCH" = arm64 ]; then
            echo '  config.vm.provider "libvirt" do |lv|'
            echo '    lv.kernel = File.join(__dir__, "vmlinuz")'
            echo '    lv.initrd = File.join(__dir__, "initrd.img")'
            echo '    lv.cmd_line = "root=/dev/vda ro console=ttyAMA0 net.ifnames=0 quiet"'
            echo '  end'
        fi
        echo 'end'
    } >"$WORK/Vagrantfile"
    files=(metadata.json Vagrantfile vagrant_key box.img)
    [ "$ARCH" = arm64 ] && files+=(vmlinuz initrd.img)
    tar -C "$WORK" -cf "$BOX.tmp" "${files[@]}"
    mv "$BOX.tmp" "$BOX"
    t2=$(date +%s)
    log "$NAME: disk and box in $((t2 - t1)) s ($(du -sm "$BOX" | cut -f1) MB): $BOX"
    cleanup
fi

# only the current box of this arch and release stays in the cache
for old in "$CACHE"/bsdprocfs-debian"$RELEASE"-"$ARCH"-*.box; do
    [ "$old" = "$BOX" ] || rm -f "$old"
done
vagrant box list 2>/dev/null | awk -v p="bsdprocfs-debian$RELEASE-$ARCH-" -v n="$NAME" \
    'index($1, p) == 1 && $1 != n {print $1}' | while read -r old; do
    log "removing old box $old"
    vagrant box remove --force --all "$old" >&2 || true
done
log "vagrant box add $NAME"
vagrant box add --force --name "$NAME" "$BOX" >&2
echo "$NAME"
