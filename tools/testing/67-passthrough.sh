#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Pass-through (pscsi) and remapped LUNs, driven by the userspace driver:
# a scsi_debug disk (descriptor-format sense, dsense=1) exported through
# pscsi at LUN 5 of a TPG whose LUN 0 is an rd_mcp disk.  INQUIRY answers
# with the host device's identity, a vendor-specific CDB (C0h) reaches the
# device (its descriptor-format sense comes back, where target core's own
# emulation answers in fixed format), READ/WRITE move data; REPORT LUNS lists
# the TPG's mapping (0 and 5, not the host's 0), and follows an unlink and a
# relink at LUN 9.
. "$TOP/tools/testing/lib.sh"

modprobe scsi_debug dev_size_mb=16 dsense=1 || fail "modprobe scsi_debug"
sdebug_disk || fail "no scsi_debug disk"
sd=$(ls -d $SDEBUG/adapter*/host*/target*/*/block/$SD_DISK)
hctl=${sd%/block/*}
hctl=${hctl##*/}
sd=${sd##*/}
[ -n "$hctl" ] && [ -b "/dev/$sd" ] || fail "no scsi_debug disk"
IFS=: read -r h c t l <<< "$hctl"
PS=$CFG/core/pscsi_0/sdbg
mkdir -p $PS || fail "pscsi backstore"
echo "scsi_host_id=$h,scsi_channel_id=$c,scsi_target_id=$t,scsi_lun_id=$l" > $PS/control ||
	fail "pscsi control"
echo "/dev/$sd" > $PS/udev_path || fail "pscsi udev_path"
echo 1 > $PS/enable || fail "pscsi enable"
ok "pscsi backstore on scsi_debug $hctl"
check tcm_load
lun_setup vhost $WWPN 64
T=$CFG/vhost/$WWPN/tpgt_1
mkdir $T/lun/lun_5 && ln -s $PS $T/lun/lun_5/pt || fail "LUN 5"
OUT=/tmp/pt.out
cat > /tmp/pt.vs <<S
lun 1 5
tur
tur
cdb 120000006000 inhex 96
cdb c0000000000000000000 in 0
write10 100 8 7
read10 100 8 7
lun 1 0
cdb c0000000000000000000 in 0
cdb a00000000000000001000000 inhex 256
sh rm $T/lun/lun_5/pt && rmdir $T/lun/lun_5
tur
cdb a00000000000000001000000 inhex 256
sh mkdir $T/lun/lun_9 && ln -s $PS $T/lun/lun_9/pt
tur
cdb a00000000000000001000000 inhex 256
lun 1 9
tur
tur
read10 100 8 7
S
vs_run /tmp/pt.vs 220
# "Linux   scsi_debug" in the standard INQUIRY data
want 4 "4c696e7578202020736373695f6465627567" "INQUIRY: the host device's identity (Linux scsi_debug)"
want 5 "status=0x02" "vendor-specific C0h answered by the device"
want 5 "sense=72" "...with the device's descriptor-format sense"
want 6 "response=Ok status=0x00" "WRITE(10) through pscsi"
want 7 "verify=ok" "READ(10) through pscsi, data verified"
want 9 "sense=70" "the same C0h on the emulated LUN 0: target core's fixed-format sense"
luns() { # LINE LUN...: REPORT LUNS on line LINE lists exactly these LUNs
	local line=$1 data n got=() want
	shift
	data=$(grep -E "^ *$line " $OUT | sed -n 's/.* data=\([0-9a-f]*\).*/\1/p')
	n=$((16#${data:0:8} / 8))
	for i in $(seq 0 $((n - 1))); do
		got+=($((16#${data:$((16 + 16 * i)):4})))
	done
	want=$(printf '%s\n' "$@" | sort -n | tr '\n' ' ')
	[ "$(printf '%s\n' "${got[@]}" | sort -n | tr '\n' ' ')" = "$want" ] ||
		fail "line $line: REPORT LUNS lists ${got[*]}, expected $*"
	ok "REPORT LUNS (line $line): LUNs $*"
}
luns 10 0 5
luns 13 0
luns 16 0 9
want 20 "verify=ok" "LUN 9 reads what was written at LUN 5"

rm $T/lun/lun_9/pt && rmdir $T/lun/lun_9
lun_teardown vhost $WWPN
check rmmod tcm_virt
check rmdir $PS $CFG/core/rd_mcp_0/rd0
check rmmod_idle scsi_debug
