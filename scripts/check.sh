#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh - every test of tcm_virt: cargo test of the pure Rust crates in
# tools/, clippy and rustfmt on the module, then the VM suite (scripts/vm-suite.sh in one boot of the debug
# test kernel).  Prints the results of each part and one closing line,
# 'N passed, N failed', counting every cargo test and every VM test.
#
# usage: scripts/check.sh [VM_TEST...]   (called by `make check [TEST=name]`)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
t0=$(date +%s)

if [ $# = 0 ]; then
	echo "== cargo test (tools/)"
	out=$(cd "$top/tools" && CARGO_INCREMENTAL=0 cargo test --workspace 2>&1)
	rc=$?
	echo "$out" | grep -E '^test |^test result|^error|panicked' | grep -v '^test result: ok. 0 passed'
	p=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | paste -sd+ | bc)
	f=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | paste -sd+ | bc)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ $rc != 0 ] && [ "${f:-0}" = 0 ]; then
		echo "$out" | tail -30
		echo "FAIL cargo test: exit status $rc"
		failed=$((failed + 1))
	fi
fi

if [ $# = 0 ]; then
	echo "== lints"
	# CONFIG_WERROR turns every clippy warning into an error; stackcheck: no
	# stack frame over 2 KiB (KASAN's doubled stacks would hide an overflow)
	for lint in clippy fmtcheck stackcheck; do
		if out=$(make -C "$top" --no-print-directory "$lint" ${KDIR:+KDIR=$KDIR} 2>&1); then
			echo "PASS $lint"
			passed=$((passed + 1))
		else
			echo "$out" | tail -30
			echo "FAIL $lint"
			failed=$((failed + 1))
		fi
	done
fi

echo "== build tools/vsdrv and tools/mfi (the userspace initiators the VM tests use)"
if ! (cd "$top/tools" && cargo build --release -q -p vsdrv -p mfi 2>&1); then
	echo "FAIL build vsdrv, mfi"
	failed=$((failed + 1))
fi

echo "== VM suite"
log=$(mktemp /tmp/tcm_virt-check.XXXXXX.log)
VM_LOG=$log "$top/scripts/vm.sh" "$top/scripts/vm-suite.sh" "$@" | grep -E '^(PASS|FAIL|    |vm: )'
vm_rc=${PIPESTATUS[0]}
vp=$(grep -c '^PASS ' "$log")
vf=$(grep -c '^FAIL ' "$log")
passed=$((passed + vp))
failed=$((failed + vf))
if ! grep -q '^vm: [0-9]* passed' "$log"; then
	echo "FAIL vm-suite: the VM did not finish the suite (exit status $vm_rc); log: $log"
	tail -40 "$log"
	failed=$((failed + 1))
elif [ "$vm_rc" != 0 ] && [ "$vf" = 0 ]; then
	echo "FAIL vm-suite: exit status $vm_rc; log: $log"
	failed=$((failed + 1))
fi
echo "== done in $(( $(date +%s) - t0 )) s (VM console log: $log)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
