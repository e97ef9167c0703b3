#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh - `make bench`, inside the VM booted on the non-debug kernel:
# figures (not pass/fail) for C vhost_scsi and tcm_virt measured in the same
# VM in the same run, with their ratio.
#
# Measured: I/O with the userspace driver (tools/vsdrv) on a 1 GiB rd_mcp
# LUN exported by both (4 KiB random read/write at QD1 and QD32, 1 MiB
# sequential, 1 and 4 queues): IOPS, MB/s, p50/p99 latency, CPU per I/O;
# the same LUN through the megasas front end (tools/mfi, LD_READ/LD_WRITE);
# kernel memory per open device; the configfs control path (TPG create +
# nexus + LUN link and the reverse, N times); open()+close() of the device.
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
N=${BENCH_N:-200}

rd_setup() {
	mkdir -p $CFG/core/rd_mcp_0/rd0 &&
		echo rd_pages=262144 > $CFG/core/rd_mcp_0/rd0/control &&
		echo 1 > $CFG/core/rd_mcp_0/rd0/enable
}
SECS=${BENCH_SECS:-5}
IO_WWPN=naa.5001405000000009

# io_row NAME VSDRV-ARGS...: one benchmark row, C then tcm_virt
io_rows=()
io_row() {
	local name=$1 c r
	shift
	c=$($VSDRV --dev /dev/vhost-scsi --wwpn $IO_WWPN "$@" --secs $SECS)
	r=$($VSDRV --dev /dev/$ALT_DEV --wwpn $IO_WWPN "$@" --secs $SECS)
	io_rows+=("$name|$c|$r")
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | tr -d '%'; }

# mfi_row NAME MFI-BENCH-ARGS...: the megasas front end (tools/mfi, LD 0 =
# the same rd_mcp LUN) on the TPG the vhost rows of tcm_virt used.
MFI_BIN=${MFI_BIN:-$TOP/tools/target/release/mfi}
mfi_rows=()
mfi_row() {
	local name=$1 m
	shift
	m=$($MFI_BIN --wwpn $IO_WWPN bench 0 "$@" --secs $SECS)
	mfi_rows+=("$name|$m")
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
# BENCH_ONLY=mem: only the memory rows (scripts/vm.sh env BENCH_ONLY=mem
# scripts/bench.sh).
only=${BENCH_ONLY:-all}
if [ "$only" = all ]; then
	c_cfg=$(configfs_cycle vhost)
	r_cfg=$(configfs_cycle $ALT_FABRIC)
	c_oc=$(open_close /dev/vhost-scsi)
	r_oc=$(open_close /dev/$ALT_DEV)
fi

for f in vhost $ALT_FABRIC; do
	mkdir -p $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0
	echo $INITIATOR > $CFG/$f/$IO_WWPN/tpgt_1/nexus
	ln -s $CFG/core/rd_mcp_0/rd0 $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0/disk
done
# Kernel memory per device: opened and set up as QEMU does (vhost core's
# share), then what the endpoint and the command pools add with 1 and 4
# I/O queues of 128 entries.
# One port per open device (a TPG serves one device): MEM_WWPN%02x.
MEM_WWPN=naa.5001405000000a
MEM_N=8
mem_ports() { # FABRIC add|del
	local i T
	for i in $(seq 0 $((MEM_N - 1))); do
		T=$CFG/$1/$(printf '%s%02x' $MEM_WWPN "$i")/tpgt_1
		if [ "$2" = add ]; then
			mkdir -p $T/lun/lun_0 && echo $INITIATOR > $T/nexus &&
				ln -s $CFG/core/rd_mcp_0/rd0 $T/lun/lun_0/disk
		else
			rm $T/lun/lun_0/disk && rmdir $T/lun/lun_0 && echo NULL > $T/nexus &&
				rmdir $T "${T%/tpgt_1}"
		fi
	done
}
mem_ports vhost add && mem_ports $ALT_FABRIC add || fail "memory benchmark ports"
c_mem=$($VSDRV --dev /dev/vhost-scsi --wwpn "$MEM_WWPN%02x" openmem $MEM_N)
r_mem=$($VSDRV --dev /dev/$ALT_DEV --wwpn "$MEM_WWPN%02x" openmem $MEM_N)
c_mem4=$($VSDRV --dev /dev/vhost-scsi --wwpn "$MEM_WWPN%02x" --queues 4 openmem $MEM_N)
r_mem4=$($VSDRV --dev /dev/$ALT_DEV --wwpn "$MEM_WWPN%02x" --queues 4 openmem $MEM_N)
mem_ports vhost del && mem_ports $ALT_FABRIC del || fail "memory benchmark ports"
if [ "$only" = all ]; then
# Fill the disk once so that reads return data pages.
$VSDRV --dev /dev/vhost-scsi --wwpn $IO_WWPN bench --rw write --bs 1048576 --qd 8 --secs 2 >/dev/null
io_row "4k randread QD1, 1 queue" bench --rw randread --bs 4096 --qd 1
io_row "4k randwrite QD1, 1 queue" bench --rw randwrite --bs 4096 --qd 1
io_row "4k randread QD32, 1 queue" bench --rw randread --bs 4096 --qd 32
io_row "4k randwrite QD32, 1 queue" bench --rw randwrite --bs 4096 --qd 32
io_row "4k randread QD32, 4 queues+workers" --queues 4 --workers bench --rw randread --bs 4096 --qd 32
io_row "4k randwrite QD32, 4 queues+workers" --queues 4 --workers bench --rw randwrite --bs 4096 --qd 32
io_row "1M read QD4, 1 queue" bench --rw read --bs 1048576 --qd 4
io_row "1M write QD4, 1 queue" bench --rw write --bs 1048576 --qd 4
mfi_row "4k randread QD1, 1 queue" --rw randread --bs 4096 --qd 1
mfi_row "4k randwrite QD1, 1 queue" --rw randwrite --bs 4096 --qd 1
mfi_row "4k randread QD32, 1 queue" --rw randread --bs 4096 --qd 32
mfi_row "4k randwrite QD32, 1 queue" --rw randwrite --bs 4096 --qd 32
fi
for f in vhost $ALT_FABRIC; do
	rm $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0/disk
	rmdir $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0
	echo NULL > $CFG/$f/$IO_WWPN/tpgt_1/nexus
	rmdir $CFG/$f/$IO_WWPN/tpgt_1 $CFG/$f/$IO_WWPN $CFG/$f
done
rmmod tcm_virt vhost_scsi

echo
echo "tcm_virt benchmark, $(date -u +%F), kernel $(uname -r), $(nproc) vCPU (QEMU TCG)"
printf '%-44s %14s %14s %8s\n' "metric" "C vhost_scsi" "tcm_virt" "ratio"
ratio() { if [ "$(echo "${2:-0} == 0" | bc -l)" = 1 ]; then echo -; else echo "scale=2; $1 / $2" | bc -l; fi; }
if [ "$only" = all ]; then
	printf '%-44s %14.1f %14.1f %8s\n' "configfs cycles/s (TPG+nexus+LUN, N=$N)" \
		"$(echo "$N / $c_cfg" | bc -l)" "$(echo "$N / $r_cfg" | bc -l)" "$(ratio "$c_cfg" "$r_cfg")"
	printf '%-44s %14s %14s %8s\n' "open+close of the device (us, lower better)" \
		"$c_oc" "$r_oc" "$(ratio "$c_oc" "$r_oc")"
fi
mem_row() { # LABEL FIELD C-OUTPUT RUST-OUTPUT
	local c r
	c=$(field "$3" "$2") r=$(field "$4" "$2")
	printf '%-44s %14s %14s %8s\n' "$1" "$c" "$r" "$(ratio "${c:-0}" "${r:-1}")"
}
mem_row "kernel memory per open device (KiB, lower better)" kib_per_open "$c_mem" "$r_mem"
mem_row "+ endpoint and pools, 1 queue (KiB)" kib_per_endpoint "$c_mem" "$r_mem"
mem_row "+ endpoint and pools, 4 queues (KiB)" kib_per_endpoint "$c_mem4" "$r_mem4"
echo
printf '%-38s %22s %22s %7s %7s\n' "I/O (vsdrv, ${SECS}s each)" "C: IOPS MB/s p50/p99us" \
	"tcm_virt: same" "IOPS" "CPU/IO"
for row in "${io_rows[@]}"; do
	IFS='|' read -r name c r <<< "$row"
	ci=$(field "$c" iops) ri=$(field "$r" iops)
	cc=$(field "$c" cpu_us_per_io) rc=$(field "$r" cpu_us_per_io)
	printf '%-38s %22s %22s %7s %7s\n' "$name" \
		"$ci $(field "$c" mbps) $(field "$c" p50_us)/$(field "$c" p99_us)" \
		"$ri $(field "$r" mbps) $(field "$r" p50_us)/$(field "$r" p99_us)" \
		"$(ratio "${ri:-0}" "${ci:-1}")" "$(ratio "${cc:-0}" "${rc:-1}")"
done
echo "(ratio > 1: tcm_virt faster / cheaper; CPU/IO: system-wide busy CPU time per I/O)"
[ ${#mfi_rows[@]} -gt 0 ] || exit 0
echo
printf '%-38s %22s %22s %7s %7s\n' "megasas front end (mfi, LD 0)" "tcm_virt megasas" \
	"C vhost_scsi (above)" "IOPS" "CPU/IO"
for row in "${mfi_rows[@]}"; do
	IFS='|' read -r name m <<< "$row"
	c=
	for io in "${io_rows[@]}"; do
		[ "${io%%|*}" = "$name" ] && { c=${io#*|}; c=${c%%|*}; }
	done
	mi=$(field "$m" iops) ci=$(field "$c" iops)
	mc=$(field "$m" cpu_us_per_io) cc=$(field "$c" cpu_us_per_io)
	printf '%-38s %22s %22s %7s %7s\n' "$name" \
		"$mi $(field "$m" mbps) $(field "$m" p50_us)/$(field "$m" p99_us)" \
		"$ci $(field "$c" mbps) $(field "$c" p50_us)/$(field "$c" p99_us)" \
		"$(ratio "${mi:-0}" "${ci:-1}")" "$(ratio "${cc:-0}" "${mc:-1}")"
done
echo "(megasas ratios against C vhost_scsi on the same LUN in the same run)"
