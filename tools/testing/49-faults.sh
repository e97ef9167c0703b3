#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fault campaign, bounded slice: allocation failures (failslab,
# fail_page_alloc) and failing user copies (fail_usercopy) injected into
# call chains through tcm_virt's text (the stack trace filter) while fresh
# processes open the vhost device, bind it, kick it, do I/O and a LUN
# RESET, and open the megasas adapter, initialise it and do I/O.  Each
# fault must become an errno to the caller, an answered request or a
# broken ring the process sees: no oops, no hang (every run ends within its
# timeout), no leak (the suite's kmemleak scan), a clean kernel log.  At
# least one run of each kind must have been affected (else nothing was
# injected and the test proves nothing).  With injection off, both front
# ends work as before.  (An allocation failure in open() ran the vhost
# device's Drop on a zeroed vhost_dev, a NULL dereference, before the fix.)
. "$TOP/tools/testing/lib.sh"
MFI="${MFI_BIN:-$TOP/tools/target/release/mfi} --wwpn $WWPN"
RUNS=${FAULT_RUNS:-10}
DBG=/sys/kernel/debug

check tcm_load
lun_setup vhost $WWPN 16
for f in failslab fail_page_alloc fail_usercopy; do
	[ -d $DBG/$f ] || fail "no $DBG/$f: the debug kernel lacks fault injection"
done
# The module's text: [start, start + size of .text).
start=$(cat /sys/module/tcm_virt/sections/.text)
size=$(readelf -SW "$KO" | sed -n 's/.* \.text  *PROGBITS  *[0-9a-f]*  *[0-9a-f]*  *\([0-9a-f]*\) .*/\1/p')
[ -n "$start" ] && [ -n "$size" ] || fail "module text: start '$start' size '$size'"
end=$(printf '0x%x' $((start + 0x$size)))
ok "tcm_virt text $start-$end"

# arm KIND PERCENT: faults in KIND with probability PERCENT, only where
# the stack holds a tcm_virt frame; GFP_KERNEL allocations and order-0
# pages included; a one-line notice per fault (verbose 1), no stack dump
# (its 'Call Trace' would read as a kernel report).
arm() {
	local d=$DBG/$1
	echo 0 > $d/probability
	echo "$start" > $d/require-start
	echo "$end" > $d/require-end
	echo 0x0 > $d/reject-start
	echo 0x0 > $d/reject-end
	echo 32 > $d/stacktrace-depth
	[ -e $d/ignore-gfp-wait ] && echo N > $d/ignore-gfp-wait
	[ -e $d/min-order ] && echo 0 > $d/min-order
	echo 1 > $d/verbose
	echo 0 > $d/space
	echo 1 > $d/interval
	echo -1 > $d/times
	echo N > $d/task-filter
	# the allocator's report of an injected failure is expected from here
	# to the 'disarmed' mark (scripts/klog-filter.awk)
	klog_mark "$1 fault injection armed" > /dev/null
	echo "$2" > $d/probability
}
disarm() {
	echo 0 > $DBG/$1/probability
	klog_mark "$1 fault injection disarmed" > /dev/null
}

cat > /tmp/faults.vs <<S
tur
write10 0 8 1
read10 0 8 1
tmf 5
tur
read10 0 8 1
S

# one KIND NAME CMD...: one run under KIND; ends the test if it hung, or if
# (for allocation failures, which must never lose a request) a request
# went unanswered or a read returned wrong data.  Returns 0 if the run
# went through untouched (its transcript is the one of a run without
# faults), 1 if it ended in an error or with another answer.
one() {
	local kind=$1 name=$2 rc
	shift 2
	timeout "$(scaled 60)" "$@" > /tmp/faults.out 2>&1
	rc=$?
	if [ $rc = 124 ] || [ $rc -gt 2 ] ||
		{ [ "$kind" != fail_usercopy ] &&
		  grep -qE "no response|no answer|not answered|no reply|MISMATCH|differs" /tmp/faults.out; }; then
		disarm "$kind"
		cat /tmp/faults.out
		fail "$kind: $name: rc=$rc (124: did not end in 60 s)"
	fi
	[ $rc = 0 ] && cmp -s /tmp/faults.out "/tmp/faults.base.${name%% *}"
}

# campaign KIND PERCENT: RUNS vsdrv and RUNS mfi processes under KIND
campaign() {
	local kind=$1 pct=$2 i hit=0 notices mark
	mark=$(klog_mark "faults $kind")
	arm "$kind" "$pct"
	for i in $(seq 1 "$RUNS"); do
		one "$kind" "vsdrv run $i" $VSDRV --wwpn $WWPN --timeout-ms 3000 run /tmp/faults.vs ||
			hit=$((hit + 1))
		one "$kind" "mfi run $i" $MFI write 0 100 8 1 || hit=$((hit + 1))
	done
	disarm "$kind"
	notices=$(klog_since "$mark" | grep -c "FAULT_INJECTION: forcing a failure")
	# Faults injected: the notices printed plus the ones the rate limit
	# suppressed ("fail_dump: N callbacks suppressed"; a lower bound, the
	# last interval's count is printed only by a later notice).
	suppressed=$(klog_since "$mark" | sed -n 's/.*fail_dump: \([0-9]*\) callbacks suppressed.*/\1/p' |
		awk '{n += $1} END {print n + 0}')
	echo "$kind at $pct %: $((2 * RUNS)) runs, $hit affected, at least $((notices + suppressed)) faults injected ($notices notices, $suppressed suppressed), every run ended in bounded time, 0 requests lost"
	[ "$notices" -ge 1 ] || fail "$kind: no fault injected"
	[ "$hit" -ge 1 ] || fail "$kind: no run saw a fault"
	ok "$kind: $((2 * RUNS)) runs, $hit of them saw a fault, each in bounded time"
}

# The data the runs read back, written before any fault, and the
# transcripts of runs without faults.
$VSDRV --wwpn $WWPN --timeout-ms 3000 run /tmp/faults.vs > /tmp/faults.base.vsdrv 2>&1 ||
	fail "vsdrv before the campaign"
$VSDRV --wwpn $WWPN --timeout-ms 3000 run /tmp/faults.vs > /tmp/faults.base.vsdrv 2>&1 ||
	fail "vsdrv before the campaign"
$MFI write 0 100 8 1 > /tmp/faults.base.mfi 2>&1 || fail "mfi before the campaign"
cat /tmp/faults.base.vsdrv /tmp/faults.base.mfi

campaign failslab 20
campaign fail_page_alloc 20
campaign fail_usercopy 20

# Injection off: both front ends work, data read back.
$VSDRV --wwpn $WWPN --timeout-ms 5000 run /tmp/faults.vs > /tmp/faults.out 2>&1 ||
	{ cat /tmp/faults.out; fail "vsdrv after the campaign"; }
grep -q "verify=ok" /tmp/faults.out || { cat /tmp/faults.out; fail "vsdrv read back after the campaign"; }
check $MFI write 0 200 8 7
check $MFI read 0 200 8 7
ok "after the campaign: vhost and megasas I/O with data read back"
lun_teardown vhost $WWPN
check rmmod tcm_virt
