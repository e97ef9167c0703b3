#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Dirty logging for live migration (VHOST_F_LOG_ALL, VHOST_SET_LOG_BASE,
# used-ring logging), driven by the userspace driver: the log bitmap is
# compared with the pages the device really wrote (every writable buffer of
# each chain completed while logging: data-in, responses, control-queue
# answers) plus the used rings.  A READ submitted before logging was
# switched on and completed after it (LUN 1: iblock on a scsi_debug disk
# answering after 0.9 s) must be logged too.  With logging off, nothing is.
. "$TOP/tools/testing/lib.sh"

check sdebug_iblock slow dev_size_mb=16
check tcm_load
lun_setup vhost $WWPN 64
T=$CFG/vhost/$WWPN/tpgt_1
mkdir "$T/lun/lun_1" && ln -s "$IB" "$T/lun/lun_1/disk" || fail "LUN 1"
OUT=/tmp/log.out
cat > /tmp/log.vs <<'S'
lun 1 0
tur
tur
cdb 28000000000000000800 in 4096
log-start
write10 64 16 3
read10 64 16 3
cdb 28000000c80000004000 in 32768
an-query
inquiry
log-check
log-clear
lun 1 1
tur
tur
log-stop
log-clear
sh echo 900000000 > /sys/bus/pseudo/drivers/scsi_debug/ndelay
start slow 28000000000000000800 in 4096
log-start
finish slow
log-check
sh echo 0 > /sys/bus/pseudo/drivers/scsi_debug/ndelay
log-stop
log-clear
lun 1 0
read10 64 16 3
log-check
S
$VSDRV --wwpn $WWPN run /tmp/log.vs > $OUT 2>&1
rc=$?
cat $OUT
echo 0 > $SDEBUG/ndelay
[ $rc = 0 ] || fail "vsdrv: rc=$rc"
want 5 "Ok(())" "VHOST_SET_LOG_BASE + VHOST_F_LOG_ALL while the endpoint is set"
want 11 "log ok: " "I/O, responses and a control-queue answer logged, nothing else"
grep -E '^ *11 ' $OUT | grep -qv "0 written" || fail "nothing written while logging"
want 21 "response=Ok status=0x00" "the READ in flight when logging started completed"
want 22 "log ok: " "...and its data-in and response pages are logged"
want 28 "log ok: 0 pages marked, 0 written" "logging off: nothing logged"

rm "$T/lun/lun_1/disk" && rmdir "$T/lun/lun_1"
lun_teardown vhost $WWPN
check rmmod tcm_virt
check rmdir $IB $CFG/core/rd_mcp_0/rd0
check rmmod_idle scsi_debug
ok "teardown"
