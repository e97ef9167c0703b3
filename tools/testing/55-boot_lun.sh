#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Booting a guest from a tcm_virt LUN (SAN boot).  The LUN's backing file
# is made bootable here, in the test VM (a loop device: ext2, the tiny
# kernel and an initramfs, extlinux in the boot sector; a guest writing a
# file system through tcm_virt is 50-nested_guest's part).  A nested guest
# starts with no -kernel: SeaBIOS's virtio-scsi driver finds the LUN
# (bootindex=0, boot_tpgt=1), reads its boot sector, extlinux loads the
# kernel from it, and the kernel's init prints a marker with its command
# line.  The LUN is set up through configfs (50-nested_guest does it
# with targetcli).  The boot runs with busy polling on (poll_us).
. "$TOP/tools/testing/lib.sh"

check tcm_load
rm -f /tmp/bootlun.img
# What the LUN will boot: the tiny kernel and an initramfs whose script
# prints the marker, on an ext2 file system on the whole disk with extlinux
# in its boot sector, booting them with the serial console.
echo 'echo "L2-BOOTED-FROM-LUN cmdline: $(cat /proc/cmdline)"' > /tmp/boot-guest.sh
L2_SLIM=1 "$TOP/scripts/mk-initramfs.sh" /tmp/initrd /tmp/boot-guest.sh || fail "boot initramfs"
truncate -s 32M /tmp/bootlun.img && mkfs.ext4 -q -F -t ext2 /tmp/bootlun.img || fail "mkfs"
mkdir -p /tmp/bootmnt && mount -o loop -t ext2 /tmp/bootlun.img /tmp/bootmnt || fail "mount"
cp "$L2_KDIR/arch/x86/boot/bzImage" /tmp/bootmnt/vmlinuz && cp /tmp/initrd /tmp/bootmnt/ &&
	cat > /tmp/bootmnt/extlinux.conf <<'C'
DEFAULT l2
PROMPT 0
TIMEOUT 0
LABEL l2
  KERNEL /vmlinuz
  INITRD /initrd
  APPEND console=ttyS0 panic=-1 rdinit=/init loglevel=4 no_timer_check pty.legacy_count=0 tcm_virt_boot=lun
C
extlinux --install /tmp/bootmnt > /dev/null || { umount /tmp/bootmnt; fail "extlinux"; }
umount /tmp/bootmnt || fail "umount"
ok "bootable ext2 image: tiny kernel, initramfs, extlinux"
fileio_lun $WWPN bootdisk /tmp/bootlun.img 32 || fail "fileio LUN 0 on /tmp/bootlun.img"
ok "a 32 MiB fileio LUN 0 on $WWPN"

# The boot runs with polling (poll_us=1000, admin-guide.rst "Polling
# before waiting for a kick"): a real client's requests, SeaBIOS's
# virtio-scsi driver's and then the guest kernel's, on rings the worker
# polls after each pass.  The device's statistics file, sampled during
# the boot, counts the polls that found requests.
echo 1000 > /sys/module/tcm_virt/parameters/poll_us || fail "poll_us"
log "L2 boot from the LUN (no -kernel)"
timeout "${L2_TIMEOUT:-900}" qemu-system-x86_64 -accel "$L2_ACCEL" -machine pc -m 256 -smp 1 \
	-nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-boot strict=on \
	-device vhost-scsi-pci,wwpn=$WWPN,boot_tpgt=1,bootindex=0 < /dev/null > /tmp/l2-boot.log 2>&1 &
qpid=$!
sample_polls $WWPN $qpid /tmp/polls-boot
wait $qpid
rc=$?
log "L2 exited rc=$rc"
sed 's/^/  L2| /' /tmp/l2-boot.log | tail -n 30
grep -aq '^L2-BOOTED-FROM-LUN cmdline: .*tcm_virt_boot=lun' /tmp/l2-boot.log ||
	fail "the guest did not boot from the LUN"
grep -aq '^L2-RESULT: PASS' /tmp/l2-boot.log || fail "the booted guest's init failed"
ok "SeaBIOS booted the guest from the tcm_virt LUN: extlinux, kernel, init"
echo 0 > /sys/module/tcm_virt/parameters/poll_us
[[ "$(cat /tmp/polls-boot)" =~ ^polls:\ found=([0-9]+)\ empty=[0-9]+$ ]] &&
	[ "${BASH_REMATCH[1]}" -gt 0 ] ||
	fail "poll_us=1000: no poll found a request of the booting guest ('$(cat /tmp/polls-boot)')"
ok "booted with poll_us=1000: $(cat /tmp/polls-boot) (polls that found the guest's requests without a kick, and those that found none)"

# The configuration goes through configfs: targetcli's own deletions are
# 20-targetcli's part, and a targetcli start costs a minute of a slow VM.
fabric_teardown vhost
check test ! -d $CFG/vhost
backstores_teardown
check rmmod tcm_virt
rm -f /tmp/bootlun.img
