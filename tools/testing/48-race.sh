#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Race test: 600 rounds (STRESS_ROUNDS; `make soak`: 10,000) of I/O (8
# commands in flight on an iblock LUN over
# a scsi_debug disk answering after 5 ms), each with a task management
# function racing it (ABORT TASK, ABORT TASK SET, LOGICAL UNIT RESET,
# I_T NEXUS RESET, QUERY TASK) and then an ORDERED command racing it,
# while a shell loop unlinks and relinks the
# LUN (hotplug events with no event buffer posted); then closes with
# commands and a TMF in flight; then I/O with the call eventfd swapped
# under it; then the configuration is removed and the module unloaded.  Every
# request must be answered exactly once (vsdrv stress), and the kernel log
# and kmemleak must stay clean (the suite checks both).
. "$TOP/tools/testing/lib.sh"

check sdebug_iblock race dev_size_mb=64 ndelay=5000000
check tcm_load
T=$CFG/vhost/$WWPN/tpgt_1
ib=$IB
check mkdir -p $T/lun/lun_0
check write $T/nexus $INITIATOR
check ln -s $ib $T/lun/lun_0/disk

touch /tmp/race.run
(
	n=0
	# About one relink a second, on any machine (rm and ln are
	# builtins; a relink every 0.35 s made the stress rounds several
	# times slower on a slow machine)
	while [ -e /tmp/race.run ]; do
		nap 1
		rm -f $T/lun/lun_0/disk
		nap 0.05
		ln -s $ib $T/lun/lun_0/disk
		n=$((n + 1))
	done
	echo "relinked $n times" > /tmp/race.relinks
) &
loop=$!
SR=${STRESS_ROUNDS:-600}
# --ordered: an ORDERED TEST UNIT READY after each round must be answered
# (an aborted command must give back target core's task attribute state).
within $((SR + 120)) /tmp/race.out $VSDRV --wwpn $WWPN --hotplug --timeout-ms 20000 \
	stress --rounds $SR --depth 8 --ordered
rc=$?
rm -f /tmp/race.run
wait $loop
cat /tmp/race.out /tmp/race.relinks
[ $rc = 0 ] || fail "stress: rc=$rc"
grep -q "^stress: rounds=$SR depth=8 answered-once" /tmp/race.out || fail "no stress summary"
ok "$SR rounds: every request, every TMF and the ORDERED command after each answered exactly once"
for end in "Aborted/" "Reset/" "Ok/0x00" "tmf0->0x00" "tmf5->0x0a" "ordered-Ok/"; do
	grep -q "$end" /tmp/race.out || fail "no command ended '$end': the race did not happen"
done
ok "commands ended aborted, reset and good; TMFs answered"
n=$(sed -n 's/^relinked \([0-9]*\) times/\1/p' /tmp/race.relinks)
[ "${n:-0}" -ge 2 ] || fail "the LUN was relinked ${n:-0} times during the run"
ok "the LUN was unlinked and relinked $n times during the run"
[ -L $T/lun/lun_0/disk ] || check ln -s $ib $T/lun/lun_0/disk

# race VERB ROUNDS: `vsdrv VERB` of ROUNDS rounds of 8 commands, its output
# printed and kept in /tmp/VERB.out; the test fails if vsdrv does (a round
# costs at most ~1 s under emulation; the limit is scaled)
race() {
	timeout "$(scaled $((2 * $2 + 120)))" $VSDRV --wwpn $WWPN --timeout-ms 20000 "$1" --rounds "$2" --depth 8 \
		> "/tmp/$1.out" 2>&1
	local rc=$?
	cat "/tmp/$1.out"
	[ $rc = 0 ] || fail "$1: rc=$rc"
}

# Close racing completions and TMF answers (issue 18 defect 7): rounds of
# open, bind, 8 commands and a TMF posted, close at once.  A completion
# pass or a TMF answer queued on the worker while the release drains must
# not use the device after its last reference is gone (KASAN would report
# it); every release must return; the LUN answers after.  A round costs
# about 0.8 s under emulation (worker creation, SET_ENDPOINT, release; ~3 s
# on a slow machine): `make check` runs 50, `make soak` CLOSE_RACE_ROUNDS
# (3,000: ~38 min).
R=${CLOSE_RACE_ROUNDS:-50}
t0=$(date +%s)
race close-race $R
grep -q "^close-race: rounds=$R depth=8 .* response=Ok status=0x00" /tmp/close-race.out ||
	fail "close-race: no summary, or the LUN did not answer after"
ok "$R closes with 8 commands and a TMF in flight ($(($(date +%s) - t0)) s); the LUN answers after"

# The call eventfd swapped under completions: a second thread of the owner
# keeps installing a fresh eventfd with VHOST_SET_VRING_CALL, putting the
# session's back and closing the fresh one, while 8 commands per round
# complete.  The worker must signal the call context only under the
# virtqueue mutex, under which the swap releases it (else KASAN may report
# a use after free of the eventfd context); every request answered GOOD.
# `make check` runs 200 rounds (~5 s), `make soak` CALL_RACE_ROUNDS (5,000).
R=${CALL_RACE_ROUNDS:-200}
t0=$(date +%s)
race call-race $R
swaps=$(sed -n "s/^call-race: rounds=$R depth=8 answered=$((R * 8)) swaps=\([0-9]*\)$/\1/p" /tmp/call-race.out)
[ -n "$swaps" ] && [ "$swaps" -ge $R ] || fail "call-race: not every request answered, or fewer swaps than rounds"
ok "$R rounds of 8 commands with the call eventfd swapped $swaps times ($(($(date +%s) - t0)) s)"

check rm $T/lun/lun_0/disk
check rmdir $T/lun/lun_0
check write $T/nexus NULL
check rmdir $T $CFG/vhost/$WWPN $CFG/vhost
check rmmod tcm_virt
check rmdir $ib
check rmmod_idle scsi_debug
