#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The megasas front end (/dev/tcm-megasas), driven by the userspace MFI
# initiator (tools/mfi): queue set-up, DCMDs, LD and PD I/O with data
# verified, sense data, length mismatches, the hostile-input list, the
# answers that must never reach a Linux driver, CTRL_EVENT_WAIT and its
# abort, adapter reset, and LUN hotplug seen as MFI events by a waiting
# CTRL_EVENT_WAIT.  Hostile owners and processes (issue 18): a memory
# table outside the address space, ioctls from a process that is not the
# owner, the last close by another process with an event wait pending, a
# frame across two regions of the memory table, a
# flood of task management frames, CTRL_CACHE_FLUSH while LUNs come and go,
# a full reply queue consumed without a doorbell.  The worker's busy
# poll of the inbound queue; kicks left out while the worker reads it.
. "$TOP/tools/testing/lib.sh"
MFI_BIN=${MFI_BIN:-$TOP/tools/target/release/mfi}

check tcm_load
[ -c /dev/tcm-megasas ] || fail "no /dev/tcm-megasas"
lun_setup vhost $WWPN 64
T=$CFG/vhost/$WWPN/tpgt_1
d=$CFG/core/rd_mcp_0/rd1
mkdir -p "$d" && echo "rd_pages=$((16 * 256))" > "$d/control" && echo 1 > "$d/enable"
mkdir "$T/lun/lun_3" && ln -s "$d" "$T/lun/lun_3/disk" || fail "LUN 3"
MFI="$MFI_BIN --wwpn $WWPN"

# The mfi runs that abort, reset or close with commands in flight go
# through `within`: a close that hung in the kernel would make `timeout`
# wait for ever (the suite stalled until the VM was killed); `within`
# fails the test and names the step.
for mode in "" --jbod; do
	within 300 /tmp/mfi.out $MFI $mode check
	rc=$?
	cat /tmp/mfi.out
	[ $rc = 0 ] || fail "mfi $mode check: $(grep FAIL /tmp/mfi.out | head -3 | tr '\n' ' ')"
	n=$(grep -c '^ok ' /tmp/mfi.out)
	[ "$n" -ge 40 ] || fail "mfi $mode check ran only $n checks"
	ok "mfi $mode check: $n checks passed"
done

within 120 /tmp/mfi.out $MFI owner
rc=$?
cat /tmp/mfi.out
[ $rc = 0 ] || fail "mfi owner: $(grep FAIL /tmp/mfi.out | head -3 | tr '\n' ' ')"
[ "$(grep -c '^ok ' /tmp/mfi.out)" = 6 ] || fail "mfi owner: 6 checks expected"
ok "a table outside the address space refused, non-owners get EPERM, the last close by another process answers in the owner's memory"
check $MFI regions

out=$($MFI show ld) || fail "show ld"
echo "$out"
echo "$out" | grep -q "^2 logical drive(s)" || fail "show ld: 2 LDs expected"
echo "$out" | grep -q "^ld   3  state 3  size 16 MiB" || fail "show ld: LD 3"
out=$($MFI --jbod show pd) || fail "show pd"
echo "$out"
echo "$out" | grep -q "^pd   0  type 0  state 0x40  size 64 MiB" || fail "show pd: PD 0"
out=$($MFI show ctrl) || fail "show ctrl"
echo "$out" | grep -q "max commands:   1000" || fail "show ctrl: $out"
ok "show ctrl / ld / pd"

check $MFI write 3 1000 256 9
check $MFI read 3 1000 256 9
$MFI read 3 1000 256 10 && fail "read with another pattern matched"
ok "LD_WRITE / LD_READ round trip on LD 3"
# CTRL_CACHE_FLUSH sends one SYNCHRONIZE CACHE to each LUN.
st0=$T/lun/lun_0/statistics/scsi_tgt_port/in_cmds
st3=$T/lun/lun_3/statistics/scsi_tgt_port/in_cmds
b0=$(cat $st0) b3=$(cat $st3)
check $MFI flush
a0=$(cat $st0) a3=$(cat $st3)
[ $((a0 - b0)) = 1 ] && [ $((a3 - b3)) = 1 ] ||
	fail "CTRL_CACHE_FLUSH: LUN 0 got $((a0 - b0)), LUN 3 $((a3 - b3)) commands, 1 each expected"
ok "CTRL_CACHE_FLUSH: one SYNCHRONIZE CACHE per LUN"
# The benchmark loop (make bench) as a smoke test: 8 commands in flight.
check $MFI bench 3 --rw randwrite --bs 4096 --qd 8 --secs 1
check $MFI --jbod bench 3 --rw randread --bs 8192 --qd 8 --secs 1
# Answering within a pass (admin-guide.rst): with answer_batch=4 the
# worker publishes its replies, with a signal, every 4 frames it reads
# while its CPU has nothing else to run, so a QD32 run with the worker on
# vCPU 1 and the initiator on vCPU 0 gets about 4 replies per signal (at
# most 4.5: a kernel thread may pass through vCPU 1).  Beside a busy loop
# on vCPU 1 each pass is answered at its end: many more per signal.
P=/sys/module/tcm_virt/parameters/answer_batch
mfi_per_signal() { # [HOG]: replies per signal of a 1 s QD32 run, answer_batch=4
	local r rc hog=
	echo 4 > $P || fail "answer_batch=4 refused"
	if [ -n "${1:-}" ]; then
		taskset -c 1 bash -c 'while :; do :; done' &
		hog=$!
	fi
	r=$(taskset -c 0 $MFI --worker-cpu 1 bench 3 --rw randread --bs 4096 --qd 32 --secs 1)
	rc=$?
	[ -z "$hog" ] || { kill $hog; wait $hog 2> /dev/null; }
	echo 16 > $P
	echo "answer_batch=4${1:+ beside a busy loop}: $r" >&2
	[ $rc = 0 ] || { echo "bench failed"; return; }
	sed -n 's/.*ios_per_signal=\([0-9.]*\).*/\1/p' <<< "$r"
}
per=$(mfi_per_signal)
awk -v p="${per:-99}" 'BEGIN { exit !(p > 0 && p <= 4.5) }' ||
	fail "answer_batch=4: ${per:-?} replies per signal, 4.5 at most expected"
perh=$(mfi_per_signal hog)
awk -v p="${perh:-0}" 'BEGIN { exit !(p >= 8) }' ||
	fail "answer_batch=4 beside a busy loop: ${perh:-?} replies per signal, 8 or more expected"
ok "answer_batch=4: $per replies per signal at QD32, $perh beside a busy loop"
# Kicks left out (megasas.rst, "Kicks"): while the worker reads the
# inbound queue it sets iq_no_kick in the register page, and reads the
# producer index once more after clearing it, so `mfi bench` (which
# reads it after each post) leaves most kicks out at QD32 (the client on
# vCPU 0, the worker on vCPU 1: on one vCPU the worker has always ended
# its pass when the client runs).  At QD1 with the client spinning on
# the reply queue, each frame is posted the moment the worker publishes
# the reply to the one before, while it ends its pass: a frame whose
# kick was left out there and that the worker's last look missed would
# never be answered (the bench fails after 30 s).
within 120 /tmp/kick.out taskset -c 0 $MFI --worker-cpu 1 bench 3 --rw randread --bs 4096 --qd 32 --secs 1
rc=$?
r=$(cat /tmp/kick.out)
echo "$r"
[ $rc = 0 ] || fail "bench QD32, kicks left out: $r"
[[ $r =~ kicks_per_io=([0-9.]+)\ kicks_left_out=([0-9]+) ]] &&
	awk -v k="${BASH_REMATCH[1]}" 'BEGIN { exit !(k < 0.5) }' && [ "${BASH_REMATCH[2]}" -gt 0 ] ||
	fail "QD32: kicks per I/O below 0.5 expected with iq_no_kick read: $r"
kq32="${BASH_REMATCH[1]} kicks per I/O at QD32"
within 120 /tmp/kick.out taskset -c 0 $MFI --worker-cpu 1 bench 3 --rw randread --bs 4096 --qd 1 --secs 2 --reap spin
rc=$?
r=$(cat /tmp/kick.out)
echo "$r"
[ $rc = 0 ] || fail "bench QD1 spinning, kicks left out: $r"
[[ $r =~ ios=([0-9]+).*kicks_left_out=([0-9]+) ]] && [ "${BASH_REMATCH[2]}" -gt 0 ] ||
	fail "QD1 spinning: no kick left out, so the worker's last look went untested: $r"
ok "iq_no_kick: $kq32; QD1 spinning: ${BASH_REMATCH[1]} I/Os answered, ${BASH_REMATCH[2]} of their kicks left out"
# Polling before waiting for a doorbell (admin-guide.rst, "Polling before
# waiting for a kick"): with the queue's busy-loop timeout the worker
# watches the inbound queue after each pass, so a frame posted without a
# doorbell right after a reply is served; without it such a frame waits
# for the doorbell.  The client on vCPU 0, the worker on vCPU 1; the
# statistics file counts the polls (read while the adapter is open).
within 120 /tmp/poll.out taskset -c 0 $MFI --worker-cpu 1 \
	--then "grep -h '^polls:' /sys/kernel/debug/tcm_virt/megasas-*" poll 3
rc=$?
cat /tmp/poll.out
[ $rc = 0 ] || fail "mfi poll: $(tail -3 /tmp/poll.out | tr '\n' ' ')"
[[ "$(grep '^polls:' /tmp/poll.out)" =~ ^polls:\ found=([0-9]+)\ empty=[0-9]+$ ]] &&
	[ "${BASH_REMATCH[1]}" -ge 10 ] ||
	fail "statistics: '$(grep '^polls:' /tmp/poll.out)', at least 10 polls that found a frame expected"
ok "busy poll: $(grep '^unkicked:' /tmp/poll.out); $(grep '^polls:' /tmp/poll.out)"

# mfi_waiting OUT PID: the backgrounded `mfi events --wait` of PID has
# bound its adapter and read the event log (it printed "waiting"), so a
# LUN change from here on is its event; 30 s (scaled) at most.  A `sleep
# 1` had covered the seconds mfi takes to start in a slow VM only while
# sleep and mkdir were processes too.
mfi_waiting() {
	local i
	for ((i = 0; i < 150 * TIME_SCALE; i++)); do
		has_line "$1" waiting && return 0
		kill -0 "$2" 2>/dev/null || break
		nap 0.2
	done
	cat "$1"
	return 1
}
# mfi_events OUT [MFI-OPTIONS...]: `mfi events --wait` in the background
# (its pid in $p, its output in OUT), returning once it waits.  OUT is
# removed first: the shell truncates it in the background child, after
# mfi_waiting may have read it, and a second run of the test in one boot
# found the first run's "waiting" there and linked the LUN before mfi had
# bound.
mfi_events() {
	local out=$1
	shift
	rm -f "$out"
	$MFI "$@" events --wait 20000 > "$out" 2>&1 &
	p=$!
	mfi_waiting "$out" $p
}

# Hotplug: a CTRL_EVENT_WAIT is answered by LD_CREATED, then LD_DELETED.
mfi_events /tmp/ev1.out || fail "mfi events did not get to wait"
mkdir "$T/lun/lun_5" && ln -s "$CFG/core/rd_mcp_0/rd0" "$T/lun/lun_5/disk"
wait $p || fail "no event after LUN 5 was linked: $(cat /tmp/ev1.out)"
cat /tmp/ev1.out
grep -q "code=0x008a arg_type=2 id=5" /tmp/ev1.out || fail "LD_CREATED for 5 expected"
ok "LUN link raised LD_CREATED to a waiting CTRL_EVENT_WAIT"
mfi_events /tmp/ev2.out --jbod || fail "mfi events did not get to wait"
rm "$T/lun/lun_5/disk" && rmdir "$T/lun/lun_5"
wait $p || fail "no event after LUN 5 was unlinked: $(cat /tmp/ev2.out)"
cat /tmp/ev2.out
grep -q "code=0x0070 arg_type=10 id=5" /tmp/ev2.out || fail "PD_REMOVED for 5 expected"
ok "LUN unlink raised PD_REMOVED (JBOD)"

# Task management through the shared layer, on a slow LUN (scsi_debug
# behind iblock, 0.9 s per command): the command in flight is aborted and
# answered SCSI_IO_FAILED, the abort / reset frames OK.
check sdebug_iblock slow dev_size_mb=16
mkdir "$T/lun/lun_7" && ln -s "$IB" "$T/lun/lun_7/disk" || fail "LUN 7"
echo 900000000 > $SDEBUG/ndelay
within 120 /tmp/tmf.out $MFI tmf 7
rc=$?
echo 0 > $SDEBUG/ndelay
cat /tmp/tmf.out
[ $rc = 0 ] || fail "mfi tmf: rc=$rc"
for l in "abort=OK victim=SCSI_IO_FAILED" "reset_ld=OK victim=SCSI_IO_FAILED" \
	"reset_all=OK victim=SCSI_IO_FAILED" "reset_in_flight victim=OK init=OK" "after=OK"; do
	grep -qx "$l" /tmp/tmf.out || fail "tmf: '$l' expected"
done
ok "MFI_CMD_ABORT, CLUSTER_RESET_LD and CLUSTER_RESET_ALL abort the command in flight"
# close() with a command and two TMFs in flight: each completes once, the
# close waits for them, nothing leaks (the suite checks the kernel log).
echo 900000000 > $SDEBUG/ndelay
t0=$(date +%s)
within 60 /tmp/tmf-close.out $MFI tmf-close 7
rc=$?
cat /tmp/tmf-close.out
[ $rc = 0 ] || fail "mfi tmf-close: rc=$rc"
echo 0 > $SDEBUG/ndelay
ok "close with a READ, an ABORT and a CLUSTER_RESET_ALL in flight ($(( $(date +%s) - t0 )) s)"
# slow_mfi SECS OUT COMMAND...: mfi COMMAND with drive 7 answering after
# 0.9 s, within SECS (scaled), its output in OUT (and shown); fails the
# test if it fails.
slow_mfi() {
	local secs=$1 out=$2 rc
	shift 2
	echo 900000000 > $SDEBUG/ndelay
	within "$secs" "$out" $MFI "$@"
	rc=$?
	echo 0 > $SDEBUG/ndelay
	cat "$out"
	[ $rc = 0 ] || fail "mfi $*: rc=$rc"
}
# A flood of task management frames is bounded: with a READ in flight,
# 40 CLUSTER_RESET_LD at once, at most 16 carried out, the rest BUSY.
slow_mfi 120 /tmp/tmf.out tmf-flood 7
ok "TMF flood bounded: $(grep -o '[0-9]* OK, [0-9]* BUSY' /tmp/tmf.out)"
# Replies that waited for room in a full reply queue come when the next
# reply is posted, without a doorbell (before the fix, only a doorbell
# posted them: an initiator waiting for its READ waited for ever).
slow_mfi 60 /tmp/rf.out reply-full 7
ok "a full reply queue consumed without a doorbell: every reply came"
check $MFI write 3 2000 16 4
check $MFI read 3 2000 16 4
rm "$T/lun/lun_7/disk" && rmdir "$T/lun/lun_7"

# CTRL_CACHE_FLUSH reads the LUN list once: 20 more LUNs, the last one
# unlinked and linked again all the time while 200 flushes run.
for l in $(seq 10 29); do
	mkdir "$T/lun/lun_$l" && ln -s "$CFG/core/rd_mcp_0/rd1" "$T/lun/lun_$l/disk" || fail "LUN $l"
done
rm -f /tmp/flush.done
(
	while [ ! -e /tmp/flush.done ]; do
		# (rm, mkdir and ln are builtins: without a pause the loop
		# would spin)
		nap 0.5
		rm -f "$T/lun/lun_29/disk" && rmdir "$T/lun/lun_29"
		mkdir "$T/lun/lun_29" && ln -s "$CFG/core/rd_mcp_0/rd1" "$T/lun/lun_29/disk"
	done
) &
churn=$!
# (a flush that does not end fails the test: the churn stops with it)
trap 'touch /tmp/flush.done' EXIT
within 300 /tmp/flush.out $MFI flush 200
rc=$?
trap - EXIT
touch /tmp/flush.done
wait $churn
cat /tmp/flush.out
[ $rc = 0 ] || fail "mfi flush 200 with LUN 29 coming and going: rc=$rc"
for l in $(seq 10 29); do
	[ -d "$T/lun/lun_$l" ] || continue
	rm -f "$T/lun/lun_$l/disk" && rmdir "$T/lun/lun_$l"
done
ok "200 CTRL_CACHE_FLUSHes with a LUN unlinked and linked meanwhile"

# Both front ends on one TPG at once.  The vhost device binds first and
# runs in the nexus; the megasas adapter is a second initiator with a
# session of its own (naa.5001405000000003).  Each reads what the other wrote.
cat > /tmp/both.vs <<S
lun 1 3
tur
tur
write10 3000 16 5
sh $MFI read 3 3000 16 5
sh $MFI write 3 3100 16 6
read10 3100 16 6
sh echo NULL > $T/nexus
S
k0=$(klog_mark)
$VSDRV --wwpn $WWPN run /tmp/both.vs > /tmp/both.out 2>&1
rc=$?
cat /tmp/both.out
[ $rc = 0 ] || fail "vsdrv with a megasas adapter on the same TPG: rc=$rc"
[ "$(grep -c ' exit=0$' /tmp/both.out)" = 2 ] || fail "mfi read/write next to vsdrv"
grep -q "read10 3100 16 6 .*verify=ok" /tmp/both.out || fail "vsdrv read of what mfi wrote"
grep -q "sh echo NULL .* exit=1" /tmp/both.out || fail "nexus dropped while bound"
klog_since "$k0" | grep -q "tpgt_1: second front end bound as initiator naa.5001405000000003" ||
	fail "no second initiator in the kernel log"
ok "vhost and megasas on one TPG, two initiators: each reads what the other wrote"
# The other way round: the adapter binds first (a CTRL_EVENT_WAIT), the
# vhost device second; a LUN link reaches both, a second adapter is refused.
mfi_events /tmp/ev3.out || fail "mfi events did not get to wait"
$MFI show ctrl 2>/tmp/e.out && fail "two adapters on one TPG"
grep -q "Device or resource busy" /tmp/e.out || fail "second adapter: $(cat /tmp/e.out)"
cat > /tmp/both2.vs <<S
lun 1 0
tur
tur
write10 500 8 3
read10 500 8 3
evt-post 2
sh mkdir $T/lun/lun_9 && ln -s $CFG/core/rd_mcp_0/rd0 $T/lun/lun_9/disk
evt-wait 5000 1
S
$VSDRV --wwpn $WWPN --hotplug run /tmp/both2.vs > /tmp/both2.out 2>&1
cat /tmp/both2.out
wait $p || fail "adapter: no event after LUN 9 was linked: $(cat /tmp/ev3.out)"
cat /tmp/ev3.out
grep -q "code=0x008a arg_type=2 id=9" /tmp/ev3.out || fail "adapter: LD_CREATED for 9 expected"
grep -q "evt-wait .*event=0x00000001 lun=\[01, 01, 00, 09" /tmp/both2.out ||
	fail "vhost: no RESCAN event for LUN 9"
grep -q "read10 500 8 3 .*verify=ok" /tmp/both2.out || fail "vhost I/O as the second initiator"
rm "$T/lun/lun_9/disk" && rmdir "$T/lun/lun_9"
ok "megasas first, vhost second: both got the LUN 9 event; a second adapter gets EBUSY"

# Bad configuration: unknown WWPN or TPG.
$MFI_BIN --wwpn naa.5001405000000fff show ctrl 2>/tmp/e.out && fail "unknown WWPN accepted"
grep -q "No such device" /tmp/e.out || fail "unknown WWPN: $(cat /tmp/e.out)"
$MFI --tpgt 7 show ctrl 2>/dev/null && fail "unknown TPG accepted"
ok "unknown WWPN / TPG refused (ENODEV)"

rm "$T/lun/lun_3/disk" && rmdir "$T/lun/lun_3"
lun_teardown vhost $WWPN
check rmmod tcm_virt
ok "module unloaded"
