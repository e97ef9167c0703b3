#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh - everything `make check` does, in timed phases: the dependencies
# (scripts/deps.sh), the cached kernels (scripts/kernel.sh), the module, the
# harness's own test (scripts/harness-test.sh), cargo test of the pure Rust
# crates in tools/, clippy, rustfmt and stackcheck on the module, then the VM
# suite (scripts/vm-suite.sh in one boot of the debug test kernel).  Prints
# the results of each part, the time of each phase, and one closing line,
# 'N passed, N failed', counting every harness check, cargo test and VM test.
#
# usage: scripts/check.sh [VM_TEST...]   (called by `make check [TEST=name]`)
# env:   USER_KDIR  the kernel build tree given to make as KDIR= (empty: the
#                   project's cached debug kernel, built here when missing)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
USER_KDIR=${USER_KDIR:-}
t0=$(date +%s)
phases=()
phase_t=$t0
# phase_end NAME: record the time since the last phase ended
phase_end() {
	local now
	now=$(date +%s)
	phases+=("$(printf '%-14s %5d s' "$1" $((now - phase_t)))")
	phase_t=$now
}
print_phases() {
	echo "== phases"
	printf '   %s\n' "${phases[@]}"
	echo "   total          $(printf '%5d' $(($(date +%s) - t0))) s"
}
mk() { make -C "$top" --no-print-directory "$@"; }
# abort WHAT: a set-up phase failed; nothing can be tested
abort() {
	echo "FAIL $1"
	failed=$((failed + 1))
	print_phases
	echo "$passed passed, $failed failed"
	exit 1
}

echo "== deps"
mk deps || abort "make deps"
phase_end deps
echo "== kernels"
# Built side by side when neither is cached: the debug kernel's Rust
# crates and its final links run on one CPU for minutes, which the L2
# kernel (C only, tinyconfig) and the userspace tools' release build (for
# the VM suite) fill.  Their output is shown only if they fail.
# The L2 build starts once the debug build has extracted the shared source
# tree (it says 'building'; cached, it ends at once).
bg_dir=$(mktemp -d /tmp/tcm_virt-check.XXXXXX)
trap 'rm -rf "$bg_dir"' EXIT
(cd "$top/tools" && cargo build --release -q) > "$bg_dir/tools.out" 2>&1 &
tools_pid=$!
if [ -z "$USER_KDIR" ]; then
	# tee creates its file in its own time: create it first for the grep.
	: > "$bg_dir/debug.err"
	"$top/scripts/kernel.sh" debug > /dev/null 2> >(tee -a "$bg_dir/debug.err" >&2) &
	debug_pid=$!
	while kill -0 $debug_pid 2> /dev/null && ! grep -q 'kernel.sh: building' "$bg_dir/debug.err"; do
		sleep 1
	done
fi
"$top/scripts/kernel.sh" l2 > /dev/null 2> >(tee "$bg_dir/l2.err" >&2) &
l2_pid=$!
if [ -z "$USER_KDIR" ]; then
	wait $debug_pid || abort "debug kernel (scripts/kernel.sh debug)"
	phase_end "debug kernel"
fi
wait $l2_pid || abort "L2 kernel (scripts/kernel.sh l2)"
phase_end "l2 kernel"
# Only now, with the packages and kernels in place, are the paths final.
KDIR=${USER_KDIR:-$("$top/scripts/kernel.sh" --path-only debug)}
L2_KDIR=$("$top/scripts/kernel.sh" --path-only l2)
export KDIR L2_KDIR
echo "== module (KDIR=$KDIR)"
mk module KDIR="$KDIR" || abort "make module"
phase_end module

if [ $# = 0 ]; then
	echo "== harness"
	out=$(bash "$top/scripts/harness-test.sh" 2>&1)
	echo "$out" | grep -E '^(PASS|FAIL) '
	passed=$((passed + $(echo "$out" | grep -c '^PASS ')))
	failed=$((failed + $(echo "$out" | grep -c '^FAIL ')))
	echo "$out" | grep -q '^harness: done' || { echo "$out" | tail -20; echo "FAIL harness: did not finish"; failed=$((failed + 1)); }
	phase_end harness
fi

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
	phase_end "cargo test"
fi

if [ $# = 0 ]; then
	echo "== lints"
	# CONFIG_WERROR turns every clippy warning into an error; stackcheck: no
	# stack frame over 2 KiB (KASAN's doubled stacks would hide an overflow).
	# They run as a first run sees them: KDIR is what the user gave make
	# (empty for the default tree), nothing else is passed down.
	# panic-sites: no more panic calls than were last reviewed
	# (robustness.rst, "Panics").
	for lint in clippy fmtcheck stackcheck panic-sites; do
		if out=$(env KDIR="$USER_KDIR" make -C "$top" --no-print-directory "$lint" 2>&1); then
			echo "PASS $lint"
			passed=$((passed + 1))
		else
			echo "$out" | tail -30
			echo "FAIL $lint"
			failed=$((failed + 1))
		fi
	done
	phase_end lints
fi

echo "== build tools/vsdrv, tools/mfi and tools/fuzz (the userspace initiators the VM tests use)"
# started beside the kernels; built again here (at once if it succeeded)
wait $tools_pid
if ! (cd "$top/tools" && cargo build --release -q 2>&1); then
	echo "FAIL build vsdrv, mfi, fuzz"
	failed=$((failed + 1))
fi
phase_end "tools build"

echo "== VM suite"
log=$(mktemp /tmp/tcm_virt-check.XXXXXX.log)
# The VM's limit: CI ends a run after 90 minutes, and the phases before
# the suite take ~65 s with the kernels cached.  The suite takes ~25
# minutes on the usual machine and 75-90 on a slow one.
VM_TIMEOUT=${VM_TIMEOUT:-5250} VM_LOG=$log "$top/scripts/vm.sh" "$top/scripts/vm-suite.sh" "$@" | grep -E '^(PASS|FAIL|    |vm: )'
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
phase_end "VM suite"
echo "== VM console log: $log"
print_phases
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
