#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Soak (`make soak` only; `make check` kills the nested guest's QEMU once,
# in 50-nested_guest): the nested QEMU with two vhost-scsi-pci devices on
# tcm_virt (targetcli: two targets, a fileio LUN each; QEMU defaults, and
# num_queues=4 with worker_per_virtqueue=on) is SIGKILLed KILL_ROUNDS times
# (default 100), each time while the guest keeps direct writes in flight
# on both disks (from 0 to 2 s after it said so, the delay varying by
# round).  Each round boots a fresh guest on the same targets: the killed
# QEMU's release must have ended (a new SET_ENDPOINT binds the TPG) and the
# guest must find both disks again.  Then `targetcli clearconfig` and
# rmmod; the suite checks the kernel log and kmemleak.
. "$TOP/tools/testing/lib.sh"

ROUNDS=${KILL_ROUNDS:-100}
WWPN2=naa.5001405000000003
check tcm_load
rm -f /tmp/kill0.img /tmp/kill1.img
tcli_batch "/backstores/fileio create kdisk0 /tmp/kill0.img 16M" \
	"/backstores/fileio create kdisk1 /tmp/kill1.img 16M" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/kdisk0" \
	"/vhost create $WWPN2" \
	"/vhost/$WWPN2/tpg1/luns create /backstores/fileio/kdisk1"
cat > /tmp/kill-guest.sh <<'G'
n=0
while [ "$(ls -d /sys/block/sd* 2>/dev/null | wc -l)" -lt 2 ] && [ $n -lt 60 ]; do sleep 1; n=$((n + 1)); done
DISKS=$(for d in /sys/block/sd*; do sg_inq /dev/${d##*/} 2>/dev/null | grep -q LIO-ORG && echo ${d##*/}; done)
echo "L2-DISKS $DISKS"
for d in $DISKS; do
	(while :; do dd if=/dev/zero of=/dev/$d bs=64k count=32 oflag=direct 2>/dev/null; done) &
done
sleep 1
echo "L2-KILL-READY $(echo $DISKS | wc -w)"
sleep 600
G
t0=$(date +%s)
for r in $(seq 1 "$ROUNDS"); do
	# The killer waits for this round's guest: the last round's console
	# (which said L2-KILL-READY) must not be taken for it.
	rm -f /tmp/l2-killed /tmp/l2.log
	delay_ms=$(( (r * 379) % 2000 ))
	(
		for _ in $(seq 1200); do
			grep -aq '^L2-KILL-READY' /tmp/l2.log 2>/dev/null && break
			sleep 0.5
		done
		sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
		pkill -KILL -f 'qemu-system-x86_64 -accel tcg -machine pc -m 256' && echo killed > /tmp/l2-killed
	) &
	killer=$!
	L2_TIMEOUT=900 nested_run $WWPN /tmp/kill-guest.sh \
		-device vhost-scsi-pci,wwpn=$WWPN2,num_queues=4,worker_per_virtqueue=on > /tmp/kill-round.out 2>&1
	wait $killer
	[ -e /tmp/l2-killed ] || { cat /tmp/kill-round.out; fail "round $r: QEMU was not killed (did the guest get ready?)"; }
	grep -aq '^L2-KILL-READY 2' /tmp/l2.log ||
		{ cat /tmp/kill-round.out; fail "round $r: the guest did not find both disks"; }
	echo "round $r: killed ${delay_ms} ms after the guest's writes started;" \
		"$(grep -a -m1 -o 'up after [0-9.]*s' /tmp/l2.log); $(($(date +%s) - t0)) s so far"
done
ok "$ROUNDS rounds: the guest's QEMU SIGKILLed with direct writes in flight on both disks, a new guest found both disks each time"
check targetcli clearconfig confirm=True
check test ! -d $CFG/vhost/$WWPN
[ -d $CFG/vhost ] && check rmdir $CFG/vhost
check rmmod tcm_virt
rm -f /tmp/kill0.img /tmp/kill1.img
