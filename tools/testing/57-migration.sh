#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Live migration of a running nested guest between two QEMUs, both on the
# same tcm_virt target (vhost-scsi-pci, migratable=on).  The guest writes a
# 64 KiB block every second (guest/migration.sh); while it does, the
# source QEMU migrates it over TCP to a second QEMU started with
# -incoming; QEMU turns dirty logging on (VHOST_F_LOG_ALL) during the
# migration, stops the source's device and starts the destination's on the
# same TPG.  Once the migration has completed, a mark written into the
# backing file tells the guest (which reads it through the LUN) to write
# three more blocks and stop.  Checked: the migration completes, the guest
# wrote blocks on both sides, read every block back on the destination and
# found it intact, and the backing file holds the pattern it wrote first.  The LUN
# is set up through configfs (50-nested_guest does it with targetcli).
. "$TOP/tools/testing/lib.sh"

check tcm_load
rm -f /tmp/mig.img
truncate -s 32M /tmp/mig.img || fail "truncate"
fileio_lun $WWPN migdisk /tmp/mig.img 32 || fail "fileio LUN 0 on /tmp/mig.img"
ok "a 32 MiB fileio LUN 0 on $WWPN"
"$TOP/scripts/mk-initramfs.sh" /tmp/l2-initramfs.cpio "$TOP/tools/testing/guest/migration.sh" ||
	fail "initramfs"
l2() { # LOG-NAME EXTRA-ARGS...: the L2 guest's QEMU, in the background
	local name=$1
	shift
	l2_qemu /tmp/l2-initramfs.cpio -qmp unix:/tmp/$name.qmp,server=on,wait=off \
		-device vhost-scsi-pci,wwpn=$WWPN,migratable=on "$@" > /tmp/$name.log 2>&1 &
}
rm -f /tmp/mig-src.* /tmp/mig-dst.*
log "L2 boot (source)"
l2 mig-src
src=$!
l2 mig-dst -incoming tcp:127.0.0.1:4444
dst=$!
l2_wait /tmp/mig-src.log L2-MIG-READY $src 600 || fail "the source guest did not get ready"
log "migrating"
qmp_migrate /tmp/mig-src.qmp tcp:127.0.0.1:4444 || fail "the migration"
ok "migration completed"
printf MIGRATED | dd of=/tmp/mig.img bs=1M seek=31 conv=notrunc 2>/dev/null || fail "the mark"
qmp /tmp/mig-src.qmp quit > /dev/null
wait $src
wait $dst
log "destination QEMU exited rc=$?"
sed 's/^/  src| /' /tmp/mig-src.log | tr -d '\r' | grep -a 'L2-' | tail -n 5
sed 's/^/  dst| /' /tmp/mig-dst.log | tr -d '\r' | tail -n 12
grep -aq '^L2-MIG-W' /tmp/mig-src.log || fail "no block written before the migration"
grep -aq '^L2-MIG-W' /tmp/mig-dst.log || fail "no block written after the migration"
ok "the guest wrote $(grep -ac '^L2-MIG-W' /tmp/mig-src.log) blocks on the source, $(grep -ac '^L2-MIG-W' /tmp/mig-dst.log) on the destination"
grep -aq '^L2-MIG-MARK' /tmp/mig-dst.log ||
	fail "the guest did not see the host's mark on the destination"
ok "the guest saw the host's mark on the destination: $(tr -d '\r' < /tmp/mig-dst.log | grep -a -m1 '^L2-MIG-MARK')"
grep -aq '^L2-MIG-VERIFY ok' /tmp/mig-dst.log && grep -aq '^L2-RESULT: PASS' /tmp/mig-dst.log ||
	fail "the guest's read-back on the destination"
ok "on the destination the guest read back every block and its pattern intact"
want=$(tr -d '\r' < /tmp/mig-src.log | sed -n 's/^L2-MIG-PATTERN \([0-9a-f]*\).*/\1/p')
got=$(dd if=/tmp/mig.img bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "backing file: '$got', the guest wrote '$want'"
ok "the backing file holds the guest's pattern"

# The configuration goes through configfs: targetcli's own deletions are
# 20-targetcli's part, and a targetcli start costs a minute of a slow VM.
fabric_teardown vhost
check test ! -d $CFG/vhost
backstores_teardown
check rmmod tcm_virt
rm -f /tmp/mig.img
