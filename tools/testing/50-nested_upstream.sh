#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The nested-guest harness against C vhost_scsi configured with targetcli:
# a QEMU vhost-scsi-pci guest finds the LIO disk, sg_inq shows it, and data
# it writes is read back by the guest and found in the backing file.
. "$TOP/tools/testing/lib.sh"

check modprobe vhost_scsi
rm -f /tmp/nested0.img
tcli_batch "/backstores/fileio create disk0 /tmp/nested0.img 16M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0"
check test -d $CFG/vhost/$WWPN/tpgt_1/lun/lun_0

cat > /tmp/guest.sh <<'G'
set -e
ls /sys/bus/scsi/devices/
test -b /dev/sda
sg_inq /dev/sda | tee /tmp/inq
grep -q 'Vendor identification: LIO-ORG' /tmp/inq
sg_readcap /dev/sda | tee /tmp/cap
grep -q 'Last LBA=32767' /tmp/cap
dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null
dd if=/tmp/pat of=/dev/sda bs=64k seek=16 conv=fsync 2>/dev/null
blockdev --flushbufs /dev/sda
dd if=/dev/sda of=/tmp/back bs=64k skip=16 count=16 2>/dev/null
a=$(md5sum < /tmp/pat); b=$(md5sum < /tmp/back)
echo "pattern ${a%% *} readback ${b%% *}"
test "$a" = "$b"
echo "L2-PATTERN ${a%% *}"
G
check nested_run $WWPN /tmp/guest.sh
want=$(sed -n 's/^L2-PATTERN \([0-9a-f]*\).*/\1/p' /tmp/l2.log | tr -d '\r')
got=$(dd if=/tmp/nested0.img bs=64k skip=16 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "backing file has '$got', guest wrote '$want'"
ok "backing file holds what the guest wrote ($got)"
tcli_batch "/vhost delete $WWPN" "/backstores/fileio delete disk0"
check test ! -d $CFG/vhost/$WWPN
check rmdir $CFG/vhost
check rmmod vhost_scsi
