#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh - `make bench`, inside the VM booted on the non-debug kernel:
# figures (not pass/fail) for C vhost_scsi and tcm_virt measured in the same
# VM in the same run, with their ratio.
#
# I/O rows: the userspace driver (tools/vsdrv, one thread per queue,
# EVENT_IDX, sleeping on the call eventfd) on LUNs both devices export:
# rd_mcp with rd_nullio=1 (no data: the fabric's own cost), rd_mcp, fileio
# and iblock on null_blk; the same LUN through the megasas front end
# (tools/mfi) on five rows.  Each row: one discarded 1-second warm-up run
# per side, then BENCH_RUNS (7) rounds of one run of BENCH_SECS (3) seconds
# per side, the rounds' orders the rotations of the sides and of their
# reverse (each side runs after each other side equally often);
# scripts/bench-report.py prints the medians, the min-max range of each
# side, the ratio of medians and the range of the rounds' paired ratios.
# "direct" rows set the backstore's submit_type and complete_type to 1
# (submission and completion in the caller's context) for both devices,
# "queued" rows to 2 (both queued to target core's workqueues).
# "pinned" rows run every client on vCPU 0, "split" rows the client on
# vCPU 0 and the device's worker on vCPU 1; "poll" rows give every I/O
# ring a busy-poll timeout (tcm_virt polls, C does not).
# Also: kernel memory per open device; the configfs control path (TPG
# create + nexus + LUN link and the reverse, N times); open()+close().
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
N=${BENCH_N:-200}

# The backstores, one LUN each in both TPGs: 0 rd_mcp (512 MiB), 1 rd_mcp
# without data (rd_nullio=1), 2 fileio (a file in the VM's memory), 3
# iblock on null_blk (completes in its submitter's context).
BS_DEVS=(rd_mcp_0/rd0 rd_mcp_1/rdnull fileio_0/file iblock_0/nullb)
rd_setup() {
	modprobe null_blk nr_devices=1 gb=4 irqmode=0 || return 1
	mkdir -p $CFG/core/rd_mcp_0/rd0 $CFG/core/rd_mcp_1/rdnull \
		$CFG/core/fileio_0/file $CFG/core/iblock_0/nullb &&
		echo rd_pages=131072 > $CFG/core/rd_mcp_0/rd0/control &&
		echo rd_pages=131072,rd_nullio=1 > $CFG/core/rd_mcp_1/rdnull/control &&
		echo fd_dev_name=/tmp/bench.img,fd_dev_size=268435456 > $CFG/core/fileio_0/file/control &&
		echo udev_path=/dev/nullb0 > $CFG/core/iblock_0/nullb/control || return 1
	local d
	for d in "${BS_DEVS[@]}"; do
		echo 1 > $CFG/core/$d/enable || return 1
	done
}
SECS=${BENCH_SECS:-3}
RUNS=${BENCH_RUNS:-7}
IO_WWPN=naa.5001405000000009
RES=/tmp/bench.res
: > $RES
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | tr -d '%'; }
MFI_BIN=${MFI_BIN:-$TOP/tools/target/release/mfi}

# one SIDE LUN OPTIONS BENCH-ARGS: one run; C = C vhost_scsi, T = tcm_virt's
# vhost device, M = tcm_virt's megasas adapter (LD LUN of the TPG T uses).
# PIN: a command put before the client (the "pinned" rows: taskset).
# BENCH_MFI_KICK=always: the megasas client kicks every frame, not reading
# iq_no_kick (Documentation/megasas.rst, "Kicks"); default: as needed.
PIN=
one() {
	case $1 in
	C) $PIN $VSDRV --dev /dev/vhost-scsi --wwpn $IO_WWPN $3 bench --lun $2 $4 ;;
	T) $PIN $VSDRV --dev /dev/$ALT_DEV --wwpn $IO_WWPN $3 bench --lun $2 $4 ;;
	M) $PIN $MFI_BIN --wwpn $IO_WWPN $3 bench $2 $4 ${BENCH_MFI_KICK:+--kick $BENCH_MFI_KICK} ;;
	esac
}

# direct LUN 0|1: the backstore's submission and completion queued to
# target core's workqueues (0, the fabric's default) or in the caller's
# context (1), for both devices at once.
direct() {
	local a=$CFG/core/${BS_DEVS[$1]}/attrib
	echo "$2" > $a/submit_type && echo "$2" > $a/complete_type
}

# row NAME SIDES LUN OPTIONS BENCH-ARGS: a warm-up run per side
# (discarded), then RUNS (or ROW_RUNS) rounds of one run per side in the
# orders below; each run's line goes to $RES as NAME<TAB>SIDE<TAB>OUTPUT.
# BENCH_ROWS (a bash regular expression) keeps only the rows whose name
# matches.
row() {
	local name=$1 sides=$2 lun=$3 opts=$4 args=$5 s i out
	[[ $name =~ ${BENCH_ROWS:-.} ]] || return 0
	echo "bench: $name" >&2
	for s in $sides; do
		one $s $lun "$opts" "$args --secs 1" > /dev/null
	done
	# Round i takes the sides in the order of the i-th of: the rotations
	# of SIDES, then those of SIDES reversed (for three sides C T M, T M C,
	# M C T, M T C, T C M, C M T: each side runs right after each other
	# side equally often; a plain rotation keeps the cycle C T M C T M ...,
	# so T would always follow C and M always T).
	local -a sl=($sides) rl
	local n=${#sl[@]} j k
	for ((j = 0; j < n; j++)); do
		rl[j]=${sl[n - 1 - j]}
	done
	for i in $(seq 0 $((${ROW_RUNS:-$RUNS} - 1))); do
		k=$((i % (2 * n)))
		for ((j = 0; j < n; j++)); do
			if ((k < n)); then
				s=${sl[(j + k) % n]}
			else
				s=${rl[(j + k - n) % n]}
			fi
			out=$(one $s $lun "$opts" "$args --secs $SECS") || out="failed $out"
			printf '%s\t%s\t%s\n' "$name" $s "$out" >> $RES
		done
	done
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
# TCM_PARAMS: more module parameters of tcm_virt (scripts/bench-ab.sh)
tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV ${TCM_PARAMS:-} || fail "tcm_virt"
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
	mkdir -p $CFG/$f/$IO_WWPN/tpgt_1
	echo $INITIATOR > $CFG/$f/$IO_WWPN/tpgt_1/nexus
	for lun in 0 1 2 3; do
		mkdir $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_$lun
		ln -s $CFG/core/${BS_DEVS[$lun]} $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_$lun/disk
	done
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
	# Fill the disks once so that reads return data pages.
	for lun in 0 2; do
		$VSDRV --dev /dev/vhost-scsi --wwpn $IO_WWPN bench --lun $lun --rw write \
			--bs 1048576 --qd 8 --secs 2 > /dev/null
	done
	Q4="--queues 4 --workers"
	row "nullio 4k randread QD32" "C T" 1 "" "--rw randread --bs 4096 --qd 32"
	direct 1 1
	row "nullio 4k randread QD32, direct" "C T" 1 "" "--rw randread --bs 4096 --qd 32"
	direct 1 0
	# At QD1 a run's IOPS depend on whether the scheduler puts the client
	# and the device's worker on one vCPU or on two (a wake-up across
	# vCPUs costs the emulator a lot): 9 to 29 thousand IOPS for the same
	# side within one row.  Unpinned, each run is a draw of that: twice
	# the rounds, so that the median is less one draw's.
	ROW_RUNS=$((2 * RUNS)) row "rd 4k randread QD1" "C T M" 0 "" "--rw randread --bs 4096 --qd 1"
	ROW_RUNS=$((2 * RUNS)) row "rd 4k randwrite QD1" "C T" 0 "" "--rw randwrite --bs 4096 --qd 1"
	# Pinned, the client on vCPU 0 and its workers with it (a vhost
	# worker takes its owner's CPU mask; target core's kworkers, C's
	# submission and completion, run where their work is queued).
	PIN="taskset -c 0" row "rd 4k randread QD1, pinned" "C T M" 0 "" "--rw randread --bs 4096 --qd 1"
	PIN="taskset -c 0" row "rd 4k randwrite QD1, pinned" "C T" 0 "" "--rw randwrite --bs 4096 --qd 1"
	# Split: the client on vCPU 0, the device's worker on vCPU 1 (vsdrv
	# --worker-cpu), so that the worker can poll the ring while the client
	# runs; then the same with 50 us of polling (VHOST_SET_VRING_BUSYLOOP_
	# TIMEOUT, which C vhost_scsi accepts and does not use; the megasas
	# adapter's worker polls its inbound queue).
	PIN="taskset -c 0" row "rd 4k randread QD1, split" "C T M" 0 "--worker-cpu 1" \
		"--rw randread --bs 4096 --qd 1"
	PIN="taskset -c 0" row "rd 4k randread QD1, split, poll 50 us" "C T M" 0 \
		"--worker-cpu 1 --busyloop 50" "--rw randread --bs 4096 --qd 1"
	row "rd 4k randread QD32" "C T M" 0 "" "--rw randread --bs 4096 --qd 32"
	row "rd 4k randwrite QD32" "C T M" 0 "" "--rw randwrite --bs 4096 --qd 32"
	row "rd 4k randread QD32, poll 50 us" "C T M" 0 "--busyloop 50" "--rw randread --bs 4096 --qd 32"
	direct 0 1
	row "rd 4k randread QD32, direct" "C T" 0 "" "--rw randread --bs 4096 --qd 32"
	direct 0 0
	row "rd 4k randread QD32, 2 queues" "C T" 0 "--queues 2 --workers" \
		"--rw randread --bs 4096 --qd 32"
	row "rd 4k randread QD32, 4 queues" "C T" 0 "$Q4" "--rw randread --bs 4096 --qd 32"
	row "rd 4k randwrite QD32, 4 queues" "C T" 0 "$Q4" "--rw randwrite --bs 4096 --qd 32"
	# Four queues with the same choice for both: where each side's
	# per-I/O cost on several queues comes from its code rather than from
	# where the command runs.
	direct 0 1
	row "rd 4k randread QD32, 4 queues, direct" "C T" 0 "$Q4" "--rw randread --bs 4096 --qd 32"
	direct 0 2
	row "rd 4k randread QD32, 4 queues, queued" "C T" 0 "$Q4" "--rw randread --bs 4096 --qd 32"
	direct 0 0
	row "rd 1M read QD4" "C T" 0 "" "--rw read --bs 1048576 --qd 4"
	row "rd 1M write QD4" "C T" 0 "" "--rw write --bs 1048576 --qd 4"
	row "fileio 4k randread QD32" "C T" 2 "" "--rw randread --bs 4096 --qd 32"
	row "iblock null_blk 4k randread QD32" "C T" 3 "" "--rw randread --bs 4096 --qd 32"
	direct 3 1
	row "iblock null_blk 4k randread QD32, direct" "C T" 3 "" \
		"--rw randread --bs 4096 --qd 32"
	direct 3 0
fi
for f in vhost $ALT_FABRIC; do
	for lun in 0 1 2 3; do
		rm $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_$lun/disk
		rmdir $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_$lun
	done
	echo NULL > $CFG/$f/$IO_WWPN/tpgt_1/nexus
	rmdir $CFG/$f/$IO_WWPN/tpgt_1 $CFG/$f/$IO_WWPN $CFG/$f
done
rmmod tcm_virt vhost_scsi

echo
# The guest's idle loop: make bench boots it with idle=poll (BENCH_IDLE).
idle=$(grep -o '\bidle=[a-z]*' /proc/cmdline | tail -1)
echo "tcm_virt benchmark, $(date -u +%F), commit $(git -C "$TOP" describe --always --dirty 2>/dev/null), kernel $(uname -r), $(nproc) vCPU (QEMU TCG), ${idle:-idle=halt}"
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
[ "$only" = all ] || exit 0
echo
python3 "$TOP/scripts/bench-report.py" "$RES" "$RUNS (unpinned QD1 rows: $((2 * RUNS)))" "$SECS"
# BENCH_RAW=1: each run's own line too (signals and kicks per I/O, latency)
if [ "${BENCH_RAW:-0}" = 1 ]; then sed 's/^/raw: /' "$RES"; fi
