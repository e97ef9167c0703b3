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
# lib.sh gives TIME_SCALE a default: what the environment said comes first
env_scale=${TIME_SCALE:-}
# shellcheck source=../tools/testing/lib.sh
. "$tests_dir/lib.sh"

vm_setup
# How slow this machine is, from how long the VM took to get here (the usual
# machine: ~95 s; lib.sh scales every time limit by it).  TIME_SCALE in the
# environment overrides it.
up=$(cut -d. -f1 /proc/uptime)
TIME_SCALE=$env_scale
if [ -z "$TIME_SCALE" ]; then
	TIME_SCALE=$(((up + 119) / 120))
	[ "$TIME_SCALE" -ge 1 ] || TIME_SCALE=1
fi
export TIME_SCALE
test_timeout=$((${TEST_TIMEOUT:-1200} * TIME_SCALE))
export L2_ACCEL
echo "vm: booted, suite starts at $(cut -d' ' -f1 /proc/uptime) s of uptime; time limits x$TIME_SCALE; nested guests on $L2_ACCEL"

if [ $# -gt 0 ]; then
	names=("$@")
else
	names=()
	for f in "$tests_dir"/[0-9]*.sh; do f=${f##*/}; names+=("${f%.sh}"); done
fi

pass=0 failn=0
kmemleak=/sys/kernel/debug/kmemleak
[ -w $kmemleak ] && echo clear > $kmemleak

# Leak scans: one after every LEAK_SCAN_EVERY-th test (default 3) and
# after the last, each in the background while the next test runs.
# kmemleak only reports objects older than 5 s, so the scan waits 6 s after
# the test ended; objects the next test allocates in that time are too
# young to be reported by it.  A scan is not free beside a test: it walks
# every tracked object and all of memory (20-100 s on a slow machine), and
# it holds kmemleak's lock while the test's own allocations wait for it,
# so the suite scans a group of tests at once.  A report fails the group's
# last test and names the group ("kmemleak report, objects of A, B, C").
# The verdict of a test with a scan is printed once the scan has ended,
# before the next scan starts (a scan that found leaks is cleared first,
# so no leak is reported twice).
scan_every=${LEAK_SCAN_EVERY:-3}
p_name="" p_why="" p_out="" p_klog="" p_report="" p_run=0 p_clean=0 p_scan="" p_pid="" p_forks=0
p_group="" group=""
# read_forks VAR: the processes started since boot (/proc/stat), into VAR:
# each costs about a second of a slow test VM's CPU, so the verdict line
# shows a test's count
read_forks() {
	local k v
	while read -r k v _; do
		[ "$k" = processes ] && { printf -v "$1" %s "$v"; return; }
	done < /proc/stat
}
verdict() { # print the pending test's verdict, after its leak scan
	[ -n "$p_name" ] || return 0
	local leaks="" why=$p_why scan=""
	if [ -n "$p_pid" ]; then
		wait "$p_pid"
		leaks=$(cat "$p_scan.leaks" 2>/dev/null)
		scan=", leak scan $(cat "$p_scan.secs" 2>/dev/null || echo ?)s in the background"
		rm -f "$p_scan.leaks" "$p_scan.secs"
	fi
	[ -n "$leaks" ] && why="${why:+$why; }kmemleak report, objects of ${p_group// /, }"
	if [ -z "$why" ]; then
		pass=$((pass + 1))
		echo "PASS $p_name (${p_run}s, $p_forks processes, clean-up ${p_clean}s$scan)"
		[ "${TEST_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$p_out"
	else
		failn=$((failn + 1))
		echo "FAIL $p_name: $why (${p_run}s, $p_forks processes, clean-up ${p_clean}s$scan)"
		# all of it with TEST_VERBOSE=1, else its last 60 lines
		if [ "${TEST_VERBOSE:-0}" = 1 ]; then cat "$p_out"; else tail -n 60 "$p_out"; fi |
			sed 's/^/    | /'
		# the test's own part of the log, from 10 lines before its first
		# report on (the log after the test belongs to the next one)
		[ -n "$p_report" ] && {
			echo "    kernel log:"
			awk -f "$top/scripts/klog-filter.awk" -v context=1 "$p_klog" 2>/dev/null |
				head -n 100 | sed 's/^/    ! /'
		}
		[ -n "$leaks" ] && { echo "    kmemleak:"; echo "$leaks" | sed 's/^/    ! /'; echo clear > $kmemleak; }
	fi
	p_name=""
}
# leak_scan FILE ENDED: scan 6 s after ENDED (seconds since the epoch);
# FILE.leaks gets the report, FILE.secs the scan's duration
leak_scan() {
	local left=$((6 - (EPOCHSECONDS - $2))) s
	[ $left -gt 0 ] && nap $left
	s=$EPOCHSECONDS
	# The scan runs in this process: on vCPU 0, so that vCPU 1 stays free
	# for the tests that pin a worker there and count what it does alone
	# (early answers are made only while the worker's CPU has nothing else
	# to run).
	taskset -pc 0 $BASHPID > /dev/null 2>&1
	echo scan > $kmemleak
	head -40 $kmemleak > "$1.leaks"
	echo $((EPOCHSECONDS - s)) > "$1.secs"
}

idx=0
for name in "${names[@]}"; do
	idx=$((idx + 1))
	f=""
	for g in "$tests_dir/$name.sh" "$tests_dir"/[0-9]*-"$name".sh "$tests_dir/$name"-*.sh; do
		[ -f "$g" ] && { f=$g; break; }
	done
	if [ -z "$f" ]; then
		verdict
		echo "FAIL $name: no such test in tools/testing"
		failn=$((failn + 1))
		continue
	fi
	name=${f##*/}
	name=${name%.sh}
	out=/tmp/test-$name.log
	mark=$(klog_mark "start $name")
	t0=$EPOCHSECONDS
	read_forks f0
	if [ "${TEST_STREAM:-0}" = 1 ]; then
		# make soak: the output as it comes (a run of hours must not
		# say nothing until its end), each line prefixed with the test
		timeout -k 10 "$test_timeout" bash "$f" 2>&1 | tee "$out" | sed -u "s/^/  [$name] /"
		rc=${PIPESTATUS[0]}
	else
		timeout -k 10 "$test_timeout" bash "$f" > "$out" 2>&1
		rc=$?
	fi
	t1=$EPOCHSECONDS
	read_forks f1
	# What the test left behind goes first: a report or a leak of that
	# clean-up counts against the test.
	vm_cleanup_between_tests
	t2=$EPOCHSECONDS
	klog=/tmp/klog-$name.log
	klog_since "$mark" > "$klog"
	report=$(awk -f "$top/scripts/klog-filter.awk" "$klog" | head -20)
	why=""
	[ $rc = 0 ] || why="exit status $rc"
	# the test's own first 'FAIL: reason' line, so the summary says why
	first=$(grep -m1 '^FAIL: ' "$out" | cut -c7-200)
	[ -n "$first" ] && why="$why: $first"
	[ $rc = 124 ] && why="timed out after $test_timeout s"
	[ -n "$report" ] && why="${why:+$why; }kernel log report"
	verdict
	p_name=$name p_why=$why p_out=$out p_klog=$klog p_report=$report
	p_run=$((t1 - t0)) p_clean=$((t2 - t1)) p_pid="" p_forks=$((f1 - f0))
	group="${group:+$group }$name"
	if [ -w $kmemleak ] && { [ $((idx % scan_every)) = 0 ] || [ $idx = ${#names[@]} ]; }; then
		p_scan=/tmp/leakscan-$name p_group=$group group=""
		leak_scan "$p_scan" "$t1" &
		p_pid=$!
	fi
done
verdict
echo "vm: $pass passed, $failn failed"
[ $failn = 0 ]
