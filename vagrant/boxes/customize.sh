#!/bin/sh
# mmdebstrap --customize-hook of build-box.sh: turn the rootfs into a Vagrant box.
# usage: customize.sh ROOTFS ARCH RELEASE PUBKEY [WHEELS]
set -eu
R=$1
ARCH=$2
RELEASE=$3
PUBKEY=$4
WHEELS=${5:-}

echo bsdprocfs-linux >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbsdprocfs-linux\n::1\tlocalhost ip6-localhost\n' \
    >"$R/etc/hosts"
if [ "$ARCH" = arm64 ]; then root=/dev/vda; else root=LABEL=bsdprocfs-root; fi
printf '%s\t/\text4\terrors=remount-ro\t0\t1\n' "$root" >"$R/etc/fstab"

# vagrant: passwordless sudo, the box's key
chroot "$R" useradd --create-home --shell /bin/bash --user-group vagrant
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' \
    >"$R/etc/sudoers.d/vagrant"
chmod 440 "$R/etc/sudoers.d/vagrant"
install -d -m 700 "$R/home/vagrant/.ssh"
install -m 600 "$PUBKEY" "$R/home/vagrant/.ssh/authorized_keys"
chroot "$R" chown -R vagrant:vagrant /home/vagrant/.ssh
printf 'UseDNS no\nPasswordAuthentication no\n' >"$R/etc/ssh/sshd_config.d/bsdprocfs.conf"

# the one NIC (net.ifnames=0: eth0) on DHCP from libvirt's network
cat >"$R/etc/systemd/network/10-eth.network" <<'EOF'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
EOF
chroot "$R" systemctl enable --quiet systemd-networkd.service
# nothing in the background competes with the suite on an emulated CPU
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
         fstrim.timer systemd-networkd-wait-online.service; do
    chroot "$R" systemctl mask --quiet "$u" 2>/dev/null || true
done
: >"$R/etc/machine-id"

if [ "$ARCH" = arm64 ]; then
    # build-box.sh diverted update-initramfs (initramfs.sh builds the initramfs);
    # the box's own dpkg gets the real one back
    rm -f "$R/usr/sbin/update-initramfs"
    chroot "$R" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
fi
if [ -n "$WHEELS" ]; then
    # the venv conformance.sh uses, with every dependency already in it: the guest
    # only installs the checkout itself
    mkdir -p "$R/var/tmp/bsdprocfs-wheels"
    cp -a "$WHEELS/." "$R/var/tmp/bsdprocfs-wheels/"
    chroot "$R" python3 -m venv /var/tmp/bsdprocfs-venv
    chroot "$R" /var/tmp/bsdprocfs-venv/bin/python -m pip install -q --no-index \
        --disable-pip-version-check --find-links /var/tmp/bsdprocfs-wheels \
        -r /var/tmp/bsdprocfs-wheels/requirements.txt
fi
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/tmp/* 2>/dev/null || true
echo "customized $ARCH Debian $RELEASE"
