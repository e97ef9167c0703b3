#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Soak (`make soak` only; `make check` kills the nested guest's QEMU once,
# in 50-nested_guest): nested QEMUs with two vhost-scsi-pci devices each on
# tcm_virt (targetcli: a fileio LUN per target; QEMU defaults, and
# num_queues=4 with worker_per_virtqueue=on) are SIGKILLed KILL_ROUNDS
# times in all (default 100), each time while the guest keeps direct
# writes in flight on both disks (from 0 to 2 s after it said so, the delay
# varying by round).  One guest at a time (KILL_GUESTS=2: two side by
# side, each on two targets of its own; under emulation each round then
# takes four times as long, ~175 s per kill against ~100 s), killed and booted
# again: a killed QEMU's release must have ended (its next SET_ENDPOINT
# binds the TPGs) and the new guest must find both disks again.  The
# guests' initramfs is the slim one (busybox alone: the guest finds the
# LIO disks through sysfs).  Then `targetcli clearconfig` and rmmod; the
# suite checks the kernel log and kmemleak.
. "$TOP/tools/testing/lib.sh"

ROUNDS=${KILL_ROUNDS:-100}
# slot S's targets: naa.50014050000000S1 and ...S2
wwpn() { echo "naa.50014050000000$1$2"; }
check tcm_load
cmds=()
for g in 1 2; do
	for t in 1 2; do
		rm -f /tmp/kill$g$t.img
		cmds+=("/backstores/fileio create kdisk$g$t /tmp/kill$g$t.img 16M"
			"/vhost create $(wwpn $g $t)"
			"/vhost/$(wwpn $g $t)/tpg1/luns create /backstores/fileio/kdisk$g$t")
	done
done
tcli_batch "${cmds[@]}"
cat > /tmp/kill-guest.sh <<'G'
n=0
while [ "$(ls -d /sys/block/sd* 2>/dev/null | wc -l)" -lt 2 ] && [ $n -lt 60 ]; do sleep 1; n=$((n + 1)); done
DISKS=$(for d in /sys/block/sd*; do grep -q LIO-ORG $d/device/vendor 2>/dev/null && echo ${d##*/}; done)
echo "L2-DISKS $DISKS"
for d in $DISKS; do
	(while :; do dd if=/dev/zero of=/dev/$d bs=64k count=32 oflag=direct 2>/dev/null; done) &
done
sleep 1
echo "L2-KILL-READY $(echo $DISKS | wc -w)"
sleep 600
G

# slot S FIRST STEP: rounds FIRST, FIRST+STEP, ... up to ROUNDS, one guest
# at a time on slot S's targets; prints a line per round, exits 1 at the
# first failed round
slot() {
	local s=$1 r=$2 step=$3 delay_ms killer t0
	# (a line of its own: `local` expands all its words before assigning)
	local l2log=/tmp/l2-kill$s.log
	t0=$(date +%s)
	while [ "$r" -le "$ROUNDS" ]; do
		# The killer waits for this round's guest: the last round's
		# console (which said L2-KILL-READY) must not be taken for it.
		rm -f /tmp/l2-killed$s "$l2log"
		delay_ms=$(( (r * 379) % 2000 ))
		(
			for _ in $(seq 1200); do
				grep -aq '^L2-KILL-READY' "$l2log" 2>/dev/null && break
				sleep 0.5
			done
			sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
			pkill -KILL -f "^qemu-system-x86_64 -accel tcg .* -name l2-kill$s( |$)" &&
				echo killed > /tmp/l2-killed$s
		) &
		killer=$!
		L2_LOG=$l2log L2_SLIM=1 L2_TIMEOUT=900 nested_run "$(wwpn "$s" 1)" /tmp/kill-guest.sh \
			-name l2-kill$s \
			-device vhost-scsi-pci,wwpn="$(wwpn "$s" 2)",num_queues=4,worker_per_virtqueue=on \
			> /tmp/kill-round$s.out 2>&1
		wait $killer
		[ -e /tmp/l2-killed$s ] || {
			cat /tmp/kill-round$s.out
			echo "FAIL: round $r (guest $s): QEMU was not killed (did the guest get ready?)"
			return 1
		}
		grep -aq '^L2-KILL-READY 2' "$l2log" || {
			cat /tmp/kill-round$s.out
			echo "FAIL: round $r (guest $s): the guest did not find both disks"
			return 1
		}
		echo "round $r (guest $s): killed ${delay_ms} ms after the guest's writes started;" \
			"$(grep -a -m1 -o 'up after [0-9.]*s' "$l2log"); $(($(date +%s) - t0)) s so far"
		r=$((r + step))
	done
}
t0=$(date +%s)
if [ "${KILL_GUESTS:-1}" = 2 ]; then
	slot 1 1 2 & p1=$!
	slot 2 2 2 & p2=$!
	wait $p1; rc1=$?
	wait $p2; rc2=$?
	[ $rc1 = 0 ] && [ $rc2 = 0 ] || fail "a guest's round failed (guest 1: $rc1, guest 2: $rc2)"
else
	slot 1 1 1 || fail "a round failed"
fi
ok "$ROUNDS rounds in $(($(date +%s) - t0)) s: a guest's QEMU SIGKILLed with direct writes in flight on both disks, a new guest found both disks each time"
check targetcli clearconfig confirm=True
check test ! -d $CFG/vhost/$(wwpn 1 1)
[ -d $CFG/vhost ] && check rmdir $CFG/vhost
check rmmod tcm_virt
rm -f /tmp/kill11.img /tmp/kill12.img /tmp/kill21.img /tmp/kill22.img
