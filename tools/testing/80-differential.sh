#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Differential test: the vsdrv I/O corpus (tools/testing/vsdrv/corpus.vs),
# malformed requests included, against C vhost_scsi and against tcm_virt in
# the same VM, each exporting an rd_mcp disk of its own (a LUN reset on one
# must not raise a unit attention on the other's nexus).  Every answer must be
# identical (response, status, residual, sense, data) except on the lines
# marked 'differs:', the differences Documentation/differences.rst lists.
# Runs late: C vhost_scsi's SET_ENDPOINT turns lockdep off (a report that
# scripts/klog-filter.awk recognises).
. "$TOP/tools/testing/lib.sh"

check modprobe vhost_scsi
check tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV
check lun_setup vhost $WWPN 64 rd0
check lun_setup $ALT_FABRIC $WWPN 64 rd1
corpus=$TOP/tools/testing/vsdrv/corpus.vs
$VSDRV --dev /dev/vhost-scsi --wwpn $WWPN --timeout-ms 1500 run "$corpus" > /tmp/c.out
rc_c=$?
$VSDRV --dev /dev/$ALT_DEV --wwpn $WWPN --timeout-ms 1500 run "$corpus" > /tmp/rust.out
rc_r=$?
[ $rc_c = 0 ] || fail "corpus against C vhost_scsi: rc=$rc_c"
[ $rc_r = 0 ] || fail "corpus against tcm_virt: rc=$rc_r"
paste -d'\n' /tmp/c.out /tmp/rust.out | sed 'N;s/\n/\n   rust /;s/^/      C /'
allowed=$(grep -n 'differs:' "$corpus" | cut -d: -f1 | tr '\n' ' ')
bad=0 same=0 differ=0
while IFS= read -r c && IFS= read -r r <&3; do
	read -r n _ <<< "$c"
	if [ "$c" = "$r" ]; then
		same=$((same + 1))
	elif [[ " $allowed " == *" $n "* ]]; then
		differ=$((differ + 1))
	else
		echo "MISMATCH line $n:"; echo "  C:    $c"; echo "  rust: $r"
		bad=$((bad + 1))
	fi
done < /tmp/c.out 3< /tmp/rust.out
[ "$(wc -l < /tmp/c.out)" = "$(wc -l < /tmp/rust.out)" ] || fail "transcripts differ in length"
[ $bad = 0 ] || fail "$bad unexpected differences"
[ $same -ge 40 ] || fail "only $same identical answers"
ok "$same answers identical, $differ documented differences"
# Where C drops the request, tcm_virt answers it.
for l in "bad huge" "bad unpinnable"; do
	grep -q "$l .*no response" /tmp/c.out || fail "C vhost_scsi answered '$l' (the documented difference is gone)"
done
ok "C vhost_scsi leaves the documented requests unanswered; tcm_virt answers them"
# ABORT TASK (what a guest's abort handler sends, 50-nested_guest): C
# rejects it, tcm_virt carries it out.
n=$(grep -n '^tmf 0 1 ' "$corpus" | cut -d: -f1)
[ -n "$n" ] || fail "no ABORT TASK in the corpus"
grep -Eq "^ *$n .*ctl-response=\[0b\]" /tmp/c.out ||
	fail "C vhost_scsi's answer to ABORT TASK: '$(grep -E "^ *$n " /tmp/c.out)', expected FUNCTION REJECTED"
grep -Eq "^ *$n .*ctl-response=\[00\]" /tmp/rust.out ||
	fail "tcm_virt's answer to ABORT TASK: '$(grep -E "^ *$n " /tmp/rust.out)', expected FUNCTION COMPLETE"
ok "ABORT TASK: C vhost_scsi answers FUNCTION REJECTED, tcm_virt FUNCTION COMPLETE"
lun_teardown vhost $WWPN
lun_teardown $ALT_FABRIC $WWPN
check rmmod tcm_virt
check rmmod vhost_scsi
