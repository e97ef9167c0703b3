#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Statistics and tracepoints, read back and checked against the I/O the
# test did:
# - vhost (tools/vsdrv): 2 writes and 2 reads of 4 KiB, a TEST UNIT READY,
#   a request with a short header, one for a target without a TPG, an
#   ABORT TASK of an unknown tag, a LUN linked while the device is open
#   (one hotplug event).  The device's debugfs file (tcm_virt/vhost-N),
#   read while it is open, counts exactly that; the trace (events/tcm_virt)
#   has a submission and a completion per command with its tag, LUN,
#   opcode, length and latency, the two refusals with their reasons, the
#   TMF's start and end, the event.  The file goes with the device.
# - megasas (tools/mfi): one 8 KiB LD write and its read (each after a
#   TEST UNIT READY); the adapter's file (tcm_virt/megasas-N) and the
#   trace agree.
# - with the events disabled, I/O adds nothing to the trace.
. "$TOP/tools/testing/lib.sh"

D=/sys/kernel/debug/tcm_virt
TR=/sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
[ -d $TR/events ] || mount -t tracefs none $TR || fail "no tracefs"
check tcm_load
check test -d $D
check test -d $TR/events/tcm_virt
echo "tracepoints: $(ls $TR/events/tcm_virt | grep -v -e enable -e filter | tr '\n' ' ')"
for e in cmd_submit cmd_complete cmd_refused tmf_start tmf_done event; do
	[ -d $TR/events/tcm_virt/tcm_virt_$e ] || fail "no tracepoint tcm_virt_$e"
done
check lun_setup vhost $WWPN 16
T=$CFG/vhost/$WWPN/tpgt_1
rd1=$CFG/core/rd_mcp_0/rd1
check mkdir -p $rd1
check write $rd1/control rd_pages=256
check write $rd1/enable 1

trace_start() {
	echo 0 > $TR/tracing_on
	echo > $TR/trace
	echo 1 > $TR/events/tcm_virt/enable
	echo 1 > $TR/tracing_on
}
trace_stop() {
	echo 0 > $TR/events/tcm_virt/enable
	echo 0 > $TR/tracing_on
	grep 'tcm_virt_' $TR/trace > "$1"
	echo "trace ($1): $(wc -l < "$1") events"
	cut -c1-200 "$1" | sed 's/^ */  | /' | head -40
}
# stat_line FILE PREFIX: the line of the statistics file FILE starting
# with PREFIX (bash alone here and below: a grep costs a second of a slow
# VM, and the test asks ~20 questions)
stat_line() {
	local l
	while IFS= read -r l; do [[ $l == "$2"* ]] && { echo "$l"; return; }; done < "$1"
}
# want_stat FILE PREFIX EXPECTED: that line is EXPECTED exactly
want_stat() {
	local l
	l=$(stat_line "$1" "$2")
	[ "$l" = "$3" ] || fail "statistics '$2': got '$l', expected '$3'"
	ok "statistics: $3"
}
# trace_count FILE PATTERN: the trace lines matching the extended
# regular expression PATTERN
trace_count() {
	local l n=0
	while IFS= read -r l; do [[ $l =~ $2 ]] && n=$((n + 1)); done < "$1"
	echo $n
}

# 1. vhost
OUT=/tmp/stats.out
cat > /tmp/stats.vs <<S
lun 1 0
tur
write10 0 8 1
write10 8 8 2
write10 16 256 3
read10 0 8 1
read10 8 8 2
bad short-header
lun 9 0
tur
lun 1 0
tmf 0 777777
evt-post 1
sh mkdir $T/lun/lun_1 && ln -s $rd1 $T/lun/lun_1/disk1
evt-wait 3000
sh cat $D/vhost-* > /tmp/vstats
S
trace_start
$VSDRV --wwpn $WWPN --hotplug run /tmp/stats.vs > $OUT 2>&1
rc=$?
cut -c1-200 $OUT
[ $rc = 0 ] || fail "vsdrv: rc=$rc"
trace_stop /tmp/vtrace
echo "statistics of the vhost device, read while it was open:"
sed 's/^/  | /' /tmp/vstats
want_stat /tmp/vstats endpoint: "endpoint: $WWPN"
want_stat /tmp/vstats total: "total: submitted=6 completed=6 in_flight=0 read_bytes=8192 write_bytes=139264 malformed=1 bad_target=1 pin_failure=0 busy=0 transport=0 offloaded=1"
want_stat /tmp/vstats "queue 2:" "queue 2: submitted=6 completed=6 in_flight=0 read_bytes=8192 write_bytes=139264 malformed=1 bad_target=1 pin_failure=0 busy=0 transport=0 offloaded=1"
want_stat /tmp/vstats "tmf abort_task:" "tmf abort_task: started=1 complete=1 succeeded=0 rejected=0 incorrect_lun=0 failed=0"
want_stat /tmp/vstats events: "events: queued=1 delivered=1 dropped=0"
dev=$(sed -n 's/.*tcm_virt_cmd_submit: \(vhost-[0-9]*\) .*/\1/p' /tmp/vtrace | sort -u)
[ -n "$dev" ] && [ "$(echo "$dev" | wc -l)" = 1 ] || fail "submissions of one device expected, got '$dev'"
check test ! -e $D/$dev
ok "$D/$dev went with the device"
v="tcm_virt_cmd_submit: $dev q=2 tag=0x[0-9a-f]+ lun=0"
[ "$(trace_count /tmp/vtrace "$v opcode=0x2a dir=write len=4096$")" = 2 ] || fail "2 WRITE(10) submissions of 4096 bytes"
[ "$(trace_count /tmp/vtrace "$v opcode=0x2a dir=write len=131072$")" = 1 ] || fail "1 WRITE(10) submission of 131072 bytes"
[ "$(trace_count /tmp/vtrace "$v opcode=0x28 dir=read len=4096$")" = 2 ] || fail "2 READ(10) submissions of 4096 bytes"
[ "$(trace_count /tmp/vtrace "$v opcode=0x00 dir=none len=0$")" = 1 ] || fail "1 TEST UNIT READY submission"
c="tcm_virt_cmd_complete: $dev q=2 tag=0x[0-9a-f]+ lun=0"
# The used length of a read is the response (108 bytes) and the data.
[ "$(trace_count /tmp/vtrace "$c opcode=0x28 status=0x00 response=0 len=4204 latency_ns=[1-9][0-9]*$")" = 2 ] ||
	fail "2 READ(10) completions, GOOD, 4204 bytes used, with a latency"
[ "$(trace_count /tmp/vtrace "$c opcode=0x2a status=0x00 response=0 len=108 latency_ns=[1-9]")" = 3 ] ||
	fail "3 WRITE(10) completions"
ok "trace: a submission and a completion per command, with opcode, length, status and latency"
sub=$(sed -n 's/.*tcm_virt_cmd_submit: .* tag=\(0x[0-9a-f]*\) .*/\1/p' /tmp/vtrace | sort)
com=$(sed -n 's/.*tcm_virt_cmd_complete: .* tag=\(0x[0-9a-f]*\) .*/\1/p' /tmp/vtrace | sort)
[ "$sub" = "$com" ] || fail "tags submitted ($(echo $sub)) and completed ($(echo $com)) differ"
[ "$(echo "$sub" | sort -u | wc -l)" = 6 ] || fail "6 distinct tags expected: $(echo $sub)"
ok "trace: the same 6 tags submitted and completed, each once"
[ "$(trace_count /tmp/vtrace "tcm_virt_cmd_refused: $dev q=2 tag=0x0 reason=malformed response=3$")" = 1 ] ||
	fail "the short header refused as malformed (BAD_TARGET, 3)"
[ "$(trace_count /tmp/vtrace "tcm_virt_cmd_refused: $dev q=2 tag=0x[0-9a-f]+ reason=bad_target response=3$")" = 1 ] ||
	fail "the request for target 9 refused as bad_target"
ok "trace: the refusals with their reasons"
[ "$(trace_count /tmp/vtrace "tcm_virt_tmf_start: $dev function=abort_task lun=0 ref_tag=0xbde31$")" = 1 ] ||
	fail "the ABORT TASK of tag 777777 started"
[ "$(trace_count /tmp/vtrace "tcm_virt_tmf_done: $dev function=abort_task lun=0 ref_tag=0xbde31 outcome=complete latency_ns=[1-9]")" = 1 ] ||
	fail "the ABORT TASK of tag 777777 carried out"
[ "$(trace_count /tmp/vtrace "tcm_virt_event: $dev kind=lun_added lun=1 missed=0$")" = 1 ] ||
	fail "the hotplug event of LUN 1"
ok "trace: the TMF and the event"
check rm $T/lun/lun_1/disk1
check rmdir $T/lun/lun_1

# 2. megasas
MFI="${MFI_BIN:-$TOP/tools/target/release/mfi} --wwpn $WWPN"
trace_start
check $MFI write 0 200 16 8
check $MFI --then "cat $D/megasas-* > /tmp/mstats" read 0 200 16 8
trace_stop /tmp/mtrace
echo "statistics of the megasas adapter of the read, read while it was open:"
sed 's/^/  | /' /tmp/mstats
want_stat /tmp/mstats endpoint: "endpoint: $WWPN tpgt 1"
# mfi sends a TEST UNIT READY before its I/O.
want_stat /tmp/mstats total: "total: submitted=2 completed=2 in_flight=0 read_bytes=8192 write_bytes=0 malformed=0 bad_target=0 pin_failure=0 busy=0 transport=0 offloaded=0"
[ "$(trace_count /tmp/mtrace "tcm_virt_cmd_submit: megasas-[0-9]+ q=0 tag=0x[0-9a-f]+ lun=0 opcode=0x8a dir=write len=8192$")" = 1 ] ||
	fail "the LD write submitted as WRITE(16) of 8192 bytes"
[ "$(trace_count /tmp/mtrace "tcm_virt_cmd_complete: megasas-[0-9]+ q=0 tag=0x[0-9a-f]+ lun=0 opcode=0x88 status=0x00 response=0 len=8192 latency_ns=[1-9]")" = 1 ] ||
	fail "the LD read completed, GOOD, 8192 bytes"
ok "megasas: statistics and trace of the LD write and read"
# A frame of offload_kib (default 128) KiB or more is submitted from the
# offload workqueue: counted, and its data read back.
check $MFI write 0 400 256 9
check $MFI --then "cat $D/megasas-* > /tmp/mstats2" read 0 400 256 9
want_stat /tmp/mstats2 total: "total: submitted=2 completed=2 in_flight=0 read_bytes=131072 write_bytes=0 malformed=0 bad_target=0 pin_failure=0 busy=0 transport=0 offloaded=1"
ok "megasas: a 128 KiB LD read offloaded, its data read back"

# 3. Disabled: nothing traced.
echo > $TR/trace
echo 1 > $TR/tracing_on
check $MFI read 0 200 16 8
check $VSDRV --wwpn $WWPN run <(printf 'lun 1 0\nread10 0 8 1\n')
n=$(grep -c 'tcm_virt_' $TR/trace)
echo > $TR/trace
[ "$n" = 0 ] || fail "$n events traced with the events disabled"
ok "events disabled: I/O traced nothing"
