# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest of 50-nested_guest: an ABORT TASK sent
# by the guest's own virtio_scsi.  Linux re-arms a virtio-scsi command's
# timer when it expires, so its abort handler runs only for a command its
# error handler issued itself and that did not end in eh_timeout.  The
# pass-through LUN 5 is a scsi_debug disk of the host, into which the host
# injected, before the guest started, two faults: the next READ(16) ends
# with CHECK CONDITION, NOT READY, LOGICAL UNIT NOT READY, INITIALIZING
# COMMAND REQUIRED (04h/02h), passed through unchanged by pscsi, and the
# next START STOP UNIT is never answered.  With allow_restart set, the
# guest's midlayer hands that READ(16) to its error handler, which sends
# START STOP UNIT to start the unit; after eh_timeout (3 s) it aborts that
# command: ABORT TASK on the control queue, with the command's tag.  Target
# core answers it once the host's own timeout (pscsi's 15 s) has ended the
# command on the host.  The guest then goes on recovering (LOGICAL UNIT
# RESET, TEST UNIT READY) and the disk works on.
set +e
ab=
for d in /sys/block/sd*; do
	case $(basename "$(readlink -f $d/device)") in
	*:5) ab=${d##*/} ;;
	esac
done
hctl=$(basename "$(readlink -f /sys/block/$ab/device)")
echo 1 > /sys/class/scsi_disk/$hctl/allow_restart
echo 3 > /sys/block/$ab/device/eh_timeout
echo "L2-AB-READY $ab $hctl allow_restart=$(cat /sys/class/scsi_disk/$hctl/allow_restart) eh_timeout=$(cat /sys/block/$ab/device/eh_timeout)"
# READ(16) of one block at LBA 0
r16="88 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00"
rc=0
# shellcheck disable=SC2086 # the CDB's bytes
sg_raw -r 512 /dev/$ab $r16 > /tmp/ab1 2>&1 || rc=$?
echo "L2-AB-FIRST rc=$rc $(grep -i -m1 'sense key' /tmp/ab1)"
rc=0
# shellcheck disable=SC2086
sg_raw -r 512 /dev/$ab $r16 > /tmp/ab2 2>&1 || rc=$?
echo "L2-AB-AFTER rc=$rc"
rc=0
dd if=/dev/$ab of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null || rc=$?
echo "L2-AB-DD rc=$rc"
echo "L2-AB-DMESG $(dmesg | grep -a "$hctl" | grep -a -i -e abort -e 'start' | tr '\n' '|')"
echo 0 > /sys/class/scsi_disk/$hctl/allow_restart
