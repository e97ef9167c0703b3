# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest, which the host migrates to a second
# QEMU while this runs.  A pattern goes to sda first; then, once a second,
# a 64 KiB block of random data is written with direct I/O, its md5 kept
# ('L2-MIG-W N' on the console of whichever QEMU runs the guest then).
# The host writes MIGRATED at 31 MiB of the LUN's backing file once the
# migration has completed; the guest reads that sector (direct) after each
# block, writes three more blocks once it sees the mark (so blocks are
# written on the destination however long the migration took; at most 300
# blocks, 'L2-MIG-NOMARK' if the mark never came); at the end every block
# and the pattern are read back and checked.
set -e
n=0
while [ ! -b /dev/sda ] && [ $n -lt 600 ]; do sleep 1; n=$((n + 1)); done
dd if=/dev/urandom of=/tmp/pat bs=1M count=1 2>/dev/null
dd if=/tmp/pat of=/dev/sda bs=1M seek=1 oflag=direct 2>/dev/null
echo "L2-MIG-PATTERN $(md5sum < /tmp/pat | cut -d' ' -f1)"
echo "L2-MIG-READY"
: > /tmp/sums
i=0
last=300
while [ $i -lt $last ]; do
	dd if=/dev/urandom of=/tmp/blk bs=64k count=1 2>/dev/null
	dd if=/tmp/blk of=/dev/sda bs=64k seek=$((64 + i)) oflag=direct 2>/dev/null
	echo "$i $(md5sum < /tmp/blk | cut -d' ' -f1)" >> /tmp/sums
	echo "L2-MIG-W $i"
	if [ $last = 300 ] &&
		[ "$(dd if=/dev/sda bs=512 skip=$((31 * 2048)) count=1 iflag=direct 2>/dev/null | head -c 8)" = MIGRATED ]; then
		echo "L2-MIG-MARK after block $i"
		last=$((i + 4))
	fi
	sleep 1
	i=$((i + 1))
done
[ $last != 300 ] || echo "L2-MIG-NOMARK"
while read -r i sum; do
	got=$(dd if=/dev/sda bs=64k skip=$((64 + i)) count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$got" = "$sum" ] || { echo "L2-MIG-BAD block $i"; exit 1; }
done < /tmp/sums
got=$(dd if=/dev/sda bs=1M skip=1 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$got" = "$(md5sum < /tmp/pat | cut -d' ' -f1)" ]
echo "L2-MIG-VERIFY ok"
