#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Block Limits VPD for pass-through LUNs (module parameter
# emulate_block_limits), driven by the userspace driver.  Two pass-through
# (pscsi) LUNs: at LUN 6 a scsi_debug optical memory device (type 07h),
# whose VPD page list has no Block Limits page (B0h), behind LIO's loopback
# adapter, which takes 1 MiB per command at most (see loop_mo); at LUN 5 a
# scsi_debug disk, whose B0h says MAXIMUM TRANSFER LENGTH 32768 blocks.  Their host
# limits are lowered through max_sectors_kb, to 64 and 128 KiB.
# - LUN 6: page 00h lists B0h, in order and with PAGE LENGTH right, also
#   when the allocation length cuts it; B0h answers MAXIMUM TRANSFER LENGTH
#   128 blocks (64 KiB); a transfer at that limit works, one above the
#   adapter's fails.
# - LUN 5: the device's B0h comes back with its maximum clamped to 256
#   blocks (128 KiB), its page list as the device sent it.
# - Linked again with the parameter off, LUN 6 answers as the device does:
#   no B0h in the list, ILLEGAL REQUEST for B0h.
# - The same through the megasas front end (mfi, LD pass-through frames).
. "$TOP/tools/testing/lib.sh"

PARAM=/sys/module/tcm_virt/parameters/emulate_block_limits
sdebug_mo_disk || fail "scsi_debug optical memory device and disk"
loop_mo 1 || fail "the optical memory device behind the loopback adapter"
MO=${LOOP_SD[0]}
ok "scsi_debug disk $SD_DISK; optical memory device $SD_MO, behind the loopback adapter as $MO"
[ "$(cat /sys/block/$MO/queue/max_segments)" = 256 ] ||
	fail "$MO: max_segments $(cat /sys/block/$MO/queue/max_segments), expected 256"
ok "the loopback adapter takes 256 segments per command"
echo 64 > /sys/block/$MO/queue/max_sectors_kb || fail "max_sectors_kb of $MO"
echo 128 > /sys/block/$SD_DISK/queue/max_sectors_kb || fail "max_sectors_kb of $SD_DISK"
check tcm_load
[ "$(cat $PARAM)" = Y ] || fail "emulate_block_limits is $(cat $PARAM), expected Y by default"
lun_setup vhost $WWPN 64
T=$CFG/vhost/$WWPN/tpgt_1
P6=$(pscsi_backstore mo $MO) || fail "pscsi backstore on $MO"
P5=$(pscsi_backstore disk $SD_DISK) || fail "pscsi backstore on $SD_DISK"
mark=$(klog_mark)
mkdir $T/lun/lun_6 && ln -s $P6 $T/lun/lun_6/pt || fail "LUN 6"
mkdir $T/lun/lun_5 && ln -s $P5 $T/lun/lun_5/pt || fail "LUN 5"
klog_since "$mark" | grep -q 'LUN 6: pass-through device lacks Block Limits VPD' ||
	fail "no 'lacks Block Limits' line for LUN 6 in the kernel log"
klog_since "$mark" | grep -q 'LUN 5: pass-through device has Block Limits VPD' ||
	fail "no 'has Block Limits' line for LUN 5 in the kernel log"
ok "decided at link: LUN 6 emulated, LUN 5 clamped (kernel log)"
OUT=/tmp/bl.out
cat > /tmp/bl.vs <<S
lun 1 6
tur
tur
cdb 120100010400 inhex 260
cdb 1201b0004000 inhex 64
cdb 120100000600 inhex 6
cdb 120100000400 inhex 4
write10 0 128 5
read10 0 128 5
read10 0 3072 5
lun 1 5
tur
tur
cdb 1201b0004000 inhex 64
cdb 120100010400 inhex 260
sh echo N > $PARAM && rm $T/lun/lun_6/pt && ln -s $P6 $T/lun/lun_6/pt && echo Y > $PARAM
lun 1 6
tur
tur
cdb 120100010400 inhex 260
cdb 1201b0004000 inhex 64
sh rm $T/lun/lun_6/pt && ln -s $P6 $T/lun/lun_6/pt
lun 1 6
tur
tur
cdb 120100000600 inhex 260
cdb 1201b0000800 inhex 64
S
vs_run /tmp/bl.vs
# scsi_debug's list for a device that is not a disk, B0h added at the end
want 4 "data=070000090080838485868788b0" "LUN 6: page 00h lists B0h, PAGE LENGTH 9"
want 4 "resid=247" "...13 bytes of 260"
# WSNZ, granularity 1, MAXIMUM and OPTIMAL TRANSFER LENGTH 128 blocks
want 5 "data=07b0000c010000010000008000000080" "LUN 6: B0h emulated, maximum 128 blocks"
want 5 "resid=48" "...16 bytes of 64"
want 6 "data=070000090080" "LUN 6: page 00h cut at 6 bytes, PAGE LENGTH 9"
want 7 "data=07000009" "LUN 6: page 00h header only, PAGE LENGTH 9"
want 8 "response=Ok status=0x00" "LUN 6: WRITE(10) of 64 KiB, at the limit"
want 9 "verify=ok" "LUN 6: READ(10) of 64 KiB, data verified"
want 10 "status=0x02" "LUN 6: READ(10) of 1.5 MiB, above what the adapter takes, fails"
want 14 "data=00b0003c" "LUN 5: the device's B0h"
want 14 "0000010000000100" "LUN 5: maximum (and optimal) transfer length clamped to 256 blocks"
want 15 "data=0000000d008083848586878889b0b1b2b700" "LUN 5: the device's page list (its B0h once), as it sent it"
want 20 "data=07000008008083848586878800" "parameter off: LUN 6 lists what the device does"
want 21 "status=0x02" "parameter off: B0h is the device's ILLEGAL REQUEST"
want 21 "sense=70000500" "...sense key ILLEGAL REQUEST"
# The ALLOCATION LENGTH bounds what the fabric adds: nothing past it
# however large the initiator's buffer.
want 26 "data=070000090080" "LUN 6 relinked: page 00h cut at ALLOCATION LENGTH 6 in a 260-byte buffer"
want 26 "resid=254" "...6 bytes of 260"
want 27 "data=07b0000c01000001" "LUN 6: emulated B0h cut at ALLOCATION LENGTH 8 in a 64-byte buffer"
want 27 "resid=56" "...8 bytes of 64"

# The megasas front end shares the fabric's handling: LUN 6 linked again
# with the parameter on, then LD pass-through frames from mfi.
rm $T/lun/lun_6/pt && ln -s $P6 $T/lun/lun_6/pt || fail "LUN 6 relinked"
MFI="${MFI_BIN:-$TOP/tools/target/release/mfi} --wwpn $WWPN"
m=$($MFI cdb 6 120100010400 in 260 2>&1)
[[ "$m" == *"scsi_status=0x00"*"data=070000090080838485868788b0" ]] ||
	fail "mfi: page 00h of LUN 6: $m"
ok "mfi: page 00h of LUN 6 lists B0h"
m=$($MFI cdb 6 1201b0004000 in 64 2>&1)
[[ "$m" == *"scsi_status=0x00"*"data=07b0000c010000010000008000000080" ]] ||
	fail "mfi: B0h of LUN 6: $m"
ok "mfi: B0h of LUN 6 emulated, maximum 128 blocks"
m=$($MFI cdb 5 1201b0004000 in 64 2>&1)
[[ "$m" == *"scsi_status=0x00"*"data=00b0003c000000010000010000000100"* ]] ||
	fail "mfi: B0h of LUN 5: $m"
ok "mfi: B0h of LUN 5 clamped to 256 blocks"

rm $T/lun/lun_6/pt $T/lun/lun_5/pt && rmdir $T/lun/lun_6 $T/lun/lun_5
lun_teardown vhost $WWPN
check rmmod tcm_virt
check rmdir $P6 $P5 $CFG/core/rd_mcp_0/rd0
check loop_mo_teardown
check rmmod_idle scsi_debug
