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
#   overflow sets events-missed, reported with the next event and through
#   VHOST_SCSI_GET/SET_EVENTS_MISSED.
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
sh for i in \$(seq 1 40); do $(lunsh 4 add) && $(lunsh 4 del); done
sleep 500
events-missed
evt-post 1
evt-wait 3000
events-missed
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
want 3 "event=0x00000001 lun=[01, 01, 00, 03, 00, 00, 00, 00] reason=0 len=16" "RESCAN event for LUN 3"
want 5 "event=0x00000001 lun=[01, 01, 00, 03, 00, 00, 00, 00] reason=2 len=16" "REMOVED event for LUN 3"
want 9 "reason=0 len=16 ; event=0x00000001 lun=[01, 01, 41, 2c, 00, 00, 00, 00] reason=2" "both events of LUN 300, queued until buffers came"
want 10 "Ok(0)" "no event missed"
want 13 "Ok(1)" "80 events without buffers overflow the queue: events missed"
want 15 "event=0x80000001" "the next event carries EVENTS_MISSED"
want 16 "Ok(0)" "events-missed cleared by the delivery"
want 18 "Ok(1)" "VHOST_SCSI_SET_EVENTS_MISSED"
want 20 "event=0x8000000" "EVENTS_MISSED delivered after SET_EVENTS_MISSED"

cat > /tmp/noevt.vs <<S
evt-post 2
sh $(lunsh 5 add) && $(lunsh 5 del)
evt-wait 1000
S
OUT=/tmp/noevt.out
$VSDRV --wwpn $WWPN run /tmp/noevt.vs > $OUT
cat $OUT
want 3 "no event" "no hotplug event without VIRTIO_SCSI_F_HOTPLUG"

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
timeout 60 $VSDRV --wwpn $WWPN run /tmp/close.vs || fail "vsdrv close with TMFs in flight"
t1=$(date +%s)
echo 0 > $SDEBUG/ndelay
ok "close with two READs, an ABORT TASK and a LUN RESET in flight ($((t1 - t0)) s)"
printf 'tur\ntur\ncdb 28000000000000000100 in 512\n' > /tmp/after.vs
OUT=/tmp/after.out
$VSDRV --wwpn $WWPN run /tmp/after.vs > $OUT
cat $OUT
want 3 "response=Ok status=0x00" "the LUN answers after that close"

check rm $T/lun/lun_0/slow $T/lun/lun_1/disk
check rmdir $T/lun/lun_0 $T/lun/lun_1
check write $T/nexus NULL
check rmdir $T $CFG/vhost/$WWPN $CFG/vhost
check rmmod tcm_virt
check rmdir $ib $rd
check rmmod scsi_debug
