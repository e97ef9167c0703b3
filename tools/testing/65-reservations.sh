#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Persistent reservations through LIO between two initiators on one LUN:
# the vhost front end (tools/vsdrv, the TPG's nexus) and the megasas front
# end bound to the same TPG (tools/mfi, the second initiator).  REGISTER,
# RESERVE (Write Exclusive, Exclusive Access), READ KEYS, READ RESERVATION,
# RELEASE and CLEAR; RESERVATION CONFLICT where SPC-4 says so, and the
# RESERVATIONS PREEMPTED unit attention after CLEAR.
. "$TOP/tools/testing/lib.sh"
MFI_BIN=${MFI_BIN:-$TOP/tools/target/release/mfi}

check tcm_load
lun_setup vhost $WWPN 64
T=$CFG/vhost/$WWPN/tpgt_1
MFI="$MFI_BIN --wwpn $WWPN"
Z8=0000000000000000
KA=00000000000000aa
KB=00000000000000bb
REG_A=$Z8${KA}$Z8 # REGISTER: service action key A
REG_B=$Z8${KB}$Z8
RES_A=${KA}$Z8$Z8 # RESERVE / RELEASE / CLEAR with key A
RES_B=${KB}$Z8$Z8
W=2a000000070000000100 # WRITE(10), LBA 0x700, 1 block
R=28000000070000000100 # READ(10), same block
ZERO512=$(printf '%01024d' 0)
B="sh $MFI cdb 0"
OUT=/tmp/pr.out
cat > /tmp/pr.vs <<S
lun 1 0
tur
tur
cdb 5f000000000000001800 data $REG_A
cdb 5f010100000000001800 data $RES_A
$B $W data $ZERO512 > /tmp/pr1
$B $R in 512 > /tmp/pr2
$B 5f000000000000001800 data $REG_B > /tmp/pr3
$B $W data $ZERO512 > /tmp/pr4
$B 5e000000000000004000 in 64 > /tmp/pr5
$B 5e010000000000004000 in 64 > /tmp/pr6
cdb $W out 512
cdb 5f020100000000001800 data $RES_A
$B $W data $ZERO512 > /tmp/pr7
$B 5f010300000000001800 data $RES_B > /tmp/pr8
cdb $R in 512
cdb 5f010100000000001800 data $RES_A
$B 5f030000000000001800 data $RES_B > /tmp/pr9
cdb $R in 512
cdb $R in 512
S
vs_run /tmp/pr.vs 160
[ "$(grep -c ' exit=0$' $OUT)" = 9 ] || fail "an mfi command failed"
has() { # FILE SUBSTRING WHAT
	grep -q -- "$2" "$1" || fail "$3: $(cat "$1")"
	ok "$3"
}
want 4 "response=Ok status=0x00" "vhost: REGISTER key aa"
want 5 "response=Ok status=0x00" "vhost: RESERVE Write Exclusive"
has /tmp/pr1 "cmd_status=0x2f scsi_status=0x18" "megasas, not registered: WRITE gets RESERVATION CONFLICT"
has /tmp/pr2 "cmd_status=0x00 scsi_status=0x00" "megasas: READ allowed under Write Exclusive"
has /tmp/pr3 "cmd_status=0x00" "megasas: REGISTER key bb"
has /tmp/pr4 "scsi_status=0x18" "megasas, registered: WRITE still conflicts (Write Exclusive)"
has /tmp/pr5 "data=0000000[0-9a-f]00000010${KA}${KB}$" "megasas: READ KEYS lists aa and bb"
has /tmp/pr6 "data=0000000[0-9a-f]00000010${KA}000000000001" "megasas: READ RESERVATION: aa, Write Exclusive"
want 12 "response=Ok status=0x00" "vhost, holder: WRITE"
want 13 "response=Ok status=0x00" "vhost: RELEASE"
has /tmp/pr7 "cmd_status=0x00 scsi_status=0x00" "megasas: WRITE after the release"
has /tmp/pr8 "cmd_status=0x00" "megasas: RESERVE Exclusive Access with key bb"
want 16 "status=0x18" "vhost, registered non-holder: READ conflicts (Exclusive Access)"
want 17 "status=0x18" "vhost: RESERVE while another holds the LUN conflicts"
has /tmp/pr9 "cmd_status=0x00" "megasas: CLEAR"
want 19 "status=0x02 resid=0 sense_len=96 sense=700006000000000a000000002a03" \
	"vhost: unit attention RESERVATIONS PREEMPTED after CLEAR"
want 20 "response=Ok status=0x00" "vhost: READ once the reservation is gone"

lun_teardown vhost $WWPN
check rmmod tcm_virt
ok "module unloaded"
