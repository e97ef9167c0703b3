#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# T10 PI (VIRTIO_SCSI_F_T10_PI) between the driver's buffers and a
# protected backstore (rd_mcp with pi_prot_type=1), driven by the userspace
# driver: a WRITE(10) with WRPROTECT=1 carries type 1 protection information
# ahead of its data (pi_bytesout), a READ(10) with RDPROTECT=1 returns it
# (pi_bytesin) and it checks (guard CRC, reference tag = LBA); a bad guard
# tag is refused with ABORTED COMMAND, LOGICAL BLOCK GUARD CHECK FAILED
# (10h/01h) and the block keeps its data; plain WRITE(10)/READ(10) (no PI
# from the initiator) work on the protected LUN.
. "$TOP/tools/testing/lib.sh"

check tcm_load
d=$CFG/core/rd_mcp_0/pi0
mkdir -p $d && echo "rd_pages=4096" > $d/control && echo 1 > $d/enable || fail "rd_mcp pi0"
echo 1 > $d/attrib/pi_prot_type || fail "pi_prot_type=1"
lun_setup vhost $WWPN 16 pi0
OUT=/tmp/pi.out
cat > /tmp/pi.vs <<'S'
lun 1 0
tur
tur
pi-write 100 8 3
pi-read 100 8 3
pi-write-bad 100 8 4
pi-read 100 8 3
write10 300 8 5
read10 300 8 5
read10 100 8 3
S
$VSDRV --wwpn $WWPN --pi run /tmp/pi.vs > $OUT 2>&1
rc=$?
cat $OUT
[ $rc = 0 ] || fail "vsdrv: rc=$rc"
want 4 "response=Ok status=0x00" "WRITE(10) WRPROTECT=1 with type 1 PI"
want 5 "pi_verify=ok" "READ(10) RDPROTECT=1: data and PI check"
grep -E '^ *6 ' $OUT | grep -Eq 'status=0x02 .*sense=[0-9a-f]{4}0b[0-9a-f]{18}1001' ||
	fail "bad guard tag: ABORTED COMMAND 10h/01h expected: $(grep -E '^ *6 ' $OUT)"
ok "a bad guard tag is refused: ABORTED COMMAND, LOGICAL BLOCK GUARD CHECK FAILED"
want 7 "pi_verify=ok" "the refused WRITE changed nothing"
want 8 "response=Ok status=0x00" "WRITE(10) without PI"
want 9 "verify=ok" "READ(10) without PI of what it wrote"
want 10 "verify=ok" "READ(10) without PI from a protected LUN"

lun_teardown vhost $WWPN
check rmmod tcm_virt
check rmdir $d
