#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Module load/unload: the fabric and the device appear and disappear, the
# parameters rename them (so tcm_virt loads beside C vhost_scsi), bad
# parameters are refused with EINVAL and a log line.
. "$TOP/tools/testing/lib.sh"

check tcm_load
check test -c /dev/vhost-scsi
check grep -q "tcm_virt: ready: fabric 'vhost', /dev/vhost-scsi" <(dmesg)
check test "$(cat /sys/module/tcm_virt/parameters/fabric_name)" = vhost
check test "$(cat /sys/module/tcm_virt/parameters/vhost_devname)" = vhost-scsi
check mkdir $CFG/vhost
v=$(cat $CFG/vhost/version)
echo "version: $v"
case $v in "TCM_VIRT fabric module v0.1 on Linux/"*" on $(uname -r)") ok version ;; *) fail "version '$v'" ;; esac
# unknown_ioctl DEV: the errnos of an unknown ioctl before VHOST_SET_OWNER
# and after it (with a readable argument), and that the device closes.
unknown_ioctl() {
	python3 - "$1" <<'PY'
import array, errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
out = []
for owner in (False, True):
    if owner:
        fcntl.ioctl(fd, 0xAF01)  # VHOST_SET_OWNER
    try:
        fcntl.ioctl(fd, 0xAFFF, array.array('I', [0, 0]))
        out.append('accepted')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
os.close(fd)
print(' '.join(out))
PY
}
r=$(unknown_ioctl /dev/vhost-scsi)
[ "$r" = "EPERM ENOTTY" ] || fail "unknown ioctl: '$r', expected 'EPERM ENOTTY'"
ok "unknown ioctl: EPERM before VHOST_SET_OWNER, ENOTTY after"
check rmdir $CFG/vhost
check rmmod tcm_virt
check test ! -e /dev/vhost-scsi
check test ! -e /sys/module/tcm_virt

log "beside C vhost_scsi, renamed"
check modprobe vhost_scsi
check tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV
check test -c /dev/vhost-scsi
check test -c /dev/$ALT_DEV
check mkdir $CFG/vhost $CFG/$ALT_FABRIC
check grep -q TCM_VHOST $CFG/vhost/version
check grep -q TCM_VIRT $CFG/$ALT_FABRIC/version
c=$(unknown_ioctl /dev/vhost-scsi) r=$(unknown_ioctl /dev/$ALT_DEV)
[ "$c" = "$r" ] || fail "unknown ioctl: C vhost_scsi '$c', tcm_virt '$r'"
ok "unknown ioctl: the errnos of C vhost_scsi ($c)"
check rmdir $CFG/vhost $CFG/$ALT_FABRIC
check rmmod tcm_virt
check rmmod vhost_scsi

log "bad parameters (kmod prints EINVAL from init_module as 'Invalid parameters')"
expect_errno "Invalid parameters" insmod "$KO" fabric_name=
check grep -q "tcm_virt: fabric_name must be 1 to 31 characters" <(dmesg)
expect_errno "Invalid parameters" insmod "$KO" fabric_name=abcdefghijklmnopqrstuvwxyz0123456789
expect_errno "Invalid parameters" insmod "$KO" vhost_devname=a/b
check grep -q "tcm_virt: vhost_devname must be a non-empty name without '/'" <(dmesg)
check test ! -e /sys/module/tcm_virt
# and a good load still works afterwards
check tcm_load
check rmmod tcm_virt
