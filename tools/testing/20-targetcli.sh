#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Unmodified targetcli/rtslib configure tcm_virt as they do C vhost_scsi:
# create a target, a LUN on a fileio backstore, a nexus; list it; delete it.
. "$TOP/tools/testing/lib.sh"

check tcm_load
T=$CFG/vhost/$WWPN/tpgt_1
rm -f /tmp/disk0.img
check tcli /backstores/fileio create disk0 /tmp/disk0.img 64M
check tcli /vhost create $WWPN
check test -d $T
nexus=$(cat $T/nexus)
echo "nexus made by targetcli: $nexus"
case $nexus in naa.*) ok "nexus $nexus" ;; *) fail "no nexus: '$nexus'" ;; esac
check tcli /vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0
check test -L "$(ls -d $T/lun/lun_0/* | grep -v -e alua -e statistics | head -1)"
out=$(tcli ls /vhost)
echo "$out"
check grep -q "$WWPN" <<<"$out"
check grep -q "$nexus" <<<"$out"
check grep -q "lun0.*fileio/disk0" <<<"$out"
# the nexus cannot go while a LUN is linked; the module cannot go at all
expect_errno "Device or resource busy" write $T/nexus NULL
check test "$(cat $T/nexus)" = "$nexus"
if rmmod tcm_virt 2>/dev/null; then fail "rmmod succeeded with a live TPG"; fi
ok "rmmod refused with a live TPG"
check tcli /vhost/$WWPN/tpg1/luns delete lun0
# a nexus of our choosing (rtslib always generates one itself), listed
check write $T/nexus NULL
expect_errno "No such device" cat $T/nexus
check write $T/nexus $INITIATOR
check test "$(cat $T/nexus)" = "$INITIATOR"
check grep -q "tpg1 .*\[$INITIATOR" <(tcli ls /vhost/$WWPN)
check python3 -c "
from rtslib_fb import RTSRoot
tpg = [t for t in RTSRoot().tpgs if t.parent_target.wwn == '$WWPN'][0]
assert tpg.nexus == '$INITIATOR', tpg.nexus
print('rtslib sees nexus', tpg.nexus)"
check tcli /vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0
check tcli /vhost delete $WWPN
check test ! -d $CFG/vhost/$WWPN
check tcli /backstores/fileio delete disk0
check rmmod tcm_virt
