#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-ab.sh - inside the VM booted on the bench kernel: two builds of
# tcm_virt, A and B (or one build with two sets of module parameters,
# PARAMS_A and PARAMS_B), each measured against C vhost_scsi by scripts/bench.sh
# on the rows BENCH_ROWS selects, in turns (B A B A ...) in one boot, so
# that a change too small for one `make bench` shows as a shift of the
# rounds' ratios rather than as one draw of the noise.  Each turn prints
# bench.sh's table under "=== A" or "=== B"; compare the ratio columns of
# the A turns with those of the B turns.
#
# usage: KDIR=<bench kernel> VM_QEMU_OPTS="<make bench's CPU model>" \
#        scripts/vm.sh env KO_A=<a.ko> KO_B=<b.ko> [PARAMS_A=...] [PARAMS_B=...] [AB_TURNS=3] \
#        [BENCH_ROWS='^(nullio|rd) 4k randread QD32, direct$'] scripts/bench-ab.sh
# Build the two modules against the bench kernel in two trees (a git
# worktree for the older commit), never in the checkout a running test VM
# loads its module from.  make bench's CPU model: the Makefile's BENCH_CPU.
set -u
: "${KO_A:?KO_A: the first module}" "${KO_B:?KO_B: the second module}"
export BENCH_ROWS=${BENCH_ROWS:-'^(nullio|rd) 4k randread QD32, direct$'}
# the configfs and open/close rows of bench.sh: a few cycles only
export BENCH_N=${BENCH_N:-10}
core=/sys/kernel/config/target/core
for ((i = 0; i < ${AB_TURNS:-3}; i++)); do
	for side in B A; do
		ko=KO_$side par=PARAMS_$side
		echo "=== $side (${!ko}${!par:+ ${!par}})"
		KO=${!ko} TCM_PARAMS=${!par:-} bash "$TOP/scripts/bench.sh" 2>&1 | grep -v '^bench:'
		# bench.sh leaves its backstores (one boot runs it once)
		for d in "$core"/*_*/*/; do
			[ -d "$d" ] && rmdir "$d"
		done
		rm -f /tmp/bench.img
		modprobe -r null_blk 2>/dev/null
	done
done
