# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest, from its initramfs (busybox sh).
# For each disk of $DISKS (the caller prepends "DISKS='sda ...'"): the
# virtio_scsi driver found it, sg_inq sees LIO, sg_readcap the 32 MiB size,
# mkfs.ext4, a file written, unmount, e2fsck, mount, the file read back;
# then a raw pattern at 1 MiB whose md5 is printed as 'L2-PATTERN DISK
# PRODUCT MD5' for the host to find in the backing file (PRODUCT is the
# backstore's name: the guest probes disks asynchronously, so which
# controller's disk becomes sda is not fixed).
set -e
for f in /sys/bus/virtio/devices/*/features; do
	echo "L2-FEATURES $f $(cat "$f")"
done
for d in ${DISKS:-sda}; do
	test -b /dev/$d
	sg_inq /dev/$d | tee /tmp/inq
	grep -q 'Vendor identification: LIO-ORG' /tmp/inq
	sg_readcap /dev/$d | tee /tmp/cap
	grep -q 'Last LBA=65535' /tmp/cap
	mkfs.ext4 -q -F /dev/$d
	mkdir -p /mnt/$d
	mount -t ext4 /dev/$d /mnt/$d
	dd if=/dev/urandom of=/mnt/$d/file bs=64k count=32 2>/dev/null
	a=$(md5sum < /mnt/$d/file)
	umount /mnt/$d
	e2fsck -f -n /dev/$d
	mount -t ext4 /dev/$d /mnt/$d
	b=$(md5sum < /mnt/$d/file)
	umount /mnt/$d
	echo "$d: file ${a%% *} read back ${b%% *}"
	test "$a" = "$b"
	dd if=/dev/urandom of=/tmp/pat bs=64k count=4 2>/dev/null
	dd if=/tmp/pat of=/dev/$d bs=64k seek=16 conv=fsync 2>/dev/null
	prod=$(sed -n 's/.*Product identification: *\([^ ]*\).*/\1/p' /tmp/inq)
	echo "L2-PATTERN $d $prod $(md5sum < /tmp/pat | cut -d' ' -f1)"
	echo "$d: hardware queues: $(ls /sys/block/$d/mq | tr '\n' ' ')"
done
