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
# segment limit first.  LUN hotplug as the guest sees it: the guest's QEMU
# is the newer one (QEMU_NEW, scripts/qemu-new.sh: 11.x) with hotplug=on on
# both controllers, so that its virtio_scsi negotiates
# VIRTIO_SCSI_F_HOTPLUG; a LUN linked with targetcli on both targets while
# the guest runs appears in the guest without a rescan (its data read), an
# unlinked one vanishes; 82 events while the guest's QEMU is stopped
# (more than the guest's buffers and the device's queue) make it rescan
# on EVENTS_MISSED, and it ends with the LUNs there are (guest/hotplug.sh).  ABORT TASK from the
# guest's own driver: faults injected into the host's scsi_debug disk
# behind LUN 5 make the guest's error handler send START STOP UNIT, which
# is never answered, then abort it; the trace shows the tag aborted and the
# guest reads on (guest/abort.sh).  Last, QEMU is SIGKILLed
# while the guest writes to both disks, and the teardown and rmmod must
# work after it.  (The system's QEMU 10.0 drives 22-install_restore,
# 55-boot_lun and 57-migration.)
. "$TOP/tools/testing/lib.sh"

WWPN2=naa.5001405000000003
[ -n "${QEMU_NEW:-}" ] && [ -x "$QEMU_NEW" ] ||
	fail "no newer QEMU (QEMU_NEW='${QEMU_NEW:-}'): 'make deps' fetches it (scripts/qemu-new.sh)"
L2_QEMU=$QEMU_NEW
L2_VHOST_OPTS=hotplug=on
check tcm_load
rm -f /tmp/nested0.img /tmp/nested1.img /tmp/nested2.img
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
	"/backstores/fileio create disk2 /tmp/nested2.img 8M" \
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
	cat "$TOP/tools/testing/guest/abort.sh"
	cat "$TOP/tools/testing/guest/hotplug.sh"
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
# ABORT TASK from the guest's own driver (guest/abort.sh): on the host
# disk behind pscsi LUN 5, scsi_debug answers the next READ(16) NOT READY,
# INITIALIZING COMMAND REQUIRED (04h/02h) and never the next START STOP
# UNIT; nothing before the guest's abort step sends either.  The trace
# records the START STOP UNIT the guest's error handler sends and the
# guest's ABORT TASK (tmf events, and the commands filtered on the opcode).
sdebug_inject $sd "2 -1 0x88 0 0 2 2 4 2" "0 -1 0x1b" ||
	fail "scsi_debug error injection on $sd"
ok "scsi_debug $sd: the next READ(16) NOT READY 04h/02h, the next START STOP UNIT unanswered"
TR=/sys/kernel/tracing
[ -d $TR/events ] || mount -t tracefs none $TR || fail "no tracefs"
echo > $TR/trace
for e in cmd_submit cmd_complete; do
	echo 'opcode == 0x1b' > $TR/events/tcm_virt/tcm_virt_$e/filter || fail "trace filter"
done
for e in cmd_submit cmd_complete tmf_start tmf_done; do
	echo 1 > $TR/events/tcm_virt/tcm_virt_$e/enable || fail "trace event $e"
done
echo 1 > $TR/tracing_on
# Hotplug: what the host does when the guest says it is ready for it
# (guest/hotplug.sh).  One targetcli, started when the guest is ready,
# reads the link and unlink commands from a pipe (a start costs up to a
# minute of a slow VM); the flood goes through configfs while the guest's
# QEMU is stopped (SIGSTOP), so that the guest cannot take the events as
# they come (it does, on kvm) and they overflow its 8 buffers and the
# device's queue of 64.
HP_MARK=tcm_virt-hotplug-lun3-ok
printf '%s' "$HP_MARK" | dd of=/tmp/nested2.img conv=notrunc status=none || fail "disk2 marker"
disk2=$(echo $CFG/core/fileio_*/disk2)
[ -d "$disk2" ] || fail "targetcli made no fileio backstore disk2"
rm -f /tmp/l2-hp-*.out /tmp/tcli.fifo /tmp/l2-hp-done
(
	# the killer below waits for this, so that the devices are still
	# there when their statistics are read
	trap 'touch /tmp/l2-hp-done' EXIT
	end=$((SECONDS + 1800 * TIME_SCALE))
	l2_at L2-HP-READY $end || exit 1
	mkfifo /tmp/tcli.fifo || exit 1
	targetcli < /tmp/tcli.fifo > /tmp/l2-hp-tcli.out 2>&1 &
	exec {tc}> /tmp/tcli.fifo
	echo "/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk2 lun=3" >&$tc
	echo "/vhost/$WWPN2/tpg1/luns create /backstores/fileio/disk2 lun=3" >&$tc
	l2_at L2-HP-ADDED $end || exit 1
	echo "/vhost/$WWPN/tpg1/luns delete 3" >&$tc
	echo "/vhost/$WWPN2/tpg1/luns delete 3" >&$tc
	exec {tc}>&-
	wait
	l2_at L2-HP-REMOVED $end || exit 1
	t=$CFG/vhost/$WWPN/tpgt_1/lun
	qpids=$(pgrep -f 'qemu-system-x86_64 .*-accel [a-z]* -machine pc -m 256')
	[ -n "$qpids" ] || exit 1
	# shellcheck disable=SC2086 # a list of pids
	kill -STOP $qpids
	# The churn is on LUN 11 and the links that stay are LUNs 9 and 10.
	# With the churn on LUN 9 itself one run ended with the guest showing
	# 0 10: its log had LUN 9's disk failing its cache mode query and
	# three removals of LUN 9 it did not find, which reads as the guest's
	# SCSI midlayer handling an add while the removal of the same LUN was
	# still running; that is the guest's timing, not what this checks.
	for i in {1..40}; do
		mkdir $t/lun_11 && ln -s $disk2 $t/lun_11/d && rm $t/lun_11/d && rmdir $t/lun_11 || break
	done
	mkdir $t/lun_9 && ln -s $disk2 $t/lun_9/d && mkdir $t/lun_10 && ln -s $disk2 $t/lun_10/d &&
		echo flooded > /tmp/l2-hp-flood.out
	# shellcheck disable=SC2086
	kill -CONT $qpids
	l2_at L2-HP-FINAL $end || exit 1
	# the first controller's device: its events line
	for f in /sys/kernel/debug/tcm_virt/vhost-*; do
		grep -qE "^endpoint: $WWPN( |\$)" "$f" && grep '^events:' "$f" > /tmp/l2-hp-events.out
	done
) &
host_hp=$!
# The guest's QEMU SIGKILLed with writes in flight, once the guest is ready
# for it: its vhost devices are released in the exit path with commands
# outstanding; the teardown and rmmod below must then work, with a clean
# kernel log and no leak.
rm -f /tmp/l2-killed
(
	end=$((SECONDS + 900 * TIME_SCALE))
	while [ $SECONDS -lt $end ]; do
		has_line /tmp/l2.log L2-KILL-READY && [ -e /tmp/l2-hp-done ] && break
		nap 0.5
	done
	pkill -KILL -f 'qemu-system-x86_64 .*-accel [a-z]* -machine pc -m 256' && echo killed > /tmp/l2-killed
) &
killer=$!
nested_run $WWPN /tmp/guest.sh \
	-device vhost-scsi-pci,wwpn=$WWPN2,num_queues=4,worker_per_virtqueue=on,virtqueue_size=1024,hotplug=on
rc=$?
kill $host_pr $killer $host_hp 2>/dev/null
wait $host_pr $killer $host_hp
grep 'tcm_virt_' $TR/trace > /tmp/l2-trace
for e in cmd_submit cmd_complete tmf_start tmf_done; do
	echo 0 > $TR/events/tcm_virt/tcm_virt_$e/enable
done
for e in cmd_submit cmd_complete; do
	echo 0 > $TR/events/tcm_virt/tcm_virt_$e/filter
done
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
l2_line L2-BL-
[[ "$(l2_line L2-BL-ON-VPD)" == *"rc=0"*"Maximum transfer length: 128 blocks"* ]] ||
	fail "LUN 6: sg_vpd -p bl: '$(l2_line L2-BL-ON-VPD)', expected 128 blocks"
ok "guest: sg_vpd -p bl of LUN 6 shows the host's limit, 128 blocks (64 KiB)"
[ "$(l2_line L2-BL-ON-MAXKB)" = "L2-BL-ON-MAXKB 64" ] ||
	fail "LUN 6: '$(l2_line L2-BL-ON-MAXKB)', expected max_sectors_kb 64"
ok "guest: max_sectors_kb of LUN 6 follows it (64)"
[ "$(l2_line L2-BL-ON-DD)" = "L2-BL-ON-DD rc=0" ] || fail "LUN 6: dd of 2 MiB blocks: '$(l2_line L2-BL-ON-DD)'"
ok "guest: dd bs=2M (direct) to and from LUN 6 succeeds, data read back equal"
[[ "$(l2_line L2-BL-OFF-VPD)" == "L2-BL-OFF-VPD rc="[1-9]* ]] ||
	fail "LUN 7: sg_vpd -p bl: '$(l2_line L2-BL-OFF-VPD)', expected a failure"
offkb=$(l2_line L2-BL-OFF-MAXKB | cut -d' ' -f2)
[ -n "$offkb" ] && [ "$offkb" -gt 1024 ] || fail "LUN 7: max_sectors_kb '$offkb', expected above 1024"
ok "guest: LUN 7 (emulate_block_limits off) has no B0h, max_sectors_kb $offkb"
[[ "$(l2_line L2-BL-OFF-DD)" == "L2-BL-OFF-DD rc="[1-9]* ]] ||
	fail "LUN 7: dd of 2 MiB blocks: '$(l2_line L2-BL-OFF-DD)', expected a failure"
ok "guest: the same dd on LUN 7 fails"
# ABORT TASK
tr -d '\r' < /tmp/l2.log | grep -a '^L2-AB-'
cat /tmp/l2-trace
[[ "$(l2_line L2-AB-READY)" == *" allow_restart=1 eh_timeout=3" ]] || fail "guest: '$(l2_line L2-AB-READY)'"
[[ "$(l2_line L2-AB-FIRST)" == "L2-AB-FIRST rc="[1-9]* ]] ||
	fail "guest: the READ(16) the host made fail: '$(l2_line L2-AB-FIRST)'"
ok "guest: READ(16) of LUN 5 ended NOT READY (pscsi passed scsi_debug's sense), its error handler started"
tag=$(sed -n 's/.*tcm_virt_cmd_submit: .* tag=\(0x[0-9a-f]*\) lun=5 opcode=0x1b .*/\1/p' /tmp/l2-trace)
[ "$(echo $tag | wc -w)" = 1 ] || fail "START STOP UNITs of LUN 5 in the trace: '$tag', expected one"
ok "the guest's error handler sent START STOP UNIT to LUN 5, tag $tag"
grep -q "tcm_virt_tmf_start: vhost-[0-9]* function=abort_task lun=5 ref_tag=$tag$" /tmp/l2-trace ||
	fail "no ABORT TASK of tag $tag from the guest"
lat=$(sed -n "s/.*tcm_virt_tmf_done: vhost-[0-9]* function=abort_task lun=5 ref_tag=$tag outcome=complete latency_ns=\([0-9]*\)$/\1/p" /tmp/l2-trace)
[ -n "$lat" ] || fail "the ABORT TASK of tag $tag not answered FUNCTION COMPLETE"
grep -q "tcm_virt_cmd_complete: vhost-[0-9]* q=[0-9]* tag=$tag lun=5 opcode=0x1b status=0x00 response=2 " /tmp/l2-trace ||
	fail "START STOP UNIT $tag not answered VIRTIO_SCSI_S_ABORTED"
ok "the guest's virtio_scsi sent ABORT TASK for tag $tag (its START STOP UNIT): answered FUNCTION COMPLETE after $((lat / 1000000)) ms, the command VIRTIO_SCSI_S_ABORTED"
[ "$(l2_line L2-AB-AFTER)" = "L2-AB-AFTER rc=0" ] && [ "$(l2_line L2-AB-DD)" = "L2-AB-DD rc=0" ] ||
	fail "guest after the abort: '$(l2_line L2-AB-AFTER)' '$(l2_line L2-AB-DD)'"
ok "guest recovered: READ(16) and reads of LUN 5 work after its error handling"
# Hotplug
# bit 1 of a virtio device's features file: VIRTIO_SCSI_F_HOTPLUG
n=$(tr -d '\r' < /tmp/l2.log | grep -a -c '^L2-FEATURES [^ ]* .1')
[ "$n" = 2 ] || fail "VIRTIO_SCSI_F_HOTPLUG negotiated by $n of the 2 controllers: $(grep -a '^L2-FEATURES' /tmp/l2.log)"
ok "QEMU $("$QEMU_NEW" --version | head -1 | cut -d' ' -f4) hotplug=on: the guest's virtio_scsi negotiated VIRTIO_SCSI_F_HOTPLUG on both controllers"
tr -d '\r' < /tmp/l2.log | grep -a '^L2-HP-'
cat /tmp/l2-hp-tcli.out
[[ "$(l2_line L2-HP-READY)" == "L2-HP-READY A="[0-9]*" B="[0-9]*" A-luns=0 B-luns=0 5 6 7 " ]] ||
	fail "the guest's controllers: '$(l2_line L2-HP-READY)'"
[[ "$(l2_line L2-HP-ADDED)" == "L2-HP-ADDED ok A-luns=0 3 B-luns=0 3 5 6 7 disk=sd"*" data=$HP_MARK" ]] ||
	fail "LUN 3 linked with targetcli on both targets: '$(l2_line L2-HP-ADDED)'"
ok "LUN 3 linked with targetcli on both targets appeared in the guest without a rescan (4 queues on one), its data read"
[ "$(l2_line L2-HP-REMOVED)" = "L2-HP-REMOVED ok A-luns=0 B-luns=0 5 6 7 " ] ||
	fail "LUN 3 unlinked with targetcli: '$(l2_line L2-HP-REMOVED)'"
ok "LUN 3 unlinked with targetcli vanished from the guest"
[ -f /tmp/l2-hp-flood.out ] || fail "the 82 LUN events were not raised"
[ -s /tmp/l2-hp-events.out ] || fail "no events line in the statistics of $WWPN's device"
read -r _ _ _ dropped < /tmp/l2-hp-events.out
[[ $dropped == dropped=[1-9]* ]] || fail "82 events: none dropped: '$(cat /tmp/l2-hp-events.out)'"
[ "$(l2_line L2-HP-FINAL)" = "L2-HP-FINAL A=0 9 10 " ] ||
	fail "after 82 events with events missed the guest has '$(l2_line L2-HP-FINAL)', expected LUNs 0 9 10"
ok "82 events ($(cat /tmp/l2-hp-events.out)): the guest rescanned on EVENTS_MISSED and has LUNs 0 9 10, as the target"
# The configuration goes through configfs: targetcli's own deletions are
# 20-targetcli's part, and a targetcli start costs a minute of a slow VM.
fabric_teardown vhost
check test ! -d $CFG/vhost
backstores_teardown
check rmmod tcm_virt
check loop_mo_teardown
check rmmod_idle scsi_debug
