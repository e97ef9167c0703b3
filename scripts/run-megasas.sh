#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-megasas.sh - `make run-megasas`, inside the test VM: load tcm_virt,
# configure a LUN with targetcli, serve the TPG as a MegaRAID SAS adapter
# (tools/vfu-megasas on /dev/tcm-megasas), boot a nested guest with the
# newer QEMU's unmodified vfio-user-pci on it (the guest's own
# megaraid_sas driver finds the adapter and its disk: sg_inq, sg_readcap,
# mkfs.ext4, a file written and read back, e2fsck), show the adapter's
# statistics, tear it down.
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
step() { echo; echo "### $*"; }
[ -n "${QEMU_NEW:-}" ] && [ -x "$QEMU_NEW" ] ||
	fail "no QEMU 11.x (QEMU_NEW='${QEMU_NEW:-}'): 'make deps' fetches it (scripts/qemu-new.sh)"
VFU=$TOP/tools/target/release/vfu-megasas

demo_setup /dev/tcm-megasas " (the TPG the adapter serves)"

step "vfu-megasas --socket /tmp/mr.sock --wwpn $WWPN --tpgt 1"
rm -f /tmp/mr.sock
$VFU --socket /tmp/mr.sock --wwpn $WWPN --tpgt 1 > /tmp/vfu.log 2>&1 &
vfu=$!
for _ in $(seq "$(scaled 30)"); do [ -S /tmp/mr.sock ] && break; nap 1; done
cat /tmp/vfu.log

step "a nested guest: $("$QEMU_NEW" --version | head -1) -device vfio-user-pci (socket /tmp/mr.sock)"
echo "Its console follows (L2| lines): the guest's megaraid_sas finding the"
echo "adapter and the disk, then sg_inq, sg_readcap, mkfs.ext4, a file written,"
echo "e2fsck, read back."
{
	echo "n=0; while [ ! -b /dev/sda ] && [ \$n -lt 120 ]; do sleep 1; n=\$((n + 1)); done"
	echo "DISKS=sda"
	echo "dmesg | grep -E 'megaraid_sas|megasas|scsi host|scsi [0-9]+:|sd [0-9]+:' | sed 's/^/guest kernel: /'"
	cat "$TOP/tools/testing/guest/disk-roundtrip.sh"
	echo 'echo "L2-RESULT: PASS"'
} > /tmp/guest.sh
"$TOP/scripts/mk-initramfs.sh" /tmp/l2mr-initramfs.cpio /tmp/guest.sh || fail "initramfs"
L2_QEMU=$QEMU_NEW l2_qemu /tmp/l2mr-initramfs.cpio \
	-object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem \
	-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"/tmp/mr.sock"}}' > /tmp/l2mr.log 2>&1
grep -av '^L2-FEATURES' /tmp/l2mr.log | sed 's/^/  L2| /'
grep -aq '^L2-RESULT: PASS' /tmp/l2mr.log || fail "the nested guest"

step "what the adapter saw (debugfs, Documentation/admin-guide.rst 'Statistics and tracepoints')"
cat /sys/kernel/debug/tcm_virt/megasas-* 2> /dev/null
kill $vfu
wait $vfu
grep -v DMA /tmp/vfu.log | tail -n 12

step "teardown"
tcli_batch "/vhost delete $WWPN" "/backstores/fileio delete disk0"
rmdir $CFG/vhost
rmmod tcm_virt && echo "tcm_virt unloaded" || fail "rmmod"
echo
echo "make run-megasas: OK"
