#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh - `make bench`, inside the VM booted on the non-debug kernel:
# figures (not pass/fail) for C vhost_scsi and tcm_virt measured in the same
# VM in the same run, with their ratio.
#
# Measured now: the configfs control path (what targetcli and libvirt drive):
# TPG create + nexus + LUN link, and the reverse, N times; and the cost of
# open()+close() of the vhost device.  The I/O benchmark joins when the
# vhost I/O path does.
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
N=${BENCH_N:-200}

rd_setup() {
	mkdir -p $CFG/core/rd_mcp_0/rd0 &&
		echo rd_pages=256 > $CFG/core/rd_mcp_0/rd0/control &&
		echo 1 > $CFG/core/rd_mcp_0/rd0/enable
}

# configfs_cycle FABRIC: seconds for N create/link/unlink/remove cycles
configfs_cycle() {
	local W=$CFG/$1/$WWPN t0 t1 i
	mkdir -p "$W"
	t0=$(date +%s.%N)
	for i in $(seq 0 $((N - 1))); do
		local T=$W/tpgt_$((i % 256))
		mkdir "$T"
		echo $INITIATOR > "$T/nexus"
		mkdir "$T/lun/lun_0"
		ln -s $CFG/core/rd_mcp_0/rd0 "$T/lun/lun_0/port"
		rm "$T/lun/lun_0/port"
		rmdir "$T/lun/lun_0"
		echo NULL > "$T/nexus"
		rmdir "$T"
	done
	t1=$(date +%s.%N)
	rmdir "$W" "$CFG/$1"
	echo "$t1 - $t0" | bc -l
}

# open_close DEV: microseconds per open()+close()
open_close() {
	python3 - "$1" <<'PY'
import os, sys, time
dev, n = sys.argv[1], 2000
t0 = time.perf_counter()
for _ in range(n):
    os.close(os.open(dev, os.O_RDWR))
print("%.1f" % ((time.perf_counter() - t0) / n * 1e6))
PY
}

rd_setup || fail "rd_mcp backstore"
modprobe vhost_scsi || fail "vhost_scsi"
tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV || fail "tcm_virt"
c_cfg=$(configfs_cycle vhost)
r_cfg=$(configfs_cycle $ALT_FABRIC)
c_oc=$(open_close /dev/vhost-scsi)
r_oc=$(open_close /dev/$ALT_DEV)
rmmod tcm_virt vhost_scsi

echo
echo "tcm_virt benchmark, $(date -u +%F), kernel $(uname -r), $(nproc) vCPU (QEMU TCG)"
printf '%-44s %14s %14s %8s\n' "metric" "C vhost_scsi" "tcm_virt" "ratio"
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '%-44s %14.1f %14.1f %8s\n' "configfs cycles/s (TPG+nexus+LUN, N=$N)" \
	"$(echo "$N / $c_cfg" | bc -l)" "$(echo "$N / $r_cfg" | bc -l)" "$(ratio "$c_cfg" "$r_cfg")"
printf '%-44s %14s %14s %8s\n' "open+close of the device (us, lower better)" \
	"$c_oc" "$r_oc" "$(ratio "$c_oc" "$r_oc")"
echo "(ratio > 1: tcm_virt faster)"
