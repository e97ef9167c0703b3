# SPDX-License-Identifier: GPL-2.0
#
# klog-filter.awk - reads kernel log lines, prints those that report a bug
# (BUG, WARNING, KASAN, Oops, lockdep, RCU, kmemleak, list corruption, soft
# lockup, hung task).
#
# While a test injects faults (between its kernel log lines
# "tcm_virt-test: mark ... fault injection armed" and "... disarmed"), the
# allocator's own report of a failed allocation ("vmalloc error:", "page
# allocation failure:", with its stack dump) is the expected reaction to an
# injected failure, not a defect: that block is dropped.  Outside such a
# window it is reported (an allocation sized by input must fail cleanly,
# not warn).
#
# With -v context=1 it prints instead the log from 10 lines before the
# first report on (what a failing test shows of its kernel log).
#
# One report is known and not ours: C vhost_scsi's VHOST_SCSI_SET_ENDPOINT
# calls configfs_depend_item() with its tv_tpg_mutex held, the reverse of the
# order its configfs port_link takes them (lockdep: "possible circular
# locking dependency", Linux 7.3).  Such a report block is dropped and a
# note printed instead; lockdep is off for the rest of that boot, which is
# why the tests that use C vhost_scsi endpoints run last.
BEGIN {
	bad = "BUG:|WARNING:|KASAN|Oops|general protection|Call Trace|possible circular locking|" \
	      "inconsistent lock state|possible recursive locking|suspicious RCU usage|" \
	      "unreferenced object|sleeping function called from invalid context|" \
	      "list_add corruption|list_del corruption|soft lockup|blocked for more than|" \
	      "detected stalls? on CPU"
	inblock = 0
}
function flush_block() {
	if (block ~ /vhost_scsi_set_endpoint\+/ && block ~ /tv_tpg_mutex/)
		print "note: known C vhost_scsi lockdep report (SET_ENDPOINT vs port_link) ignored" > "/dev/stderr"
	else
		printf "%s", blockbad
	inblock = 0; block = ""; blockbad = ""
}
/tcm_virt-test: mark .* fault injection armed/ { armed = 1 }
/tcm_virt-test: mark .* fault injection disarmed/ { armed = 0 }
armed && !context && /vmalloc error:|page allocation failure:/ { allocblock = 1; next }
allocblock && !context { if ($0 ~ /<\/TASK>/) allocblock = 0; next }
context {
	if (shown) { print; next }
	if ($0 ~ bad) {
		for (i = NR - 10; i < NR; i++) if (i in ring) print ring[i]
		shown = 1; print; next
	}
	ring[NR] = $0; delete ring[NR - 10]
	next
}
/WARNING: possible circular locking dependency detected/ {
	if (inblock) flush_block()
	inblock = 1
}
{
	if (inblock) {
		block = block $0 "\n"
		if ($0 ~ bad) blockbad = blockbad $0 "\n"
		if ($0 ~ /<\/TASK>/) flush_block()
		next
	}
	if ($0 ~ bad) print
}
END { if (inblock) flush_block() }
