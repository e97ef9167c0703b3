#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# vm-suite.sh - runs inside the test VM: every test of tools/testing/ (or
# those named), one after the other in this one boot, and judges each by its
# exit status *and* by the kernel log it leaves: any BUG, WARNING, KASAN,
# Oops, lockdep or kmemleak report that appears while it runs fails it.
#
# usage (in the VM): scripts/vm-suite.sh [TEST...]
# Prints one line per test ('PASS name (Ns)' / 'FAIL name: why') and closes
# with 'vm: N passed, N failed'.  Exit status 0 only if all passed.
set -u
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
tests_dir=$top/tools/testing
export TOP=$top
# shellcheck source=../tools/testing/lib.sh
. "$tests_dir/lib.sh"

vm_setup
echo "vm: booted, suite starts at $(cut -d' ' -f1 /proc/uptime) s of uptime"

if [ $# -gt 0 ]; then
	names=("$@")
else
	names=()
	for f in "$tests_dir"/[0-9]*.sh; do names+=("$(basename "$f" .sh)"); done
fi

pass=0 failn=0
kmemleak=/sys/kernel/debug/kmemleak
[ -w $kmemleak ] && echo clear > $kmemleak
for name in "${names[@]}"; do
	f=$(ls "$tests_dir"/"$name".sh "$tests_dir"/[0-9]*-"$name".sh 2>/dev/null | head -1)
	if [ -z "$f" ]; then
		echo "FAIL $name: no such test in tools/testing"
		failn=$((failn + 1))
		continue
	fi
	name=$(basename "$f" .sh)
	out=/tmp/test-$name.log
	mark=$(klog_mark "start $name")
	t0=$(date +%s)
	timeout -k 10 "${TEST_TIMEOUT:-1200}" bash "$f" > "$out" 2>&1
	rc=$?
	t1=$(date +%s)
	# What the test left behind goes first (a report or leak of that
	# clean-up counts against the test); kmemleak only reports objects
	# older than 5 s: the scan comes 6 s after the test ended at least,
	# the clean-up's time included.
	vm_cleanup_between_tests
	if [ -w $kmemleak ]; then
		left=$((6 - ($(date +%s) - t1)))
		[ $left -gt 0 ] && sleep $left
		echo scan > $kmemleak
	fi
	t2=$(date +%s)
	report=$(klog_since "$mark" | awk -f "$top/scripts/klog-filter.awk" | head -20)
	leaks=""
	[ -r $kmemleak ] && leaks=$(head -40 $kmemleak)
	why=""
	[ $rc = 0 ] || why="exit status $rc"
	# the test's own first 'FAIL: reason' line, so the summary says why
	first=$(grep -m1 '^FAIL: ' "$out" | cut -c7-200)
	[ -n "$first" ] && why="$why: $first"
	[ $rc = 124 ] && why="timed out after ${TEST_TIMEOUT:-1200} s"
	[ -n "$report" ] && why="${why:+$why; }kernel log report"
	[ -n "$leaks" ] && why="${why:+$why; }kmemleak report"
	if [ -z "$why" ]; then
		pass=$((pass + 1))
		echo "PASS $name ($((t1 - t0))s, clean-up and leak scan $((t2 - t1))s)"
		[ "${TEST_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$out"
	else
		failn=$((failn + 1))
		echo "FAIL $name: $why ($((t1 - t0))s, clean-up and leak scan $((t2 - t1))s)"
		tail -n 60 "$out" | sed 's/^/    | /'
		[ -n "$report" ] && { echo "    kernel log:"; klog_since "$mark" | tail -n 80 | sed 's/^/    ! /'; }
		[ -n "$leaks" ] && { echo "    kmemleak:"; echo "$leaks" | sed 's/^/    ! /'; echo clear > $kmemleak; }
	fi
done
echo "vm: $pass passed, $failn failed"
[ $failn = 0 ]
