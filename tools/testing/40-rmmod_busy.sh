#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rmmod is refused while a TPG or an open file holds the module, and clean
# once they are gone.
. "$TOP/tools/testing/lib.sh"

refused() {
	if rmmod tcm_virt 2>/dev/null; then fail "rmmod succeeded while $1"; fi
	tcm_loaded || fail "module gone while $1"
	ok "rmmod refused while $1"
}

check tcm_load
check mkdir -p $CFG/vhost/$WWPN/tpgt_1
check write $CFG/vhost/$WWPN/tpgt_1/nexus $INITIATOR
refused "a TPG with a nexus exists"
check write $CFG/vhost/$WWPN/tpgt_1/nexus NULL
check rmdir $CFG/vhost/$WWPN/tpgt_1 $CFG/vhost/$WWPN
refused "the fabric directory exists"
check rmdir $CFG/vhost

# an open file holds the module
python3 -c "
import os, sys, time
fd = os.open('/dev/vhost-scsi', os.O_RDWR)
open('/tmp/held', 'w').close()
time.sleep(30)
" &
holder=$!
for _ in $(seq "$(scaled 50)"); do [ -e /tmp/held ] && break; nap 0.2; done
refused "/dev/vhost-scsi is open"
kill $holder; wait $holder 2>/dev/null
check rmmod tcm_virt
check test ! -e /dev/vhost-scsi

# a TPG left with a nexus is torn down cleanly by rmdir alone
check tcm_load
check mkdir -p $CFG/vhost/$WWPN/tpgt_2
check write $CFG/vhost/$WWPN/tpgt_2/nexus $INITIATOR
check rmdir $CFG/vhost/$WWPN/tpgt_2 $CFG/vhost/$WWPN $CFG/vhost
check rmmod tcm_virt
