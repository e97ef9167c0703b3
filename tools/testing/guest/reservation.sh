# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest after disk-roundtrip.sh: persistent
# reservations with sg_persist on the disk backed by disk0, against a
# second initiator on the host (mfi, the megasas front end on the same TPG).
# The guest registers key 0xcc and reserves Write Exclusive, prints
# L2-PR-HELD, then waits until the host's initiator has registered key 0xdd
# (after its WRITE got RESERVATION CONFLICT), and clears everything.
pd=
for d in /sys/block/sd*; do
	d=${d##*/}
	sg_inq /dev/$d | grep -q 'Product identification: disk0' && pd=$d
done
echo "L2-PR-DISK $pd"
test -n "$pd"
sg_persist --out --register --param-sark=0xcc /dev/$pd
sg_persist --out --reserve --param-rk=0xcc --prout-type=1 /dev/$pd
sg_persist --in --read-keys /dev/$pd | tee /tmp/keys
grep -q '0xcc' /tmp/keys
sg_persist --in --read-reservation /dev/$pd | tee /tmp/res
grep -q 'Key=0xcc' /tmp/res
grep -q 'Write Exclusive' /tmp/res
echo "L2-PR-HELD $pd"
n=0
until sg_persist --in --read-keys /dev/$pd | grep -q '0xdd'; do
	n=$((n + 1))
	test $n -lt 300
	sleep 1
done
echo "L2-PR-SAW-SECOND after $n s"
sg_persist --out --clear --param-rk=0xcc /dev/$pd
sg_persist --in --read-keys /dev/$pd | tee /tmp/keys
grep -qi 'no registered reservation keys' /tmp/keys
echo "L2-PR-CLEARED"
