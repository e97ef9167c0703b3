#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# stackcheck.sh - fail if a function of the module reserves a stack frame
# larger than LIMIT bytes (default 2048).  A large value built on the stack
# (a struct holding a vhost_virtqueue is 19 KiB) overflows the 16 KiB
# kernel stack of a kernel without KASAN, while the KASAN test kernel,
# with 32 KiB stacks, survives it.
#
# usage: scripts/stackcheck.sh MODULE.ko [LIMIT]
set -uo pipefail
ko=$1
limit=${2:-2048}
[ -f "$ko" ] || { echo "stackcheck: no $ko" >&2; exit 2; }
objdump -d --no-show-raw-insn "$ko" | awk -v limit="$limit" '
	function hex(s,   i, n) {
		n = 0
		for (i = 1; i <= length(s); i++)
			n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
		return n
	}
	/^[0-9a-f]+ <.*>:$/ { fn = $2; next }
	/sub +\$0x[0-9a-f]+,%rsp/ {
		match($0, /\$0x[0-9a-f]+/)
		n = hex(substr($0, RSTART + 3, RLENGTH - 3))
		if (n > max) max = n
		if (n > limit) { printf "stackcheck: %s: %d-byte frame\n", fn, n; bad = 1 }
	}
	END {
		printf "stackcheck: largest frame %d bytes (limit %d)\n", max, limit
		exit bad
	}'
