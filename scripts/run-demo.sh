#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-demo.sh - `make run`, inside the test VM: load tcm_virt, configure a
# LUN with targetcli exactly as for C vhost_scsi, show the configuration,
# boot a nested guest with unmodified QEMU -device vhost-scsi-pci on it (the
# guest's virtio_scsi driver finds the disk: sg_inq, sg_readcap, mkfs.ext4,
# a file written and read back, e2fsck), tear it down.
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
step() { echo; echo "### $*"; }

step "insmod tcm_virt.ko"
tcm_load || fail "insmod"
dmesg | grep 'tcm_virt: '
ls -l /dev/vhost-scsi

step "targetcli: a 32 MiB fileio LUN behind a vhost target"
rm -f /tmp/disk0.img
tcli_batch "/backstores/fileio create disk0 /tmp/disk0.img 32M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
	"ls"
[ -d $CFG/vhost/$WWPN/tpgt_1/lun/lun_0 ] || fail "the LUN was not created"

step "configfs"
find $CFG/vhost -maxdepth 5 \( -name 'nexus' -o -name 'lun_*' -o -name 'tpgt_*' \) | sort
echo "nexus: $(cat $CFG/vhost/$WWPN/tpgt_1/nexus)"
cat $CFG/vhost/version

step "a nested guest: qemu-system-x86_64 -device vhost-scsi-pci,wwpn=$WWPN"
{ echo "DISKS=sda"; cat "$TOP/tools/testing/guest/disk-roundtrip.sh"; } > /tmp/guest.sh
nested_run $WWPN /tmp/guest.sh || fail "the nested guest"
dmesg | grep 'tcm_virt: ' | tail -5

step "teardown"
tcli_batch "/vhost delete $WWPN" "/backstores/fileio delete disk0"
rmdir $CFG/vhost
rmmod tcm_virt && echo "tcm_virt unloaded" || fail "rmmod"
echo
echo "make run: OK"
