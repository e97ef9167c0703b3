#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mk-initramfs.sh - initramfs for a nested (L2) guest: busybox, sg3_utils,
# mkfs.ext4, e2fsck and extlinux, and
# a guest script.  The guest's /init mounts the basics, runs the script,
# prints 'L2-RESULT: PASS' or 'L2-RESULT: FAIL rc=N' on the serial console,
# and reboots (run QEMU with -no-reboot so that it exits).
#
# usage: scripts/mk-initramfs.sh OUT.cpio.gz GUEST_SCRIPT [FILE...]
#   FILEs are copied to /payload/ in the initramfs.
set -euo pipefail
out=$(realpath -m "$1")
script=$2
shift 2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d"/{bin,sbin,proc,sys,dev,tmp,etc,lib,lib64,usr/bin}
cp /bin/busybox "$d/bin/busybox"
# The applet links are made by the guest's init (busybox --install): one
# symlink per applet here costs minutes under emulation.
ln -s busybox "$d/bin/sh"
# sg3_utils and what they link against
for b in sg_inq sg_readcap sg_luns sg_vpd sg_turs sg_reset sg_persist sg_raw \
	mkfs.ext4 e2fsck extlinux; do
	p=$(command -v "$b") || continue
	cp "$p" "$d/usr/bin/"
	ldd "$p" | grep -o '/[^ ]*' | while read -r lib; do
		mkdir -p "$d$(dirname "$lib")"
		cp -n "$lib" "$d$lib"
	done
done
cp "$script" "$d/guest.sh"
if [ $# -gt 0 ]; then
	mkdir -p "$d/payload"
	cp "$@" "$d/payload/"
fi
cat > "$d/init" <<'EOS'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "L2: up after $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r)"
sh /guest.sh
rc=$?
if [ $rc = 0 ]; then echo "L2-RESULT: PASS"; else echo "L2-RESULT: FAIL rc=$rc"; fi
sync
reboot -f
EOS
chmod +x "$d/init"
(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
