#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Soak (`make soak` only; `make check` kills the nested guest's QEMU once,
# in 50-nested_guest): a nested QEMU with two vhost-scsi-pci devices on
# tcm_virt (targetcli: a fileio LUN per target; QEMU's defaults, and
# num_queues=4 with worker_per_virtqueue=on) is SIGKILLed KILL_ROUNDS times
# (default 100), each time while the guest keeps direct writes in flight
# on both disks (from 0 to 2 s after it said so, the delay varying by
# round).
#
# A boot cost about 100 s under emulation inside emulation (about 30 s under KVM now), so the guest
# boots once: when it has found both disks it waits, and the host saves it
# to a file (QMP migrate, both devices migratable=on) and ends that QEMU.
# Every round then restores that state into a new QEMU (-incoming, from a
# FIFO; the QEMU was started during the round before, so that its start
# overlaps that round's guest): it sets its memory table, rings and
# endpoint on both TPGs as a booted one does, and the restored guest,
# finding the host's mark on its disks, writes a block to each disk and
# reads it back, starts its writers and says so; then the SIGKILL.  A killed QEMU's release must
# have ended by the next round: the next QEMU's SET_ENDPOINT binds the same
# TPGs, and its guest's I/O must work on both disks.  Then `targetcli
# clearconfig` and rmmod; the suite checks the kernel log and kmemleak.
. "$TOP/tools/testing/lib.sh"

ROUNDS=${KILL_ROUNDS:-100}
W1=naa.5001405000000011
W2=naa.5001405000000012
STATE=/tmp/l2-kill.state
INITRD=/tmp/l2-kill-initramfs.cpio
MARK=TCM-VIRT-KILL-GO
check tcm_load
rm -f /tmp/kill1.img /tmp/kill2.img $STATE
tcli_batch "/backstores/fileio create kdisk1 /tmp/kill1.img 16M" \
	"/backstores/fileio create kdisk2 /tmp/kill2.img 16M" \
	"/vhost create $W1" "/vhost/$W1/tpg1/luns create /backstores/fileio/kdisk1" \
	"/vhost create $W2" "/vhost/$W2/tpg1/luns create /backstores/fileio/kdisk2"
cat > /tmp/kill-guest.sh <<G
n=0
while [ "\$(ls -d /sys/block/sd* 2>/dev/null | wc -l)" -lt 2 ] && [ \$n -lt 900 ]; do sleep 1; n=\$((n + 1)); done
DISKS=\$(for d in /sys/block/sd*; do grep -q LIO-ORG \$d/device/vendor 2>/dev/null && echo \${d##*/}; done)
echo "L2-DISKS" \$DISKS
set -- \$DISKS
echo "L2-KILL-WAIT"
# The host saves the guest here; every copy it restores finds the mark.
until dd if=/dev/\$1 bs=4k count=1 iflag=direct 2>/dev/null | grep -q $MARK; do sleep 0.2; done
ok=0
for d in \$DISKS; do
	t=\$(cut -d' ' -f1 /proc/uptime)-\$d-\$RANDOM
	printf '%-4096s' "\$t" > /tmp/blk
	dd if=/tmp/blk of=/dev/\$d bs=4k seek=1 count=1 oflag=direct 2>/dev/null &&
		[ "\$(dd if=/dev/\$d bs=4k skip=1 count=1 iflag=direct 2>/dev/null | tr -d ' ')" = "\$t" ] &&
		ok=\$((ok + 1))
	(while :; do dd if=/dev/zero of=/dev/\$d bs=64k seek=16 count=32 oflag=direct 2>/dev/null; done) &
done
sleep 1
echo "L2-KILL-READY \$ok"
sleep 600
G
L2_SLIM=1 "$TOP/scripts/mk-initramfs.sh" "$INITRD" /tmp/kill-guest.sh || fail "initramfs"
DEVS=(-device "vhost-scsi-pci,wwpn=$W1,migratable=on"
	-device "vhost-scsi-pci,wwpn=$W2,migratable=on,num_queues=4,worker_per_virtqueue=on")

# The guest booted once, then saved.
log "L2 boot"
rm -f /tmp/l2-kill0.log /tmp/l2-kill.qmp
l2_qemu $INITRD -name l2-kill "${DEVS[@]}" \
	-qmp unix:/tmp/l2-kill.qmp,server=on,wait=off > /tmp/l2-kill0.log 2>&1 &
boot=$!
l2_wait /tmp/l2-kill0.log L2-KILL-WAIT $boot 1800 || fail "the guest did not get ready"
disks=$(tr -d '\r' < /tmp/l2-kill0.log | sed -n 's/^L2-DISKS //p')
[ "$(echo $disks | wc -w)" = 2 ] || fail "the guest found '$disks', not two LIO disks"
log "$(tr -d '\r' < /tmp/l2-kill0.log | grep -a -m1 -o 'up after [0-9.]*s') $(grep -a -m1 '^L2-DISKS' /tmp/l2-kill0.log | tr -d '\r')"
qmp_migrate /tmp/l2-kill.qmp "exec:cat > $STATE" || fail "saving the guest"
qmp /tmp/l2-kill.qmp quit > /dev/null
wait $boot
ok "the guest booted, found both disks and was saved ($(($(stat -c %s $STATE) >> 20)) MiB)"
for f in /tmp/kill1.img /tmp/kill2.img; do
	printf '%-512s' $MARK | dd of=$f conv=notrunc 2>/dev/null || fail "the mark in $f"
done

# Round R's QEMU is started during round R-1 and waits for the saved state
# on a FIFO (-incoming): starting QEMU inside the test VM (loading and
# relocating a 28 MB binary under emulation) costs more than the rest of a
# round, and the guest of the round before keeps only one of the VM's two
# CPUs busy.  The waiting QEMU has opened /dev/vhost-scsi but binds no TPG
# before its restore, which begins only after the QEMU before it was
# killed and reaped.
qpid=()
start_round() { # R
	rm -f /tmp/l2-kill.$1.log /tmp/l2-kill.$1.fifo
	mkfifo /tmp/l2-kill.$1.fifo || fail "mkfifo"
	L2_TIMEOUT=900 l2_qemu $INITRD -name l2-kill-$1 "${DEVS[@]}" \
		-incoming "exec:cat /tmp/l2-kill.$1.fifo" > /tmp/l2-kill.$1.log 2>&1 &
	qpid[$1]=$!
}
kill_round() { # R
	pkill -KILL -f "^qemu-system-x86_64 -accel [a-z]* .* -name l2-kill-$1 "
}
t0=$EPOCHSECONDS
start_round 1
for r in $(seq "$ROUNDS"); do
	log=/tmp/l2-kill.$r.log
	q=${qpid[r]}
	cat $STATE > /tmp/l2-kill.$r.fifo &
	feed=$!
	[ "$r" -lt "$ROUNDS" ] && start_round $((r + 1))
	end=$((SECONDS + $(scaled 1200)))
	while [ $SECONDS -lt $end ] && ! has_line $log L2-KILL-READY && kill -0 $q 2>/dev/null; do
		nap 0.25
	done
	has_line $log "L2-KILL-READY 2" || {
		kill_round $r
		kill_round $((r + 1))
		kill $feed 2>/dev/null
		wait
		sed 's/^/  L2| /' $log | tail -n 20
		fail "round $r: the restored guest's I/O did not work on both disks"
	}
	wait $feed || fail "round $r: feeding the saved state"
	delay_ms=$(( (r * 379) % 2000 ))
	nap "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	kill_round $r || fail "round $r: no QEMU to kill"
	wait $q
	rc=$?
	# timeout(1) reports its child's death by SIGKILL as 137
	[ $rc = 137 ] || fail "round $r: QEMU ended with $rc, not by the SIGKILL"
	rm -f $log /tmp/l2-kill.$r.fifo
	[ $((r % 10)) = 0 ] || [ "$r" = 1 ] &&
		log "round $r: killed ${delay_ms} ms after the writes started; $((EPOCHSECONDS - t0)) s so far"
done
ok "$ROUNDS rounds in $((EPOCHSECONDS - t0)) s: a restored guest's QEMU SIGKILLed with direct writes in flight on both disks, the next one's I/O worked on both each time"
check targetcli clearconfig confirm=True
check test ! -d $CFG/vhost/$W1
[ -d $CFG/vhost ] && check rmdir $CFG/vhost
check rmmod tcm_virt
rm -f /tmp/kill1.img /tmp/kill2.img $STATE
