#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Unmodified targetcli/rtslib configure tcm_virt as they do C vhost_scsi:
# create a target, a LUN on a fileio backstore, a nexus; list it; delete it.
# (targetcli takes ~25 s per start under the debug kernel: commands are
# batched, and every step is checked in configfs afterwards.)
. "$TOP/tools/testing/lib.sh"

check tcm_load
T=$CFG/vhost/$WWPN/tpgt_1
rm -f /tmp/disk0.img
out=$(tcli_batch "/backstores/fileio create disk0 /tmp/disk0.img 64M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
	"ls /vhost")
echo "$out"
check test -d $T
check test -L "$(ls -d $T/lun/lun_0/* | grep -v -e alua -e statistics | head -1)"
nexus=$(cat $T/nexus)
case $nexus in naa.*) ok "nexus made by targetcli: $nexus" ;; *) fail "no nexus: '$nexus'" ;; esac
check grep -q "o- $WWPN" <<<"$out"
check grep -q "tpg1 .*\[$nexus" <<<"$out"
check grep -q "lun0 .*fileio/disk0 (/tmp/disk0.img)" <<<"$out"
# the nexus cannot go while a LUN is linked; the module cannot go at all
expect_errno "Device or resource busy" write $T/nexus NULL
check test "$(cat $T/nexus)" = "$nexus"
if rmmod tcm_virt 2>/dev/null; then fail "rmmod succeeded with a live TPG"; fi
ok "rmmod refused with a live TPG"

# a nexus of our choosing (rtslib always generates one itself), listed
check tcli /vhost/$WWPN/tpg1/luns delete lun0
check test ! -d $T/lun/lun_0
check write $T/nexus NULL
expect_errno "No such device" cat $T/nexus
check write $T/nexus $INITIATOR
check test "$(cat $T/nexus)" = "$INITIATOR"
check python3 -c "
from rtslib_fb import RTSRoot
tpg = [t for t in RTSRoot().tpgs if t.parent_target.wwn == '$WWPN'][0]
assert tpg.nexus == '$INITIATOR', tpg.nexus
print('rtslib sees nexus', tpg.nexus)"

out=$(tcli_batch "/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
	"ls /vhost" \
	"/vhost delete $WWPN" \
	"/backstores/fileio delete disk0")
echo "$out"
check grep -q "tpg1 .*\[$INITIATOR" <<<"$out"
check grep -q "Deleted Target $WWPN" <<<"$out"
check test ! -d $CFG/vhost/$WWPN
check test ! -d $CFG/core/fileio_0/disk0
# rtslib leaves the fabric directory; it holds the module until removed
check rmdir $CFG/vhost
check rmmod tcm_virt
