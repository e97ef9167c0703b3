#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fuzz.sh - `make fuzz`: tools/fuzz in the test VM (the test 51-fuzz with
# FUZZ_REQUESTS, default 10^6 requests on the vhost device and 10^6 frames
# on the megasas adapter, and FUZZ_SECS, default 7000 s per front end),
# then the inputs that reached new coverage appended to the corpus files
# in the tree (tools/fuzz/corpus/), for `make check` to run first.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp /tmp/tcm_virt-fuzz.XXXXXX.log)
VM_LOG=$log VM_TIMEOUT=${VM_TIMEOUT:-14400} "$top/scripts/vm.sh" \
	env FUZZ_REQUESTS="${FUZZ_REQUESTS:-1000000}" FUZZ_SECS="${FUZZ_SECS:-7000}" \
	FUZZ_PRINT_NEW=1 TEST_TIMEOUT="${TEST_TIMEOUT:-14000}" TEST_VERBOSE=1 \
	"$top/scripts/vm-suite.sh" 51-fuzz | grep -av '^    corpus-new '
rc=${PIPESTATUS[0]}
for f in vhost megasas; do
	grep -a "^    corpus-new $f " "$log" | awk '{print $3}' | tr -d '\r' \
		>> "$top/tools/fuzz/corpus/$f.txt"
	echo "corpus $f: $(grep -vc '^#' "$top/tools/fuzz/corpus/$f.txt") inputs"
done
echo "log: $log"
exit "$rc"
