#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fuzzer slice: tools/fuzz drives the vhost device, then the megasas
# adapter, with the kept corpus (tools/fuzz/corpus/) and its mutations for
# FUZZ_SECS seconds each (default 30; `make fuzz` runs 10^6 requests and
# 10^6 frames), with KCOV coverage feedback.  Every oracle of the fuzzer
# must hold (each well-formed request answered exactly once within 10 s,
# used lengths within the writable bytes, wild entries refused and
# counted, close/RESET/CLEAR_ENDPOINT bounded); coverage must be reported
# (KCOV reaches the module's code through the vhost workers); a sentinel
# LUN no fuzzed device can address keeps its data; the kernel log and
# kmemleak stay clean (the suite).  A failure prints a one-line
# reproducer: `fuzz --wwpn ... repro FRONT HEX`.
. "$TOP/tools/testing/lib.sh"
FUZZ=${FUZZ_BIN:-$TOP/tools/target/release/fuzz}
SECS=${FUZZ_SECS:-30}
REQS=${FUZZ_REQUESTS:-1000000}
SEED=${FUZZ_SEED:-$(date +%s)}
SENTINEL=naa.5001405000000077

check tcm_load
lun_setup vhost $WWPN 16 || fail "LUN"
lun_setup vhost $SENTINEL 4 rd_sentinel || fail "sentinel LUN"
cat > /tmp/fuzz.sentinel <<S
write10 0 8 77
write10 1000 8 78
S
check $VSDRV --wwpn $SENTINEL run /tmp/fuzz.sentinel
sed -i 's/write10/read10/' /tmp/fuzz.sentinel

for front in vhost megasas; do
	corpus=$TOP/tools/fuzz/corpus/$front.txt
	$FUZZ --wwpn $WWPN --seed "$SEED" --secs "$SECS" --requests "$REQS" \
		--corpus "$corpus" --save /tmp/fuzz-new-$front.txt $front > /tmp/fuzz.out 2>&1
	rc=$?
	cat /tmp/fuzz.out
	[ $rc = 0 ] || fail "$front: fuzz exit status $rc (the FAIL and repro lines above)"
	sum=$(grep "^fuzz $front: .* failures 0" /tmp/fuzz.out) || fail "$front: no summary"
	edges=$(echo "$sum" | sed -n 's/.* edges \([0-9]*\) .*/\1/p')
	[ "${edges:-0}" -gt 0 ] || fail "$front: no coverage reported (KCOV remote, KCOV_INSTRUMENT)"
	n=$(echo "$sum" | sed -n "s/^fuzz $front: \([0-9]*\) .*/\1/p")
	[ "${n:-0}" -ge 100 ] || fail "$front: only ${n:-0} requests"
	ok "$front: $n requests, coverage $edges program counters, no oracle broken"
	# New inputs, for `make fuzz` to keep (printed, the VM's root is
	# read-only).
	[ "${FUZZ_PRINT_NEW:-0}" = 1 ] && sed "s/^/corpus-new $front /" /tmp/fuzz-new-$front.txt
	rm -f /tmp/fuzz-new-$front.txt
done

out=$($VSDRV --wwpn $SENTINEL run /tmp/fuzz.sentinel 2>&1) || fail "sentinel read: $out"
[ "$(echo "$out" | grep -c 'verify=ok')" = 2 ] || { echo "$out"; fail "the sentinel LUN's data changed"; }
ok "sentinel LUN unchanged"
lun_teardown vhost $SENTINEL 2>/dev/null # (the fabric directory goes with the last)
lun_teardown vhost $WWPN
check rmmod tcm_virt
