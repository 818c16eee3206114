#!/bin/sh
# The arm64 box's initramfs, built on the host in a second instead of mkinitramfs under
# qemu-user (minutes): the rootfs's own busybox-static, the modules that reach an ext4
# root on virtio-blk (with their dependencies from modules.dep, decompressed), and an
# /init that loads them, mounts root= read-only and switches to it.
# usage: initramfs.sh ROOTFS KVER OUT
set -eu
R=$1
KVER=$2
OUT=$3
MODDIR=$R/lib/modules/$KVER
[ -x "$R/bin/busybox" ] || { echo "initramfs.sh: $R has no busybox-static" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/bin" "$T/dev" "$T/proc" "$T/sys" "$T/root" "$T/lib/modules"
cp "$R/bin/busybox" "$T/bin/busybox"
for a in sh mount umount insmod switch_root mkdir sleep cat; do ln -s busybox "$T/bin/$a"; done

# module path (relative to MODDIR) of a module name, or nothing if built in / absent
modpath() {
    awk -F: -v m="$1" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
                         gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$MODDIR/modules.dep"
}
deps() {   # deps PATH: its dependencies, from modules.dep
    awk -F: -v p="$1" '$1 == p { print $2 }' "$MODDIR/modules.dep"
}
: >"$T/order"
add() {    # add PATH: dependencies first, each module once
    grep -qxF "$1" "$T/order" && return 0
    for d in $(deps "$1"); do add "$d"; done
    echo "$1" >>"$T/order"
}
for m in crc32c_generic libcrc32c virtio_pci virtio_mmio virtio_blk ext4; do
    p=$(modpath "$m")
    [ -n "$p" ] && add "$p"
done
: >"$T/modules"
while read -r p; do
    base=$(basename "$p")
    case $base in
        *.ko.xz) xz -dc "$MODDIR/$p" >"$T/lib/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) zstd -qdc "$MODDIR/$p" >"$T/lib/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz) gzip -dc "$MODDIR/$p" >"$T/lib/modules/${base%.gz}"; base=${base%.gz} ;;
        *) cp "$MODDIR/$p" "$T/lib/modules/$base" ;;
    esac
    echo "$base" >>"$T/modules"
done <"$T/order"

cat >"$T/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules); do insmod "/lib/modules/$m" 2>/dev/null; done
root=/dev/vda
for w in $(cat /proc/cmdline); do case $w in root=*) root=${w#root=} ;; esac; done
i=0
while [ ! -b "$root" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o ro "$root" /root || { echo "initramfs: cannot mount $root"; exec sh; }
umount /proc /sys
mount --move /dev /root/dev 2>/dev/null || umount /dev
exec switch_root /root /sbin/init
EOF
chmod 755 "$T/init"
rm -f "$T/order"
(cd "$T" && find . | cpio --quiet -o -H newc | gzip -1) >"$OUT"
echo "initramfs.sh: $OUT ($(wc -c <"$OUT") bytes; modules: $(tr '\n' ' ' <"$T/modules"))"
