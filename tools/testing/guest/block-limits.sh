# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest: pass-through LUNs 6 and 7 of the
# second controller, a device of the host that has no Block Limits VPD
# page, whose host limit is 64 KiB (max_sectors_kb) and whose adapter
# takes 1 MiB per command.  LUN 6 was linked with emulate_block_limits on:
# sg_vpd -p bl shows the host's limit, max_sectors_kb follows it, and dd
# of 2 MiB blocks succeeds.  LUN 7 was linked with it off: no B0h, the
# guest's own default limit, and the same dd fails.
lun_dev() { # LUN: the sdX at that LUN
	for d in /sys/block/sd*; do
		case $(basename "$(readlink -f $d/device)") in
		*:"$1") echo "${d##*/}" ;;
		esac
	done
}
on=$(lun_dev 6)
off=$(lun_dev 7)
echo "L2-BL-DEVS on=$on off=$off"
# The caller's scripts run under set -e: failures are recorded, not fatal.
rc=0
sg_vpd -p bl /dev/$on > /tmp/bl-on 2>&1 || rc=$?
echo "L2-BL-ON-VPD rc=$rc $(grep -i 'maximum transfer length' /tmp/bl-on)"
echo "L2-BL-ON-MAXKB $(cat /sys/block/$on/queue/max_sectors_kb)"
dd if=/dev/urandom of=/tmp/bl-data bs=2M count=2 2>/dev/null
rc=0
{ dd if=/tmp/bl-data of=/dev/$on bs=2M count=2 oflag=direct &&
	dd if=/dev/$on of=/tmp/bl-back bs=2M count=2 iflag=direct &&
	cmp /tmp/bl-data /tmp/bl-back; } 2>/dev/null || rc=$?
echo "L2-BL-ON-DD rc=$rc"
rc=0
sg_vpd -p bl /dev/$off > /tmp/bl-off 2>&1 || rc=$?
echo "L2-BL-OFF-VPD rc=$rc"
echo "L2-BL-OFF-MAXKB $(cat /sys/block/$off/queue/max_sectors_kb)"
rc=0
dd if=/dev/$off of=/dev/null bs=2M count=2 iflag=direct 2>/dev/null || rc=$?
echo "L2-BL-OFF-DD rc=$rc"
