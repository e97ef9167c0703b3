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
# While either front end is fuzzed, a loop unlinks and relinks the fuzzed
# LUN about once a second (events, AENs and LD list changes under I/O) and every
# fourth time drops the TPG's nexus and sets it again (refused with EBUSY
# while a device holds the TPG; between two sessions it goes through and
# the next one binds the new nexus).  The kept corpus starts with the
# pseudo-operations: a forked
# canary process holding the device (its ioctls refused, its copy of the
# memory untouched) and the owner SIGKILLed with requests in flight; both
# must have run.
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

T=$CFG/vhost/$WWPN/tpgt_1
RD=$CFG/core/rd_mcp_0/rd0
# relink: the loop above, until /tmp/fuzz.relink goes; its counts in
# /tmp/fuzz.relinks.
relink() {
	local n=0 dropped=0 busy=0
	while [ -e /tmp/fuzz.relink ]; do
		nap 0.8
		rm -f $T/lun/lun_0/disk
		nap 0.05
		ln -s $RD $T/lun/lun_0/disk
		n=$((n + 1))
		if [ $((n % 4)) = 0 ]; then
			if (echo NULL > $T/nexus) 2>/dev/null; then
				dropped=$((dropped + 1))
				echo "$INITIATOR" > $T/nexus
			else
				busy=$((busy + 1))
			fi
		fi
	done
	echo "$n $dropped $busy" > /tmp/fuzz.relinks
}

for front in vhost megasas; do
	corpus=$TOP/tools/fuzz/corpus/$front.txt
	echo "0 0 0" > /tmp/fuzz.relinks
	touch /tmp/fuzz.relink
	relink &
	loop=$!
	$FUZZ --wwpn $WWPN --seed "$SEED" --secs "$SECS" --requests "$REQS" --timeout-ms "$(scaled 10000)" \
		--corpus "$corpus" --save /tmp/fuzz-new-$front.txt $front > /tmp/fuzz.out 2>&1
	rc=$?
	rm -f /tmp/fuzz.relink
	wait $loop
	cat /tmp/fuzz.out
	[ $rc = 0 ] || fail "$front: fuzz exit status $rc (the FAIL and repro lines above)"
	read -r relinks dropped busy < /tmp/fuzz.relinks
	[ -L $T/lun/lun_0/disk ] || fail "$front: the LUN was left unlinked"
	grep -q "$INITIATOR" $T/nexus || fail "$front: the nexus was left dropped"
	echo "$front: LUN relinked $relinks times, nexus dropped $dropped times, refused $busy times (EBUSY)"
	# Each unlink waits for the LUN's commands: 17 to 32 relinks in 30 s
	# were seen (13 on a slow machine, when each relink started two
	# processes); 10 show the churn ran under the fuzzer, and give at
	# least two nexus changes.
	[ "$relinks" -ge 10 ] || fail "$front: the LUN was relinked only $relinks times"
	[ $((dropped + busy)) -ge 2 ] || fail "$front: no nexus change tried"
	pseudo=$(grep -h "canary processes" /tmp/fuzz.out | tail -1)
	canaries=$(echo "$pseudo" | sed -n 's/.* \([0-9]*\) canary processes.*/\1/p')
	kills=$(echo "$pseudo" | sed -n 's/.* \([0-9]*\) owners killed.*/\1/p')
	[ "${canaries:-0}" -ge 1 ] && [ "${kills:-0}" -ge 1 ] ||
		fail "$front: canary processes '${canaries}', owners killed '${kills}' (the corpus runs both)"
	ok "$front: LUN relinked $relinks times and nexus changes tried $((dropped + busy)) times under I/O; $canaries canary processes, $kills owners killed"
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
