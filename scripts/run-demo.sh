#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-demo.sh - `make run`, inside the test VM: load tcm_virt, configure a
# LUN with targetcli exactly as for C vhost_scsi, show the configuration,
# boot a nested guest with unmodified QEMU -device vhost-scsi-pci on it (the
# guest's virtio_scsi driver finds the disk: sg_inq, sg_readcap, mkfs.ext4,
# a file written and read back, e2fsck; its kernel's lines about the
# disk), what tcm_virt saw of it (the guest's commands by opcode, from a
# tracepoint), tear it down.
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
step() { echo; echo "### $*"; }

demo_setup /dev/vhost-scsi ""

step "configfs"
find $CFG/vhost -maxdepth 5 \( -name 'nexus' -o -name 'lun_*' -o -name 'tpgt_*' \) | sort
echo "nexus: $(cat $CFG/vhost/$WWPN/tpgt_1/nexus)"
cat $CFG/vhost/version

step "a nested guest: qemu-system-x86_64 -device vhost-scsi-pci,wwpn=$WWPN"
echo "Its console follows (L2| lines): the guest kernel finding the disk,"
echo "then sg_inq, sg_readcap, mkfs.ext4, a file written, e2fsck, read back."
# The guest kernel's own lines about the controller and the disk (its
# console is at loglevel 4, which hides them).
{
	echo "DISKS=sda"
	echo "dmesg | grep -E 'virtio_scsi|scsi host|scsi [0-9]+:|sd [0-9]+:' | sed 's/^/guest kernel: /'"
	cat "$TOP/tools/testing/guest/disk-roundtrip.sh"
} > /tmp/guest.sh
TR=/sys/kernel/tracing
[ -d $TR/events ] || mount -t tracefs none $TR
echo > $TR/trace
echo 1 > $TR/events/tcm_virt/tcm_virt_cmd_submit/enable
echo 1 > $TR/tracing_on
nested_run $WWPN /tmp/guest.sh || fail "the nested guest"
echo 0 > $TR/events/tcm_virt/tcm_virt_cmd_submit/enable
dmesg | grep 'tcm_virt: ' | tail -5

step "what tcm_virt saw: the guest's commands by SCSI opcode (tracepoint tcm_virt_cmd_submit)"
grep -o 'opcode=0x[0-9a-f]*' $TR/trace | sort | uniq -c | sort -rn
echo "(0x28/0x2a READ/WRITE(10), 0x12 INQUIRY, 0x00 TEST UNIT READY, 0xa0 REPORT LUNS, 0x9e READ CAPACITY(16), 0x35 SYNCHRONIZE CACHE; Documentation/admin-guide.rst, 'Statistics and tracepoints')"
echo > $TR/trace

step "teardown"
tcli_batch "/vhost delete $WWPN" "/backstores/fileio delete disk0"
rmdir $CFG/vhost
rmmod tcm_virt && echo "tcm_virt unloaded" || fail "rmmod"
echo
echo "make run: OK"
