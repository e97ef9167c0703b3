#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A real guest on tcm_virt: unmodified QEMU vhost-scsi-pci boots a nested
# Linux guest against two LUNs configured with targetcli, one device with
# QEMU's defaults and one with num_queues=4 and worker_per_virtqueue=on.
# The tiny L2 kernel is uniprocessor, so the guest driver submits on one of
# the 4 request queues; QEMU still sets up all 4 and a worker for each.
# In the guest the virtio_scsi driver finds both disks; sg_inq, sg_readcap,
# mkfs.ext4, a file written, unmount, fsck, mount and read back, on each;
# what the guest wrote is found in the backing file on the host; the
# guest's sg_reset -d (a LOGICAL UNIT RESET through the shared layer)
# succeeds and the disk works on.
. "$TOP/tools/testing/lib.sh"

WWPN2=naa.5001405000000003
check tcm_load
rm -f /tmp/nested0.img /tmp/nested1.img
tcli_batch "/backstores/fileio create disk0 /tmp/nested0.img 32M" \
	"/backstores/fileio create disk1 /tmp/nested1.img 32M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
	"/vhost create $WWPN2" \
	"/vhost/$WWPN2/tpg1/luns create /backstores/fileio/disk1"
for w in $WWPN $WWPN2; do
	[ -n "$(find $CFG/vhost/$w/tpgt_1/lun/lun_0 -maxdepth 1 -type l)" ] || fail "$w: no LUN 0"
done
ok "targetcli configured two vhost targets with a LUN each"

{
	echo "DISKS='sda sdb'"
	cat "$TOP/tools/testing/guest/disk-roundtrip.sh"
	# The guest driver's device reset is a LOGICAL UNIT RESET on the
	# control queue; the disk works on afterwards.
	echo 'sg_reset -d /dev/sda; echo "L2-RESET rc=$?"'
	echo 'dd if=/dev/sda of=/dev/null bs=64k count=16 2>/dev/null; echo "L2-AFTER-RESET rc=$?"'
} > /tmp/guest.sh
check nested_run $WWPN /tmp/guest.sh \
	-device vhost-scsi-pci,wwpn=$WWPN2,num_queues=4,worker_per_virtqueue=on
for i in 0 1; do
	want=$(tr -d '\r' < /tmp/l2.log | sed -n "s/^L2-PATTERN sd[ab] disk$i \([0-9a-f]*\).*/\1/p")
	got=$(dd if=/tmp/nested$i.img bs=64k skip=16 count=4 2>/dev/null | md5sum | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "disk$i: backing file has '$got', guest wrote '$want'"
	ok "disk$i backing file holds what the guest wrote"
done
grep -aq '^L2-RESET rc=0' /tmp/l2.log || fail "sg_reset -d in the guest failed"
ok "the guest's sg_reset -d (LOGICAL UNIT RESET) succeeded"
grep -aq '^L2-AFTER-RESET rc=0' /tmp/l2.log || fail "I/O after the reset failed"
ok "I/O after the reset"
tcli_batch "/vhost delete $WWPN" "/vhost delete $WWPN2" \
	"/backstores/fileio delete disk0" "/backstores/fileio delete disk1"
check test ! -d $CFG/vhost/$WWPN
check rmdir $CFG/vhost
check rmmod tcm_virt
