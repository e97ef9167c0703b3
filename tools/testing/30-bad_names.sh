#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Invalid names and nexus misuse get the errno C vhost_scsi gives: the same
# configfs sequence runs against C vhost_scsi and against tcm_virt (fabric
# "vhost" both times) and must give the same, expected, results; the
# directories hold the same attributes.
. "$TOP/tools/testing/lib.sh"

# each step: expected result ('=': only compared with C vhost_scsi), then
# the command
steps() {
	local F=$CFG/vhost W=$CFG/vhost/naa.5001405000000001
	cat <<STEPS
OK|mkdir $F
Invalid argument|mkdir $F/foo.123
Invalid argument|mkdir $F/eui.0123456789abcdef
OK|mkdir $W
Invalid argument|mkdir $W/tpgt_256
Invalid argument|mkdir $W/tpgt_65536
Invalid argument|mkdir $W/tpgt_abc
Invalid argument|mkdir $W/tpgt_
Invalid argument|mkdir $W/tpg_1
OK|mkdir $W/tpgt_0
OK|mkdir $W/tpgt_255
=|ls $F
=|ls $W
=|ls $W/tpgt_0
=|ls $W/tpgt_0/attrib
No such device|cat $W/tpgt_255/nexus
No such device|write $W/tpgt_255/nexus NULL
Invalid argument|write $W/tpgt_255/nexus iqn.2003-01.org.example:i
Invalid argument|write $W/tpgt_255/nexus bogus
OK|write $W/tpgt_255/nexus $INITIATOR
$INITIATOR|cat $W/tpgt_255/nexus
File exists|write $W/tpgt_255/nexus naa.5001405000000003
OK|mkdir $W/tpgt_255/lun/lun_3
OK|ln -s $CFG/core/rd_mcp_0/rd0 $W/tpgt_255/lun/lun_3/port
Device or resource busy|write $W/tpgt_255/nexus NULL
OK|rm $W/tpgt_255/lun/lun_3/port
OK|rmdir $W/tpgt_255/lun/lun_3
OK|write $W/tpgt_255/nexus NULL
0|cat $W/tpgt_0/attrib/fabric_prot_type
Invalid argument|write $W/tpgt_0/attrib/fabric_prot_type 2
OK|write $W/tpgt_0/attrib/fabric_prot_type 3
3|cat $W/tpgt_0/attrib/fabric_prot_type
OK|rmdir $W/tpgt_0 $W/tpgt_255 $W
OK|mkdir $F/fc.21000024ff314c48 $F/fc.21000024ff314c48/tpgt_1
Invalid argument|write $F/fc.21000024ff314c48/tpgt_1/nexus $INITIATOR
OK|write $F/fc.21000024ff314c48/tpgt_1/nexus fc.21000024ff314c49
21000024ff314c49|cat $F/fc.21000024ff314c48/tpgt_1/nexus
OK|write $F/fc.21000024ff314c48/tpgt_1/nexus NULL
OK|rmdir $F/fc.21000024ff314c48/tpgt_1 $F/fc.21000024ff314c48
OK|mkdir $F/iqn.2003-01.org.example:t $F/iqn.2003-01.org.example:t/tpgt_7
OK|write $F/iqn.2003-01.org.example:t/tpgt_7/nexus iqn.2003-01.org.example:i
iqn.2003-01.org.example:i|cat $F/iqn.2003-01.org.example:t/tpgt_7/nexus
OK|write $F/iqn.2003-01.org.example:t/tpgt_7/nexus NULL
OK|rmdir $F/iqn.2003-01.org.example:t/tpgt_7 $F/iqn.2003-01.org.example:t
OK|rmdir $F
STEPS
}

# run_steps: each step in this shell, in order, printing 'want|got|cmd'.
# got: OK or the strerror text of the failure, or what a cat or ls gave.
# No command substitution and no cat or ls process: in a slow test VM a
# process costs ~0.8 s, and the two runs of the steps took 165 s of it.
run_steps() {
	local want cmd got err=/tmp/step.err
	local -a w files
	while IFS='|' read -r want cmd; do
		read -ra w <<< "$cmd"
		case ${w[0]} in
		cat)
			got=
			if ! IFS= read -r got 2> $err < "${w[1]}" && [ -z "$got" ]; then
				IFS= read -r got < $err
				got=${got##*: }
			fi
			;;
		ls)
			files=("${w[1]}"/*)
			got="${files[*]##*/} "
			;;
		*)
			if "${w[@]}" 2> $err; then
				got=OK
			else
				IFS= read -r got < $err
				got=${got##*: }
			fi
			;;
		esac
		echo "$want|$got|${cmd//$CFG\//}"
	done < <(steps)
}

rd_setup() {
	mkdir -p $CFG/core/rd_mcp_0/rd0 &&
		echo rd_pages=256 > $CFG/core/rd_mcp_0/rd0/control &&
		echo 1 > $CFG/core/rd_mcp_0/rd0/enable
}

check rd_setup
log "C vhost_scsi"
check modprobe vhost_scsi
run_steps > /tmp/upstream.txt
check rmmod vhost_scsi
log "tcm_virt"
check tcm_load
run_steps > /tmp/ours.txt
check rmmod tcm_virt
paste -d'|' /tmp/upstream.txt /tmp/ours.txt | awk -F'|' '{ printf "%-28s %-28s %s\n", $2, $5, $3 }'
bad=0
while IFS='|' read -r want got cmd; do
	[ "$want" = = ] || [ "$want" = "$got" ] || { echo "tcm_virt: $cmd -> '$got', expected '$want'"; bad=1; }
done < /tmp/ours.txt
cut -d'|' -f2,3 /tmp/upstream.txt > /tmp/u
cut -d'|' -f2,3 /tmp/ours.txt > /tmp/o
diff -u /tmp/u /tmp/o || { echo "tcm_virt differs from C vhost_scsi"; bad=1; }
[ $bad = 0 ] || fail "names and nexus semantics"
ok "same errnos as C vhost_scsi for all $(wc -l < /tmp/ours.txt) steps"

log "a prefix must start the name (C vhost_scsi finds it anywhere)"
check tcm_load
check mkdir $CFG/vhost
expect_errno "Invalid argument" mkdir $CFG/vhost/x-naa.1
check rmdir $CFG/vhost
check rmmod tcm_virt
