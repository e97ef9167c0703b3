#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The vhost-scsi ABI and the I/O path of tcm_virt, driven by the userspace
# driver (tools/vsdrv): ABI version and features, the I/O corpus with data
# verified on read back, malformed requests each answered, ioctl errnos,
# several queues with a worker each, and CLEAR_ENDPOINT / close with
# commands in flight.
. "$TOP/tools/testing/lib.sh"

check tcm_load
lun_setup vhost $WWPN 64
V="$VSDRV --wwpn $WWPN --timeout-ms 2000"

info=$($V info) || fail "vsdrv info"
echo "$info"
[ "$info" = "abi_version=Ok(1) features=0x100000000" ] || fail "info: $info"
ok "ABI version 1, VERSION_1 negotiated"

$V run "$TOP/tools/testing/vsdrv/corpus.vs" > /tmp/corpus.out
rc=$?
cat /tmp/corpus.out
[ $rc = 0 ] || fail "corpus: rc=$rc (read-back mismatch?)"
want() { # LINE-PATTERN EXPECTED-SUBSTRING
	local l
	l=$(grep -E "^ *[0-9]+ $1 " /tmp/corpus.out | head -1)
	[[ "$l" == *"$2"* ]] || fail "'$1': got '$l', expected '$2'"
	ok "$1 -> $2"
}
want "tur" "response=Ok status=0x00"
want "read10 0 8 1" "verify=ok"
want "read16 1000 64 2" "verify=ok"
want "read10 8 2048 3" "verify=ok"
for r in "20000 120 4" "20200 128 5" "20400 136 6" "21000 1136 7" "23000 1144 8" "32768 16384 9"; do
	want "read10 $r" "verify=ok"
done
want "readcap16" "data=32:"
want "bad short-header" "response=BadTarget"
want "bad lun-format" "response=BadTarget"
want "bad cdb-too-long" "response=BadTarget"
want "bad split-header" "response=Ok status=0x00 resid=0 sense_len=0 data=96:"
want "bad split-resp" "response=Ok status=0x00 resid=0 sense_len=0 data=96:"
want "bad resp-with-data" "response=Ok status=0x00 resid=0 sense_len=0 data=96:"
# The data-in iterator moves past the response: within one buffer
# (resp-with-data), across two (split-resp) or onto the next one
# (split-header).  The three INQUIRY answers must be the same bytes.
inq_data() { grep -E "^ *[0-9]+ bad $1 " /tmp/corpus.out | head -1 | sed 's/.*data=96://'; }
d=$(inq_data split-header)
[ -n "$d" ] && [ "$(inq_data split-resp)" = "$d" ] && [ "$(inq_data resp-with-data)" = "$d" ] ||
	fail "data-in after the response differs: '$d' '$(inq_data split-resp)' '$(inq_data resp-with-data)'"
ok "data-in after the response: same bytes in one, two or separate buffers"
want "bad huge" "response=Failure"
want "bad short-resp" "returned without a response"
want "bad no-resp" "returned without a response"
want "ctl-unknown" "returned without a response"
want "bad unpinnable" "response=Failure"
want "an-query" "ctl-response=[00, 00, 00, 00, 00]"
want "ctl-short" "ctl-response=[03]"
want "cdb ff00000000000000 in 16" "status=0x02"
n=$(grep -c "no response" /tmp/corpus.out)
[ "$n" = 0 ] || fail "$n requests not answered"
ok "every request answered"

# Four queues, one worker each, 32 commands in flight on each.
check $V --queues 4 --workers bench --rw randwrite --qd 32 --secs 3
check $V --queues 4 bench --rw randread --qd 32 --secs 2

# Completions are batched: with 32 commands in flight on one queue, one
# signal of the call eventfd (one used-index update) brings several used
# entries.  Answering within a pass (admin-guide.rst): the worker answers
# the commands it ran to completion every answer_batch (default 16)
# requests of its pass, not only at its end.  With 0 a QD32 pass of 32
# requests is one answer; with 4 it is eight, each signalled when the
# client waits for it (EVENT_IDX), so fewer completions per signal.  The
# early answers are made only while the worker's CPU has nothing else to
# run (single_task_running()): the client runs on vCPU 0 and the worker
# on vCPU 1, where with a busy loop beside it every pass is answered at
# its end whatever answer_batch says.
P=/sys/module/tcm_virt/parameters/answer_batch
[ "$(cat $P)" = 16 ] || fail "answer_batch defaults to $(cat $P), 16 expected"
per_signal() { # ANSWER_BATCH [HOG]: completions per signal of a 1 s QD32 run
	local r hog=
	echo "$1" > $P || fail "answer_batch=$1 refused"
	if [ -n "${2:-}" ]; then
		taskset -c 1 bash -c 'while :; do :; done' &
		hog=$!
	fi
	r=$(taskset -c 0 $V --worker-cpu 1 bench --rw randread --qd 32 --secs 1)
	local rc=$?
	[ -z "$hog" ] || { kill $hog; wait $hog 2> /dev/null; }
	[ $rc = 0 ] || fail "bench answer_batch=$1${2:+ beside a busy loop}: $r"
	echo "answer_batch=$1${2:+ beside a busy loop}: $r" >&2
	sed -n 's/.*ios_per_signal=\([0-9]*\).*/\1/p' <<< "$r"
}
per=$(per_signal 16)
[ "${per:-0}" -ge 2 ] || fail "QD32: ${per:-?} completions per signal, expected several"
ok "QD32 on one queue: $per completions per signal"
p0=$(per_signal 0)
p4=$(per_signal 4)
p4h=$(per_signal 4 hog)
echo 16 > $P
[ "${p0:-0}" -ge 16 ] || fail "answer_batch=0: ${p0:-?} completions per signal, 16 or more expected"
[ $((${p4:-99} * 2)) -le "$p0" ] ||
	fail "answer_batch=4: ${p4:-?} completions per signal against $p0 with 0"
[ $((${p4h:-0} * 2)) -gt "$p0" ] ||
	fail "answer_batch=4 beside a busy loop: ${p4h:-?} completions per signal, more than half of $p0 expected"
ok "answer_batch: $p0 completions per signal at the end of the pass only, $p4 every 4 requests, $p4h every 4 beside a busy loop"

# Busy polling (admin-guide.rst, "Polling before waiting for a kick"): at
# QD1, with the worker on CPU 1 and the client on CPU 0, the client kicks
# for nearly every command when the worker waits for kicks; with 1000 us
# of polling (the ring's VHOST_SET_VRING_BUSYLOOP_TIMEOUT, or else the
# poll_us parameter) the worker finds most commands before it asks for a
# kick again: at least half of them.  The client polls its used ring
# (bench --poll, on its own vCPU): its turn from one answer to the next
# request is then not a wake-up, which on a slow machine took longer than
# the window (a QD1 round trip of the debug kernel of 0.7-1.7 ms, and a
# third to a half of the requests came after the window: 0.31-0.58 kicks
# per command, against 0.001 on a machine twice as fast).
# The device's statistics file counts the polls (admin-guide.rst,
# "Statistics"): its "polls:" line, sampled during the last part of each
# run (sample_polls after 1.3 s), is kept in /tmp/polls-NAME.  The sampler
# stays on the client's vCPU 0, off the worker's.
kpi() { # NAME VSDRV-OPTIONS...: kicks per command of a 2 s QD1 run
	local r pid name=$1
	shift
	taskset -pc 0 $BASHPID > /dev/null
	taskset -c 0 $V --worker-cpu 1 "$@" bench --rw randread --qd 1 --secs 2 --poll > /tmp/kpi.out 2>&1 &
	pid=$!
	sample_polls $WWPN $pid /tmp/polls-$name 1.3
	wait $pid || fail "bench QD1 $*: $(cat /tmp/kpi.out)"
	r=$(cat /tmp/kpi.out)
	echo "$* $r; $(cat /tmp/polls-$name)" >&2
	sed -n 's/.*kicks_per_io=\([0-9.]*\).*/\1/p' <<< "$r"
}
k_none=$(kpi none)
k_ring=$(kpi ring --busyloop 1000)
echo 1000 > /sys/module/tcm_virt/parameters/poll_us || fail "poll_us"
k_param=$(kpi param)
echo 0 > /sys/module/tcm_virt/parameters/poll_us
awk -v n="$k_none" -v r="$k_ring" -v p="$k_param" 'BEGIN { exit !(n >= 0.5 && r * 2 <= n && p * 2 <= n) }' ||
	fail "kicks per command: no polling $k_none, ring timeout $k_ring, poll_us $k_param"
ok "QD1 kicks per command: $k_none without polling, $k_ring with the ring's timeout, $k_param with poll_us"
grep -qx 'polls: found=0 empty=0' /tmp/polls-none ||
	fail "statistics without polling: '$(cat /tmp/polls-none)', expected no poll"
for n in ring param; do
	[[ "$(cat /tmp/polls-$n)" =~ ^polls:\ found=([0-9]+)\ empty=[0-9]+$ ]] &&
		[ "${BASH_REMATCH[1]}" -ge 20 ] ||
		fail "statistics polling ($n): '$(cat /tmp/polls-$n)', expected at least 20 polls that found a request"
done
ok "statistics: $(cat /tmp/polls-none) without polling, $(cat /tmp/polls-ring) with the ring's timeout, $(cat /tmp/polls-param) with poll_us"
# The poll is capped (1000 us): a ring timeout of 2^32-1 us (71 minutes)
# does not keep the worker spinning with the ring's mutex held, so the
# close after the run returns at once.
r=$(timeout 60 $V --worker-cpu 1 --busyloop 4294967295 bench --rw randread --qd 1 --secs 1) ||
	fail "a 2^32-1 us ring timeout: run or close did not end ($r)"
ok "a 2^32-1 us ring timeout: polls capped, close returns"

# Run to completion (admin-guide.rst, "Where a command runs"): on rd_mcp
# a command executes and completes on the vhost worker, so target core
# queues neither its submission nor its completion work; with the
# device's submit_type and complete_type at 2 (queued) it does.
TR=/sys/kernel/debug/tracing
EV=$TR/events/workqueue/workqueue_queue_work
works() { # VSDRV-BENCH-ARGS...: the functions of the works queued meanwhile
	echo 0 > $TR/tracing_on
	echo > $TR/trace
	echo 1 > $EV/enable
	echo 1 > $TR/tracing_on
	$V bench --qd 8 --secs 1 "$@" > /dev/null
	echo 0 > $TR/tracing_on
	echo 0 > $EV/enable
	grep -o 'function=[a-z_]*' $TR/trace | sort | uniq -c
}
A=$CFG/core/rd_mcp_0/rd0/attrib
w=$(works --rw randread)
echo "$w"
[[ "$w" != *target_queued_submit_work* && "$w" != *target_complete_ok_work* ]] ||
	fail "rd_mcp: target core queued work for the commands"
ok "rd_mcp: submitted and completed on the vhost worker"
# ... and answered by the same pass of the worker that submitted them: the
# worker's completion work is not queued for them, so the vhost work
# queued (vhost_vq_work_queue: the kicks, with EVENT_IDX a fraction of the
# commands) stays far below one per command.
KP=$TR/kprobe_events
echo 'p:tcm_vq_work vhost_vq_work_queue' >> $KP || fail "kprobe on vhost_vq_work_queue"
hits() { awk '$1 == "tcm_vq_work" { print $2 }' $TR/kprobe_profile; }
echo 1 > $TR/events/kprobes/tcm_vq_work/enable
h0=$(hits)
r=$($V bench --rw randread --qd 32 --secs 2) || fail "bench QD32: $r"
h1=$(hits)
echo 0 > $TR/events/kprobes/tcm_vq_work/enable
echo '-:tcm_vq_work' >> $KP
ios=$(sed -n 's/.* ios=\([0-9]*\) .*/\1/p' <<< "$r")
queued=$((h1 - h0))
echo "QD32 on rd_mcp: $ios commands, vhost work queued $queued times"
[ "${ios:-0}" -gt 0 ] && [ $((queued * 2)) -lt "$ios" ] ||
	fail "vhost work queued $queued times for ${ios:-?} commands: completions not answered in the kick's pass"
ok "rd_mcp: answered in the kick's own pass ($queued vhost works for $ios commands)"
echo 2 > $A/submit_type && echo 2 > $A/complete_type || fail "submit_type/complete_type"
w=$(works --rw randread)
echo "$w"
echo 0 > $A/submit_type && echo 0 > $A/complete_type
[[ "$w" == *target_queued_submit_work* && "$w" == *target_complete_ok_work* ]] ||
	fail "submit_type=2, complete_type=2: target core queued no work"
ok "submit_type=2, complete_type=2: queued to target core's workqueues"

# No allocation per command at any size: a transfer of more than 16 pages
# chains chunks the command slot allocated the first time and kept.  In a
# steady run of 1 MiB reads (256 pages: two chunks each) run to completion
# on the worker (offload_kib=0), the vhost worker allocates nothing (no
# kmalloc, no slab object: in particular none from the kernel's sg pool)
# while it maps, executes and completes commands.
KM=$TR/events/kmem
CC=$TR/events/target/target_cmd_complete
P=/sys/module/tcm_virt/parameters/offload_kib
[ "$(cat $P)" = 128 ] || fail "offload_kib defaults to $(cat $P), 128 expected"
echo 0 > $P
$V bench --rw randread --bs 1048576 --qd 4 --secs $((6 * TIME_SCALE)) > /tmp/big.out &
bp=$!
nap $((3 * TIME_SCALE))
echo 0 > $TR/tracing_on
echo > $TR/trace
for e in $KM/kmalloc $KM/kmem_cache_alloc $CC; do
	# only the vhost workers' events: the buffer cannot overflow with
	# the other tasks' allocations
	echo 'comm ~ "vhost-*"' > $e/filter || fail "trace filter of $e"
	echo 1 > $e/enable
done
echo 1 > $TR/tracing_on
nap 2
echo 0 > $TR/tracing_on
for e in $KM/kmalloc $KM/kmem_cache_alloc $CC; do
	echo 0 > $e/enable
	echo 0 > $e/filter
done
wait $bp || fail "1 MiB reads: $(cat /tmp/big.out)"
echo 128 > $P
cat /tmp/big.out
done_n=$(grep -c '^ *vhost-[0-9]*-[0-9]* .*target_cmd_complete:' $TR/trace)
allocs=$(grep -E '^ *vhost-[0-9]+-[0-9]+ .*(kmalloc|kmem_cache_alloc):' $TR/trace)
echo "commands completed by the worker in 2 s: $done_n"
[ "$done_n" -gt 0 ] || fail "no 1 MiB command completed while traced"
[ -z "$allocs" ] || fail "the vhost worker allocated $(grep -c . <<< "$allocs") times during 1 MiB I/O ($(grep -c 'name=sgpool' <<< "$allocs") from the sg pool): $(head -3 <<< "$allocs")"
ok "1 MiB reads: $done_n commands, no allocation on the worker"

# Commands of offload_kib (default 128) KiB or more are submitted from the
# offload workqueue (admin-guide.rst, "Where a command runs"): target core
# completes them on its kworkers, none on the vhost worker, unless
# offload_kib is 0 or the device's submit_type is not the default.
# big_where: "ON-WORKER ON-KWORKER", where the 1 MiB reads of a 1 s run
# completed
big_where() {
	echo > $TR/trace
	echo 1 > $CC/enable
	echo 1 > $TR/tracing_on
	$V bench --rw randread --bs 1048576 --qd 4 --secs 1 > /tmp/big.out
	local rc=$?
	echo 0 > $TR/tracing_on
	echo 0 > $CC/enable
	[ $rc = 0 ] || return 1
	# the reads only: the run starts with a READ CAPACITY
	echo "$(grep -c '^ *vhost-[0-9]*-[0-9]* .*target_cmd_complete: .*READ_1[06] ' $TR/trace)" \
		"$(grep -c '^ *kworker/[^ ]* .*target_cmd_complete: .*READ_1[06] ' $TR/trace)"
}
w=$(big_where) || fail "1 MiB reads: $(cat /tmp/big.out)"
read -r on_w on_k <<< "$w"
[ "$on_k" -gt 0 ] && [ "$on_w" = 0 ] ||
	fail "1 MiB reads: $on_k completed on kworkers, $on_w on the worker: not offloaded"
ok "1 MiB reads: $on_k completed on kworkers (offloaded), none on the worker"
echo 0 > $P
w=$(big_where) || fail "offload_kib=0: 1 MiB reads: $(cat /tmp/big.out)"
echo 128 > $P
read -r on_w on_k <<< "$w"
[ "$on_w" -gt 0 ] && [ "$on_k" = 0 ] ||
	fail "offload_kib=0: $on_w completed on the worker, $on_k on kworkers"
ok "offload_kib=0: 1 MiB commands run to completion on the worker ($on_w)"
echo 1 > $A/submit_type
w=$(big_where) || fail "submit_type=1: 1 MiB reads: $(cat /tmp/big.out)"
echo 0 > $A/submit_type
read -r on_w on_k <<< "$w"
[ "$on_w" -gt 0 ] && [ "$on_k" = 0 ] ||
	fail "submit_type=1: $on_w completed on the worker, $on_k on kworkers"
ok "submit_type=1 (direct): 1 MiB commands run to completion on the worker ($on_w)"
# An ORDERED command waits for the offloaded commands before it to reach
# target core: the ORDERED TEST UNIT READY sent right after four 1 MiB
# READ(10)s, which wait for kworkers, completes after all of them.
cat > /tmp/ordered.vs <<'S'
start b1 28000000000000080000 in 1048576
start b2 28000000080000080000 in 1048576
start b3 28000000100000080000 in 1048576
start b4 28000000180000080000 in 1048576
attr ordered
tur
attr simple
finish b1
finish b2
finish b3
finish b4
S
echo > $TR/trace
echo 1 > $CC/enable
echo 1 > $TR/tracing_on
$V run /tmp/ordered.vs > /tmp/ordered.out
rc=$?
echo 0 > $TR/tracing_on
echo 0 > $CC/enable
cat /tmp/ordered.out
[ $rc = 0 ] && [ "$(grep -c 'response=Ok status=0x00' /tmp/ordered.out)" = 5 ] ||
	fail "four READ(10)s and an ORDERED TEST UNIT READY: five GOOD expected (rc=$rc)"
order=$(grep -o 'target_cmd_complete: .*' $TR/trace | grep -o 'READ_10\|TEST_UNIT_READY' | tr '\n' ' ')
[ "$order" = "READ_10 READ_10 READ_10 READ_10 TEST_UNIT_READY " ] ||
	fail "completions in the order '$order', the offloaded READ_10s first expected"
ok "ORDERED after offloaded commands: completed after them ($order)"
# A task management function that aborts commands first lets the
# offloaded ones reach target core: once the ABORT TASK of the last of
# four offloaded 1 MiB READ(10)s is answered, that READ has been answered
# (aborted, or completed before the abort), the two by the one worker.
cat > /tmp/abort.vs <<'S'
start b1 28000000000000080000 in 1048576
start b2 28000000080000080000 in 1048576
start b3 28000000100000080000 in 1048576
start b4 28000000180000080000 in 1048576
tmf 0 @b4
poll b4
finish b1
finish b2
finish b3
S
$V run /tmp/abort.vs > /tmp/abort.out
rc=$?
cat /tmp/abort.out
p=$(grep -E '^ *[0-9]+ poll b4 ' /tmp/abort.out)
[ $rc = 0 ] && [ -n "$p" ] && [[ "$p" != *pending* ]] ||
	fail "ABORT TASK of an offloaded READ(10) answered before the READ: '$p' (rc=$rc)"
ok "ABORT TASK of an offloaded command: the command answered first"

# Endpoint ioctls: a second SET_ENDPOINT, unknown WWPN, CLEAR of another.
cat > /tmp/ep.vs <<'S'
set-endpoint
clear-endpoint
clear-endpoint
set-endpoint
tur
S
$V run /tmp/ep.vs | tee /tmp/ep.out
check grep -q "set-endpoint .*Err(Some(17))" /tmp/ep.out
check grep -q "tur .*response=Ok" /tmp/ep.out
r=$($VSDRV --wwpn naa.5001405000000fff run /tmp/ep.vs 2>&1)
[[ "$r" == *"SET_ENDPOINT"*"No such device"* ]] || fail "unknown WWPN: $r"
ok "SET_ENDPOINT of an unknown WWPN -> ENODEV"

# Killed with commands in flight: everything is released.
$V --queues 2 bench --rw randwrite --qd 64 --secs 30 &
bp=$!
sleep 3
kill -9 $bp
wait $bp 2>/dev/null
# The file is closed when the process is reaped: the endpoint is gone, so
# the TPG is no longer pinned and every step of the teardown succeeds.
T=$CFG/vhost/$WWPN/tpgt_1
check rm $T/lun/lun_0/disk
check rmdir $T/lun/lun_0
check write $T/nexus NULL
check rmdir $T
check rmdir $CFG/vhost/$WWPN $CFG/vhost
check rmmod tcm_virt
