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
# succeeds and the disk works on; the guest's sg_persist reservation
# (Write Exclusive) makes a WRITE from a second initiator on the host (mfi
# on the same TPG) fail with RESERVATION CONFLICT; a pass-through (pscsi)
# LUN 5 shows the host's scsi_debug disk in sg_inq and the TPG's mapping in
# sg_luns.  Block Limits VPD: pass-through LUNs 6 and 7 are a scsi_debug
# optical memory device without B0h behind LIO's loopback adapter, which
# takes 1 MiB per command at most, their host limit lowered to 64 KiB
# through max_sectors_kb; LUN 6, linked with emulate_block_limits on, shows
# that limit in the guest's sg_vpd -p bl and max_sectors_kb, and dd of 2
# MiB blocks works; LUN 7, linked with it off, has no B0h, the guest's
# default limit (above 1 MiB), and the same dd fails.  That controller has
# 1024-entry virtqueues, so that the guest's commands are not cut by its
# segment limit first.  Last, QEMU is SIGKILLed while the guest writes to
# both disks, and the teardown and rmmod must work after it.
. "$TOP/tools/testing/lib.sh"

WWPN2=naa.5001405000000003
check tcm_load
rm -f /tmp/nested0.img /tmp/nested1.img
# A pass-through LUN: a scsi_debug disk of this host as LUN 5 of the second
# target (targetcli's pscsi backstore); a scsi_debug optical memory device,
# which lacks the Block Limits VPD page, behind the loopback adapter, as
# LUNs 6 (emulate_block_limits on) and 7 (off).
PARAM=/sys/module/tcm_virt/parameters/emulate_block_limits
sdebug_mo_disk || fail "scsi_debug optical memory device and disk"
loop_mo 2 || fail "the optical memory device behind the loopback adapter"
sd=$SD_DISK
for d in "${LOOP_SD[@]}"; do
	echo 64 > /sys/block/$d/queue/max_sectors_kb || fail "max_sectors_kb of $d"
done
# One targetcli start (a minute of a slow VM) for all of it but LUN 7,
# which is linked through configfs with the parameter off (the parameter
# is read when a LUN is linked).
tcli_batch "/backstores/fileio create disk0 /tmp/nested0.img 32M" \
	"/backstores/fileio create disk1 /tmp/nested1.img 32M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
	"/vhost create $WWPN2" \
	"/vhost/$WWPN2/tpg1/luns create /backstores/fileio/disk1" \
	"/backstores/pscsi create sdbg /dev/$sd" \
	"/vhost/$WWPN2/tpg1/luns create /backstores/pscsi/sdbg lun=5" \
	"/backstores/pscsi create mo6 /dev/${LOOP_SD[0]}" \
	"/vhost/$WWPN2/tpg1/luns create /backstores/pscsi/mo6 lun=6" \
	"/backstores/pscsi create mo7 /dev/${LOOP_SD[1]}"
for w in $WWPN $WWPN2; do
	[ -n "$(find $CFG/vhost/$w/tpgt_1/lun/lun_0 -maxdepth 1 -type l)" ] || fail "$w: no LUN 0"
done
ok "targetcli configured two vhost targets with a LUN each"
mo7=""
for d in $CFG/core/pscsi_*/mo7; do [ -d "$d" ] && mo7=$d; done
[ -n "$mo7" ] || fail "targetcli made no pscsi backstore mo7"
echo N > $PARAM || fail "emulate_block_limits off"
mkdir $CFG/vhost/$WWPN2/tpgt_1/lun/lun_7 && ln -s "$mo7" $CFG/vhost/$WWPN2/tpgt_1/lun/lun_7/mo7 ||
	fail "LUN 7 on $mo7"
echo Y > $PARAM || fail "emulate_block_limits on"
for l in 5 6 7; do
	[ -n "$(find $CFG/vhost/$WWPN2/tpgt_1/lun/lun_$l -maxdepth 1 -type l)" ] || fail "no pscsi LUN $l"
done
ok "targetcli: pscsi backstores on /dev/$sd, /dev/${LOOP_SD[0]}, /dev/${LOOP_SD[1]} as LUNs 5, 6 (targetcli), 7 (configfs) of $WWPN2"

{
	# Five disks (probed asynchronously): the two LIO fileio disks get
	# the round trip, the reset and the reservation; the pscsi ones their
	# own checks.
	cat <<'G'
n=0
while [ "$(ls -d /sys/block/sd* 2>/dev/null | wc -l)" -lt 5 ] && [ $n -lt 600 ]; do sleep 1; n=$((n + 1)); done
DISKS=$(for d in /sys/block/sd*; do sg_inq /dev/${d##*/} 2>/dev/null | grep -q LIO-ORG && echo ${d##*/}; done)
echo "L2-DISKS $DISKS"
G
	cat "$TOP/tools/testing/guest/disk-roundtrip.sh"
	# The guest driver's device reset is a LOGICAL UNIT RESET on the
	# control queue; the disk works on afterwards.
	echo 'set -- $DISKS; r=$1'
	echo 'sg_reset -d /dev/$r; echo "L2-RESET rc=$?"'
	echo 'dd if=/dev/$r of=/dev/null bs=64k count=16 2>/dev/null; echo "L2-AFTER-RESET rc=$?"'
	cat "$TOP/tools/testing/guest/reservation.sh"
	cat "$TOP/tools/testing/guest/passthrough.sh"
	cat "$TOP/tools/testing/guest/block-limits.sh"
	# Last, the kill: direct writes in flight on both LIO disks (4 MiB
	# in, away from the pattern the host checks) when the host SIGKILLs
	# QEMU.  The verdict is printed first: the guest does not end.
	cat <<'G'
for d in $DISKS; do
	(while :; do dd if=/dev/zero of=/dev/$d bs=64k count=32 seek=64 oflag=direct 2>/dev/null; done) &
done
sleep 2
echo "L2-RESULT: PASS"
echo "L2-KILL-READY"
sleep 120
G
} > /tmp/guest.sh
# The host's initiator: once the guest holds its reservation, a WRITE
# (RESERVATION CONFLICT expected), then REGISTER key 0xdd, which the guest
# waits for.
MFI="${MFI_BIN:-$TOP/tools/target/release/mfi} --wwpn $WWPN"
rm -f /tmp/l2.log /tmp/l2-mfi-*.out
(
	end=$((SECONDS + 900 * TIME_SCALE))
	while [ $SECONDS -lt $end ]; do
		has_line /tmp/l2.log L2-PR-HELD && break
		has_line /tmp/l2.log L2-RESULT && exit 1
		nap 1
	done
	$MFI cdb 0 2a000000700000000100 data "$(printf '%01024d' 0)" > /tmp/l2-mfi-w.out 2>&1
	$MFI cdb 0 5f000000000000001800 data "$(printf '%032x%016x' 0xdd 0)" > /tmp/l2-mfi-r.out 2>&1
) &
host_pr=$!
# The guest's QEMU SIGKILLed with writes in flight, once the guest is ready
# for it: its vhost devices are released in the exit path with commands
# outstanding; the teardown and rmmod below must then work, with a clean
# kernel log and no leak.
rm -f /tmp/l2-killed
(
	end=$((SECONDS + 900 * TIME_SCALE))
	while [ $SECONDS -lt $end ]; do
		has_line /tmp/l2.log L2-KILL-READY && break
		nap 0.5
	done
	pkill -KILL -f 'qemu-system-x86_64 -accel [a-z]* -machine pc -m 256' && echo killed > /tmp/l2-killed
) &
killer=$!
nested_run $WWPN /tmp/guest.sh \
	-device vhost-scsi-pci,wwpn=$WWPN2,num_queues=4,worker_per_virtqueue=on,virtqueue_size=1024
rc=$?
kill $host_pr $killer 2>/dev/null
wait $host_pr $killer
[ $rc = 0 ] || fail "nested_run"
ok "nested_run: the guest passed"
[ -e /tmp/l2-killed ] || fail "the guest's QEMU was not killed with writes in flight"
ok "the guest's QEMU SIGKILLed with direct writes in flight on both disks"
for i in 0 1; do
	want=$(tr -d '\r' < /tmp/l2.log | sed -n "s/^L2-PATTERN sd[a-z]* disk$i \([0-9a-f]*\).*/\1/p")
	got=$(dd if=/tmp/nested$i.img bs=64k skip=16 count=4 2>/dev/null | md5sum | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "disk$i: backing file has '$got', guest wrote '$want'"
	ok "disk$i backing file holds what the guest wrote"
done
grep -aq '^L2-RESET rc=0' /tmp/l2.log || fail "sg_reset -d in the guest failed"
ok "the guest's sg_reset -d (LOGICAL UNIT RESET) succeeded"
grep -aq '^L2-AFTER-RESET rc=0' /tmp/l2.log || fail "I/O after the reset failed"
ok "I/O after the reset"
cat /tmp/l2-mfi-w.out /tmp/l2-mfi-r.out
grep -q 'scsi_status=0x18' /tmp/l2-mfi-w.out ||
	fail "host WRITE under the guest's reservation: $(cat /tmp/l2-mfi-w.out)"
grep -q 'cmd_status=0x00' /tmp/l2-mfi-r.out || fail "host REGISTER: $(cat /tmp/l2-mfi-r.out)"
grep -aq '^L2-PR-CLEARED' /tmp/l2.log || fail "the guest did not see the host's key"
ok "guest sg_persist reservation: the host's second initiator got RESERVATION CONFLICT"
grep -aq '^L2-PASSTHROUGH sd[a-z]* ok' /tmp/l2.log || fail "the guest's pass-through checks"
ok "guest: sg_inq of the pscsi LUN shows the host's scsi_debug, sg_luns lists LUN 0 and 5"
l2() { tr -d '\r' < /tmp/l2.log | grep -a "^$1" | head -1; }
l2 L2-BL-
[[ "$(l2 L2-BL-ON-VPD)" == *"rc=0"*"Maximum transfer length: 128 blocks"* ]] ||
	fail "LUN 6: sg_vpd -p bl: '$(l2 L2-BL-ON-VPD)', expected 128 blocks"
ok "guest: sg_vpd -p bl of LUN 6 shows the host's limit, 128 blocks (64 KiB)"
[ "$(l2 L2-BL-ON-MAXKB)" = "L2-BL-ON-MAXKB 64" ] ||
	fail "LUN 6: '$(l2 L2-BL-ON-MAXKB)', expected max_sectors_kb 64"
ok "guest: max_sectors_kb of LUN 6 follows it (64)"
[ "$(l2 L2-BL-ON-DD)" = "L2-BL-ON-DD rc=0" ] || fail "LUN 6: dd of 2 MiB blocks: '$(l2 L2-BL-ON-DD)'"
ok "guest: dd bs=2M (direct) to and from LUN 6 succeeds, data read back equal"
[[ "$(l2 L2-BL-OFF-VPD)" == "L2-BL-OFF-VPD rc="[1-9]* ]] ||
	fail "LUN 7: sg_vpd -p bl: '$(l2 L2-BL-OFF-VPD)', expected a failure"
offkb=$(l2 L2-BL-OFF-MAXKB | cut -d' ' -f2)
[ -n "$offkb" ] && [ "$offkb" -gt 1024 ] || fail "LUN 7: max_sectors_kb '$offkb', expected above 1024"
ok "guest: LUN 7 (emulate_block_limits off) has no B0h, max_sectors_kb $offkb"
[[ "$(l2 L2-BL-OFF-DD)" == "L2-BL-OFF-DD rc="[1-9]* ]] ||
	fail "LUN 7: dd of 2 MiB blocks: '$(l2 L2-BL-OFF-DD)', expected a failure"
ok "guest: the same dd on LUN 7 fails"
# The configuration goes through configfs: targetcli's own deletions are
# 20-targetcli's part, and a targetcli start costs a minute of a slow VM.
fabric_teardown vhost
check test ! -d $CFG/vhost
backstores_teardown
check rmmod tcm_virt
check loop_mo_teardown
check rmmod_idle scsi_debug
