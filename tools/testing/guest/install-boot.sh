# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest: makes its only disk (a tcm_virt LUN)
# bootable.  An ext2 file system on the whole disk, the kernel and the
# initramfs of /payload/ on it, and extlinux in its boot sector, with a
# configuration that boots them with the serial console.
set -e
test -b /dev/sda
mkfs.ext4 -q -F -t ext2 /dev/sda
mkdir -p /mnt
mount -t ext2 /dev/sda /mnt
cp /payload/vmlinuz /payload/initrd.gz /mnt/
cat > /mnt/extlinux.conf <<'C'
DEFAULT l2
PROMPT 0
TIMEOUT 0
LABEL l2
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 panic=-1 rdinit=/init loglevel=4 no_timer_check tcm_virt_boot=lun
C
extlinux --install /mnt
umount /mnt
sync
echo "L2-INSTALLED"
