#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mk-initramfs.sh - initramfs for a nested (L2) guest: busybox, sg3_utils,
# mkfs.ext4, e2fsck and extlinux, and a guest script.  The guest's /init
# mounts the basics, runs the script, prints 'L2-RESULT: PASS' or
# 'L2-RESULT: FAIL rc=N' on the serial console, and reboots (run QEMU with
# -no-reboot so that it exits).
#
# usage: scripts/mk-initramfs.sh --base | --base-slim
#          print the path of the base archive (everything but the guest
#          script), building it once into the kernel cache, keyed by this
#          script and the versions of the packages it copies from;
#          --base-slim: busybox alone, for guests that need nothing else
#          (the archives are not compressed; the slim one is the smaller
#          copy into the guest's memory)
#        scripts/mk-initramfs.sh OUT.cpio GUEST_SCRIPT [FILE...]
#          the base followed by a second, small archive with the script
#          (and FILEs, copied to /payload/); the kernel unpacks both.
# env:   L2_INITRAMFS  the base archive (vm.sh builds it on the host, at
#                      native speed, and passes it into the test VM); when
#                      unset or missing, the base is built here.
#        L2_SLIM=1     use the slim base, L2_INITRAMFS_SLIM (likewise).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TCM_VIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcm_virt}
BINS="sg_inq sg_readcap sg_luns sg_vpd sg_turs sg_reset sg_persist sg_raw mkfs.ext4 e2fsck extlinux"

# build_base OUT: the archive without the guest script (BINS empty: slim)
build_base() {
	local out d p b
	out=$(realpath -m "$1")
	d=$(mktemp -d)
	# shellcheck disable=SC2064 # expand $d now
	trap "rm -rf '$d'" RETURN
	mkdir -p "$d"/{bin,sbin,proc,sys,dev,tmp,etc,lib,lib64,usr/bin}
	cp /bin/busybox "$d/bin/busybox"
	# No applet links at all: Debian's static busybox is built with
	# FEATURE_SH_STANDALONE, so its shell runs every applet by name without
	# one (it runs them through /proc/self/exe: the init mounts /proc
	# first, by busybox's path).  Making ~270 links, in the archive or with
	# `busybox --install` in the guest's init, took ~40 s of a slow
	# machine's nested boot.
	ln -s busybox "$d/bin/sh"
	# sg3_utils, e2fsprogs, extlinux and what they link against
	for b in $BINS; do
		p=$(command -v "$b") || continue
		cp "$p" "$d/usr/bin/"
		ldd "$p" | grep -o '/[^ ]*' | while read -r lib; do
			mkdir -p "$d$(dirname "$lib")"
			cp -n "$lib" "$d$lib"
		done
	done
	cat > "$d/init" <<'EOS'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
export PATH=/bin:/sbin:/usr/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# the shell's own read, not cut and uname: a process is seconds of a
# nested guest's early boot
read -r up _ < /proc/uptime
read -r kv < /proc/sys/kernel/osrelease
echo "L2: up after ${up}s, kernel $kv"
sh /guest.sh
rc=$?
if [ $rc = 0 ]; then echo "L2-RESULT: PASS"; else echo "L2-RESULT: FAIL rc=$rc"; fi
sync
reboot -f
EOS
	chmod +x "$d/init"
	# Not compressed: the L2 kernel inflating gzip took 37 s for the slim
	# archive (1.1 MB) on a slow machine; copying the plain one is cheap.
	(cd "$d" && find . | cpio -o -H newc --quiet) > "$out.tmp"
	mv "$out.tmp" "$out"
}

base_key() {
	{
		cat "$0"
		dpkg-query -W -f='${Package} ${Version}\n' busybox-static sg3-utils e2fsprogs \
			extlinux libc6 2>/dev/null || true
	} | sha256sum | cut -c1-12
}

if [ "${1:-}" = --base-slim ]; then
	base=$CACHE/initramfs-slim-$(base_key).cpio
	if [ ! -f "$base" ]; then
		mkdir -p "$CACHE"
		BINS="" build_base "$base"
	fi
	echo "$base"
	exit 0
fi
if [ "${1:-}" = --base ]; then
	base=$CACHE/initramfs-base-$(base_key).cpio
	if [ ! -f "$base" ]; then
		mkdir -p "$CACHE"
		build_base "$base"
	fi
	echo "$base"
	exit 0
fi

out=$(realpath -m "$1")
script=$2
shift 2
if [ "${L2_SLIM:-0}" = 1 ]; then
	base=${L2_INITRAMFS_SLIM:-}
	if [ -z "$base" ] || [ ! -f "$base" ]; then
		base=/tmp/initramfs-slim-$(base_key).cpio
		[ -f "$base" ] || BINS="" build_base "$base"
	fi
else
	base=${L2_INITRAMFS:-}
	if [ -z "$base" ] || [ ! -f "$base" ]; then
		base=/tmp/initramfs-base-$(base_key).cpio
		[ -f "$base" ] || build_base "$base"
	fi
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$script" "$d/guest.sh"
if [ $# -gt 0 ]; then
	mkdir -p "$d/payload"
	cp "$@" "$d/payload/"
fi
{
	cat "$base"
	(cd "$d" && find . ! -name . | cpio -o -H newc --quiet)
} > "$out"
