#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Task management and events through the shared layer, driven by the
# userspace driver (tools/vsdrv):
# - every TMF on commands really in flight (LUN 0 is iblock on a scsi_debug
#   disk answering after 0.9 s): QUERY TASK / QUERY TASK SET find them,
#   ABORT TASK and ABORT TASK SET end them 'aborted', LOGICAL UNIT RESET,
#   I_T NEXUS RESET and CLEAR TASK SET end them 'reset', each exactly once;
#   ABORT TASK of a finished command and of an unknown tag; CLEAR ACA
#   rejected; a LUN that does not exist; an undefined subtype.
# - hotplug events: LUN link/unlink raise TRANSPORT_RESET RESCAN/REMOVED
#   with VIRTIO_SCSI_F_HOTPLUG, none without it; events wait for buffers;
#   overflow sets events-missed, reported with the next event (the newest:
#   the older ones are dropped, covered by the guest's rescan) and through
#   VHOST_SCSI_GET/SET_EVENTS_MISSED; a LUN of 16384 or above, which the
#   LUN field cannot carry, raises no event (not one for another LUN).
# - an event queue refilled with wrongly shaped buffers as fast as the
#   device returns them, while events-missed is pending: the request queue
#   on the same vhost worker is answered promptly all the while.
# - close with TMFs in flight; then 24 rounds of an ABORT TASK, ABORT TASK
#   SET, QUERY TASK or QUERY TASK SET in flight while a LOGICAL UNIT RESET
#   runs on the same LUN (the reset aborts the pending TMR, which target
#   core then never answers): both TMFs answered in every round, close and
#   rmmod succeed.
. "$TOP/tools/testing/lib.sh"

check sdebug_iblock slow dev_size_mb=16
check tcm_load
T=$CFG/vhost/$WWPN/tpgt_1
ib=$IB
SD=$SDEBUG
check mkdir -p $T/lun/lun_0
check write $T/nexus $INITIATOR
check ln -s $ib $T/lun/lun_0/slow
rd=$CFG/core/rd_mcp_0/rd0
check mkdir -p $rd
check write $rd/control rd_pages=4096
check write $rd/enable 1
check mkdir -p $T/lun/lun_1
check ln -s $rd $T/lun/lun_1/disk

READ=28000000000000000800 # READ(10), 8 blocks at LBA 0
cat > /tmp/tmf.vs <<S
lun 1 0
tur
tur
sh echo 900000000 > $SD/ndelay
start r1 $READ in 4096
sleep 200
tmf 6 @r1
tmf 7
tmf 0 @r1
finish r1
tmf 6 @r1
tmf 7
tmf 0 @r1
tmf 0 777777
start r2 $READ in 4096
start r3 $READ in 4096
sleep 200
tmf 1
finish r2
finish r3
start r4 $READ in 4096
sleep 200
tmf 5
finish r4
tur
start r5 $READ in 4096
sleep 200
tmf 4
finish r5
start r6 $READ in 4096
sleep 200
tmf 3
finish r6
tmf 2
sh echo 0 > $SD/ndelay
tur
lun 1 5
tmf 5
tmf 7
tmf 6 1
tmf 2
lun 1 0
tmf 8
tmf 4294967295
lun 9 0
tmf 0 1
lun 1 0
write10 0 8 1
read10 0 8 1
S
$VSDRV --wwpn $WWPN --timeout-ms 6000 run /tmp/tmf.vs > /tmp/tmf.out
rc=$?
cat /tmp/tmf.out
[ $rc = 0 ] || fail "tmf script: rc=$rc"
# line N of the script must answer ...
OUT=/tmp/tmf.out
want 7 "ctl-response=[0a]" "QUERY TASK, command in flight: FUNCTION SUCCEEDED"
want 8 "ctl-response=[0a]" "QUERY TASK SET, command in flight: FUNCTION SUCCEEDED"
want 9 "ctl-response=[00]" "ABORT TASK of a command in flight: FUNCTION COMPLETE"
want 10 "response=Aborted" "the aborted command ends ABORTED"
want 11 "ctl-response=[00]" "QUERY TASK after the abort: not found"
want 12 "ctl-response=[00]" "QUERY TASK SET, nothing in flight"
want 13 "ctl-response=[00]" "ABORT TASK of a finished command"
want 14 "ctl-response=[00]" "ABORT TASK of an unknown tag"
want 18 "ctl-response=[00]" "ABORT TASK SET"
want 19 "response=Aborted" "ABORT TASK SET: first command ABORTED"
want 20 "response=Aborted" "ABORT TASK SET: second command ABORTED"
want 23 "ctl-response=[0a]" "LOGICAL UNIT RESET"
want 24 "response=Reset" "LUN RESET: the command ends RESET"
want 25 "status=0x02 resid=0 sense_len=96 sense=700006000000000a00000000290300" "unit attention after the LUN reset"
want 28 "ctl-response=[00]" "I_T NEXUS RESET"
want 29 "response=Reset" "I_T NEXUS RESET: the command ends RESET"
want 32 "ctl-response=[00]" "CLEAR TASK SET"
want 33 "response=Reset" "CLEAR TASK SET: the command ends RESET"
want 34 "ctl-response=[0b]" "CLEAR ACA: FUNCTION REJECTED"
want 38 "ctl-response=[0c]" "LUN RESET of a LUN that does not exist: INCORRECT LUN"
want 39 "ctl-response=[0c]" "QUERY TASK SET of a LUN that does not exist"
want 40 "ctl-response=[0c]" "QUERY TASK of a LUN that does not exist"
want 41 "ctl-response=[0c]" "CLEAR ACA of a LUN that does not exist"
want 43 "ctl-response=[0b]" "undefined TMF subtype 8: FUNCTION REJECTED"
want 44 "ctl-response=[0b]" "undefined TMF subtype 0xffffffff"
want 46 "ctl-response=[03]" "TMF to a target without TPG: BAD TARGET"
want 49 "verify=ok" "I/O after all that"
n=$(grep -c "no response" /tmp/tmf.out)
[ "$n" = 0 ] || fail "$n requests not answered"
ok "every request answered once"

# Hotplug events.
lunsh() { # N add|del
	if [ "$2" = add ]; then
		echo "mkdir -p $T/lun/lun_$1 && ln -s $rd $T/lun/lun_$1/disk"
	else
		echo "rm $T/lun/lun_$1/disk && rmdir $T/lun/lun_$1"
	fi
}
# 80 events without buffers: one bash with the file builtins (the loop in
# dash ran 160 processes, minutes of a slow VM)
cat > /tmp/lunflood.sh <<F
for b in mkdir rmdir rm ln; do [ -f /usr/lib/bash/\$b ] && enable -f /usr/lib/bash/\$b \$b; done
for i in {1..40}; do $(lunsh 4 add) && $(lunsh 4 del) || exit 1; done
F
cat > /tmp/evt.vs <<S
evt-post 2
sh $(lunsh 3 add)
evt-wait 3000
sh $(lunsh 3 del)
evt-wait 3000
sh $(lunsh 300 add) && $(lunsh 300 del)
sleep 300
evt-post 2
evt-wait 3000 2
events-missed
sh bash /tmp/lunflood.sh
sleep 500
events-missed
evt-post 1
evt-wait 3000
events-missed
evt-post 70
evt-wait 3000 70
set-events-missed 1
events-missed
evt-post 1
evt-wait 3000
events-missed
S
OUT=/tmp/evt.out
$VSDRV --wwpn $WWPN --hotplug run /tmp/evt.vs > $OUT
rc=$?
cat $OUT
[ $rc = 0 ] || fail "event script: rc=$rc"
want 2 "exit=0" "LUN 3 linked"
want 3 "event=0x00000001 lun=[01, 01, 00, 03, 00, 00, 00, 00] reason=1 len=16" "RESCAN event for LUN 3"
want 5 "event=0x00000001 lun=[01, 01, 00, 03, 00, 00, 00, 00] reason=2 len=16" "REMOVED event for LUN 3"
want 9 "reason=1 len=16 ; event=0x00000001 lun=[01, 01, 41, 2c, 00, 00, 00, 00] reason=2" "both events of LUN 300, queued until buffers came"
want 10 "Ok(0)" "no event missed"
want 11 "exit=0" "LUN 4 linked and unlinked 40 times"
want 13 "Ok(1)" "80 events without buffers overflow the queue: events missed"
# The 65th event found 64 queued: they were dropped (the rescan that
# EVENTS_MISSED causes covers them) and it was kept, so the queue holds
# events 65 to 80 (LUN 4 linked, unlinked, ..., unlinked), delivered in
# order, the first with EVENTS_MISSED.  (Dropping the newest instead left
# events 1 to 64, ending with an unlinking the guest would apply after its
# rescan, and lost the last 16, the latest state.)
want 15 "event=0x80000001 lun=[01, 01, 00, 04, 00, 00, 00, 00] reason=1" "the next event, the 65th (LUN 4 RESCAN), carries EVENTS_MISSED"
want 16 "Ok(0)" "events-missed cleared by the delivery"
n=$(grep '^ *18 ' $OUT | grep -o 'event=0x00000001 lun=\[01, 01, 00, 04, 00, 00, 00, 00\]' | wc -l)
[ "$n" = 15 ] || fail "after the first, $n events of LUN 4 were left queued, expected 15 (the 66th to the 80th)"
[[ "$(grep '^ *18 ' $OUT)" == *"reason=2 len=16" ]] || fail "the last event left is not the 80th (LUN 4 REMOVED)"
ok "then the 66th to the 80th, the last LUN 4 REMOVED: what happened after the overflow, in order"
want 20 "Ok(1)" "VHOST_SCSI_SET_EVENTS_MISSED"
want 22 "event=0x80000000 " "EVENTS_MISSED delivered after SET_EVENTS_MISSED, with NO_EVENT"

# LIO takes any 64-bit LUN number; the virtio-scsi LUN field carries 14
# bits.  LUN 16384 gets no event at all (not a RESCAN, then a REMOVED, of
# LUN 0, which a guest would act on).  A new device: an empty event queue.
cat > /tmp/evt2.vs <<S
evt-post 2
sh $(lunsh 16384 add) && $(lunsh 16384 del) && $(lunsh 6 add)
evt-wait 3000
sh $(lunsh 6 del)
evt-wait 3000
S
OUT=/tmp/evt2.out
$VSDRV --wwpn $WWPN --hotplug run /tmp/evt2.vs > $OUT
rc=$?
cat $OUT
[ $rc = 0 ] || fail "LUN 16384 script: rc=$rc"
want 2 "exit=0" "LUN 16384 linked and unlinked, LUN 6 linked"
want 3 "event=0x00000001 lun=[01, 01, 00, 06, 00, 00, 00, 00] reason=1 len=16" "no event for LUN 16384: the first is LUN 6's RESCAN"
want 5 "event=0x00000001 lun=[01, 01, 00, 06, 00, 00, 00, 00] reason=2 len=16" "then LUN 6's REMOVED"

cat > /tmp/noevt.vs <<S
evt-post 2
sh $(lunsh 5 add) && $(lunsh 5 del)
evt-wait 1000
S
OUT=/tmp/noevt.out
$VSDRV --wwpn $WWPN run /tmp/noevt.vs > $OUT
cat $OUT
want 3 "no event" "no hotplug event without VIRTIO_SCSI_F_HOTPLUG"

# A guest that refills the event queue with wrongly shaped buffers (8
# bytes: too short for an event) as fast as the device returns them, while
# events-missed is pending: each such buffer sets events-missed again, so
# there is always something to deliver.  The event queue's work must give
# the worker up after its weight of buffers (vhost_exceeds_weight), else the
# request queue, served by the same worker, starves: every TEST UNIT READY
# sent meanwhile must be answered within 1 s.  (A ring of 1024 entries: the
# driver's thread refills it long before the device could empty it.)
cat > /tmp/flood.vs <<S
lun 1 1
tur
set-events-missed 1
evt-flood 4000 1000
events-missed
tur
S
OUT=/tmp/flood.out
mark=$(klog_mark flood)
within 120 $OUT $VSDRV --wwpn $WWPN --ring 1024 run /tmp/flood.vs
rc=$?
cat $OUT
[ $rc = 0 ] || fail "event queue flood: rc=$rc"
want 4 "drained=true" "the flooded event queue's buffers all returned"
n=$(sed -n 's/.* evt-chains=\([0-9]*\) .*/\1/p' $OUT)
[ "${n:-0}" -ge 1024 ] || fail "the device took ${n:-0} flooded event buffers, expected 1024 or more"
t=$(sed -n 's/.* turs=\([0-9]*\) .*/\1/p' $OUT)
[ "${t:-0}" -ge 10 ] || fail "${t:-0} TEST UNIT READYs during the flood, expected 10 or more"
ok "$n wrongly shaped event buffers taken; $t TEST UNIT READYs answered within 1 s meanwhile"
want 5 "Ok(1)" "events-missed still set by the wrongly shaped buffers"
want 6 "response=Ok" "the request queue answers after the flood"
klog_since "$mark" | grep -q "soft lockup" && fail "soft lockup during the event queue flood"
ok "no soft lockup reported"

# close() with two READs, an ABORT TASK of one and a LOGICAL UNIT RESET in
# flight on the slow LUN: the release waits for each of them; nothing
# leaks (the suite checks the kernel log and kmemleak); the LUN works on.
echo 900000000 > $SDEBUG/ndelay
cat > /tmp/close.vs <<S
lun 1 0
start a 28000000000000000100 in 512
start b 28000000000000000100 in 512
tmf-post 0 @a
tmf-post 5
S
t0=$(date +%s)
within 60 /tmp/close.out $VSDRV --wwpn $WWPN run /tmp/close.vs || fail "vsdrv close with TMFs in flight"
t1=$(date +%s)
echo 0 > $SDEBUG/ndelay
ok "close with two READs, an ABORT TASK and a LUN RESET in flight ($((t1 - t0)) s)"
printf 'tur\ntur\ncdb 28000000000000000100 in 512\n' > /tmp/after.vs
OUT=/tmp/after.out
$VSDRV --wwpn $WWPN run /tmp/after.vs > $OUT
cat $OUT
want 3 "response=Ok status=0x00" "the LUN answers after that close"

# A TMF in flight while a LOGICAL UNIT RESET runs on the same LUN: the
# reset aborts the TMRs pending there (core_tmr_drain_tmr_list, without
# TAS), and target core answers an aborted TMR only through aborted_task,
# never queue_tm_rsp.  Each round holds a READ 0.6 s in scsi_debug and
# posts one TMF, then the LUN RESET:
# - ABORT TASK of the READ, or ABORT TASK SET (an ABORT TASK of the READ
#   after its probe): target core's ABORT TASK waits for the READ to leave
#   the backend, and the LUN RESET, 150 ms later, aborts it meanwhile;
# - QUERY TASK, QUERY TASK SET: their probe TMR (ABORT TASK SET) races the
#   LUN RESET posted right after it.
# Both TMFs must be answered in every round (an aborted one FUNCTION
# REJECTED, 0x0b), the READ too; then close and rmmod must succeed.
ROUNDS=24
echo 600000000 > $SDEBUG/ndelay
{
	echo "lun 1 0"
	echo "tur"
	for i in $(seq 1 $ROUNDS); do
		echo "start r$i $READ in 4096"
		echo "sleep 100"
		case $((i % 4)) in
		1) echo "tmf-post 0 @r$i" && echo "sleep 150" ;;
		2) echo "tmf-post 1" && echo "sleep 150" ;;
		3) echo "tmf-post 6 @r$i" ;;
		0) echo "tmf-post 7" ;;
		esac
		echo "tmf-post 5"
		echo "tmf-wait 5000"
		echo "finish r$i"
		echo "tur"
	done
} > /tmp/tmfrace.vs
OUT=/tmp/tmfrace.out
t0=$(date +%s)
within $((ROUNDS * 5 + 60)) $OUT $VSDRV --wwpn $WWPN --timeout-ms 6000 run /tmp/tmfrace.vs
rc=$?
t1=$(date +%s)
echo 0 > $SDEBUG/ndelay
cat $OUT
[ $rc = 0 ] || fail "TMF and LUN RESET race script: rc=$rc"
ok "close after $ROUNDS rounds of a TMF aborted by a LUN RESET ($((t1 - t0)) s)"
answers=$(grep -E '^ *[0-9]+ tmf-wait' $OUT)
[ "$(echo "$answers" | grep -c .)" = $ROUNDS ] || fail "not $ROUNDS tmf-wait lines"
echo "$answers" | grep -q "no response" && fail "a TMF was not answered (see above)"
echo "$answers" | grep -v -q 'ctl-response=\[0a\]$' && fail "a LUN RESET did not succeed"
ok "every TMF answered, every LOGICAL UNIT RESET FUNCTION SUCCEEDED"
# The first answer of round i is that of its ABORT TASK (i % 4 = 1), ABORT
# TASK SET (2), QUERY TASK (3) or QUERY TASK SET (0).
i=0 n=0
while read -r _ _ _ a _; do
	i=$((i + 1))
	case $((i % 4)) in
	1 | 2) case $a in
		'ctl-response=[0b]') n=$((n + 1)) ;;
		'ctl-response=[00]') ;;
		*) fail "round $i: ABORT TASK (SET) answered '$a'" ;;
		esac ;;
	*) case $a in
		'ctl-response=['0[0ab]']') ;;
		*) fail "round $i: QUERY TASK (SET) answered '$a'" ;;
		esac ;;
	esac
done <<< "$answers"
[ "$n" -ge 1 ] || fail "no ABORT TASK (SET) was aborted by the LUN RESET: the race did not happen"
ok "$n of $((ROUNDS / 2)) ABORT TASK (SET) aborted by the LUN RESET: answered FUNCTION REJECTED"
n=$(grep -E '^ *[0-9]+ finish r' $OUT | grep -c -E 'response=(Aborted|Reset|Ok)')
[ "$n" = $ROUNDS ] || fail "$n of $ROUNDS READs answered"
ok "every READ answered"

# ABORT TASKs of tags that are not in flight do not reach target core,
# whose ABORT TASK logs a line for each one: 100 of them on an idle LUN are
# answered FUNCTION COMPLETE and leave no ABORT_TASK line in the kernel log
# (before, 100 lines); on a LUN that does not exist, INCORRECT LUN.
amark=$(klog_mark "abort flood")
{
	echo "lun 1 0"
	for i in $(seq 1 100); do echo "tmf 0 $((70000 + i))"; done
	echo "lun 1 5"
	echo "tmf 0 1"
} > /tmp/abortflood.vs
OUT=/tmp/abortflood.out
within 120 $OUT $VSDRV --wwpn $WWPN run /tmp/abortflood.vs || fail "ABORT TASK flood script"
n=$(grep -c 'ctl-response=\[00\]' $OUT)
[ "$n" = 100 ] || { cat $OUT; fail "$n of 100 ABORT TASKs of unknown tags answered FUNCTION COMPLETE"; }
want 103 "ctl-response=[0c]" "ABORT TASK on a LUN that does not exist: INCORRECT LUN"
n=$(klog_since "$amark" | grep -c "ABORT_TASK")
[ "$n" = 0 ] || fail "$n ABORT_TASK lines in the kernel log for 100 ABORT TASKs of unknown tags"
ok "100 ABORT TASKs of unknown tags: FUNCTION COMPLETE, no line in the kernel log"

# A flood of TMFs is bounded (a guest can publish a control chain again
# before it was answered, so the queue's size bounds nothing): with a READ
# held 0.9 s, 40 ABORT TASKs of it posted at once.  Target core runs one
# TMR of a device at a time and the first waits for the READ, so none ends
# before all are posted: at most 16 are carried out (FUNCTION COMPLETE),
# the other 24 or more answered FUNCTION REJECTED at once; every one
# answered, the READ too, and the LUN works on.
echo 900000000 > $SDEBUG/ndelay
{
	echo "lun 1 0"
	echo "start r $READ in 4096"
	echo "sleep 50"
	for i in $(seq 1 40); do echo "tmf-post 0 @r"; done
	echo "tmf-wait 30000"
	echo "finish r"
	echo "tur"
} > /tmp/tmfflood.vs
OUT=/tmp/tmfflood.out
within 90 $OUT $VSDRV --wwpn $WWPN --ring 256 run /tmp/tmfflood.vs
rc=$?
echo 0 > $SDEBUG/ndelay
cat $OUT
[ $rc = 0 ] || fail "TMF flood script: rc=$rc"
answers=$(grep -E '^ *[0-9]+ tmf-wait' $OUT | tr ' ' '\n' | grep -c '^ctl-response=')
rejected=$(grep -E '^ *[0-9]+ tmf-wait' $OUT | tr ' ' '\n' | grep -c '^ctl-response=\[0b\]$')
[ "$answers" = 40 ] || fail "$answers of 40 ABORT TASKs answered"
[ "$rejected" -ge 24 ] || fail "$rejected of 40 ABORT TASKs refused: more than 16 carried out at once"
want 45 "response=" "the READ answered"
want 46 "response=Ok" "the LUN answers after the TMF flood"
ok "40 ABORT TASKs at once: all answered, $rejected refused (FUNCTION REJECTED), at most 16 carried out"

check rm $T/lun/lun_0/slow $T/lun/lun_1/disk
check rmdir $T/lun/lun_0 $T/lun/lun_1
check write $T/nexus NULL
check rmdir $T $CFG/vhost/$WWPN $CFG/vhost
check rmmod tcm_virt
check rmdir $ib $rd
check rmmod_idle scsi_debug
