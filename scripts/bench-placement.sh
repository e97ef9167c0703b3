#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-placement.sh - inside the VM booted on the bench kernel: where the
# scheduler puts a QD1 client and its worker, for tcm_virt's vhost device
# (T, tools/vsdrv) and its megasas adapter (M, tools/mfi), unpinned, on one
# rd_mcp LUN.  Each of ROUNDS (3) rounds runs each side for PLACE_SECS (3)
# seconds; the scheduler statistics of the client's threads
# (/proc/PID/task/TID/sched, kernel.sched_schedstats=1) are read once
# after 0.7 s and once 0.5 s before the end, nothing in between (a sampler
# running beside a QD1 run changes where things run): per thread, the
# wake-ups and how many of them were local (the wakee ran on the waker's
# CPU: client and worker side by side), migrations, and CPU time.
#
# usage: KDIR=<bench kernel> scripts/vm.sh env [KO=...] [ROUNDS=3]
#        [PLACE_SECS=3] [SIDES="T M"] [MFI_ALT=path] scripts/bench-placement.sh
# Side N is the mfi binary MFI_ALT (another build of the client).
# make bench's CPU model (no rep movsb/stosb in the guest kernel, see the
# Makefile's BENCH_CPU): VM_QEMU_OPTS="-cpu max,erms=off,fsrm=off,fsrs=off,fzrm=off,fsrc=off".
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
mkdir -p $CFG/core/rd_mcp_0/rd0
echo rd_pages=131072 > $CFG/core/rd_mcp_0/rd0/control
echo 1 > $CFG/core/rd_mcp_0/rd0/enable
tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV || fail "insmod"
IO_WWPN=naa.5001405000000009
T=$CFG/$ALT_FABRIC/$IO_WWPN/tpgt_1
mkdir -p $T/lun/lun_0
echo $INITIATOR > $T/nexus
ln -s $CFG/core/rd_mcp_0/rd0 $T/lun/lun_0/disk
MFI_BIN=${MFI_BIN:-$TOP/tools/target/release/mfi}
SECS=${PLACE_SECS:-3}
$VSDRV --dev /dev/$ALT_DEV --wwpn $IO_WWPN bench --lun 0 --rw write --bs 1048576 --qd 8 --secs 2 >/dev/null

# snap PID: per thread "tid comm wakeups local migrations runtime_ms"
snap() {
	local t
	for t in /proc/$1/task/*; do
		awk -v tid=${t##*/} -v comm="$(cat $t/comm 2>/dev/null)" '
			$1 == "nr_wakeups" { w = $3 } $1 == "nr_wakeups_local" { l = $3 }
			$1 == "se.nr_migrations" { m = $3 } $1 == "se.sum_exec_runtime" { r = $3 }
			END { printf "%s %s %d %d %d %.0f\n", tid, comm, w, l, m, r }' $t/sched 2>/dev/null
	done
}

sysctl -q kernel.sched_schedstats=1
for round in $(seq 1 "${ROUNDS:-3}"); do
	for side in ${SIDES:-T M}; do
		case $side in
		T) $VSDRV --dev /dev/$ALT_DEV --wwpn $IO_WWPN bench --lun 0 --rw randread --bs 4096 \
			--qd 1 --secs $SECS > /tmp/place.out & ;;
		M) $MFI_BIN --wwpn $IO_WWPN bench 0 --rw randread --bs 4096 --qd 1 --secs $SECS \
			> /tmp/place.out & ;;
		N) $MFI_ALT --wwpn $IO_WWPN bench 0 --rw randread --bs 4096 --qd 1 --secs $SECS \
			> /tmp/place.out & ;;
		esac
		pid=$!
		sleep 0.7
		snap $pid > /tmp/place.a
		sleep $(echo "$SECS - 1.2" | bc)
		snap $pid > /tmp/place.b
		wait $pid
		echo "round $round $side: $(grep -o 'iops=[0-9]*\|cpu_us_per_io=[0-9.]*\|worker_us_per_io=[0-9.]*' /tmp/place.out | tr '\n' ' ')"
		awk 'NR == FNR { w[$1] = $3; l[$1] = $4; m[$1] = $5; r[$1] = $6; next }
			($1 in w) && $3 > w[$1] { printf "   %-12s wakeups %6d local %5.1f%% migrations %5d cpu %6d ms\n",
				$2, $3 - w[$1], 100 * ($4 - l[$1]) / ($3 - w[$1]), $5 - m[$1], ($6 - r[$1]) }' \
			/tmp/place.a /tmp/place.b
	done
done
