# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest of 50-nested_guest, whose QEMU offers
# VIRTIO_SCSI_F_HOTPLUG (vhost-scsi-pci,hotplug=on): LUN hotplug as the
# guest's own virtio_scsi driver sees it, on both controllers (target 1 of
# each; controller A, the first WWPN, has LUN 0 alone, controller B has
# LUN 5 among others and 4 request queues).  The host acts when it reads
# the guest's lines, the guest waits for what the host did:
#   L2-HP-READY          the host links LUN 3 on A and B with targetcli
#   L2-HP-ADDED ...      both appeared without a rescan; the first bytes
#                        of A's LUN 3 as read by the guest (the host wrote
#                        them into the backing file); the host unlinks them
#   L2-HP-REMOVED ...    both vanished; the host stops this guest's
#                        QEMU, links and unlinks LUN 11 of A 40 times,
#                        links LUNs 9 and 10 of A (82 events:
#                        more than the guest's 8 event buffers and the
#                        device's queue of 64, so events are missed),
#                        and lets QEMU go on
#   L2-HP-FINAL A=...    A's LUNs once they are 0 9 10 for 5 s (or the
#                        last seen, after 180 s): the guest's rescan on
#                        EVENTS_MISSED and the events after it
set +e
# hp_luns HOST: the LUNs of target 1 of scsi host HOST, sorted, one line
hp_luns() {
	for d in /sys/bus/scsi/devices/$1:0:1:*; do
		[ -d "$d" ] && echo "${d##*:}"
	done | sort -n | tr '\n' ' '
}
# hp_wait HOST LUNS SECS: wait until HOST's LUNs are LUNS, then for them
# to stay so for 5 s
hp_wait() {
	n=0 same=0
	while [ $n -lt "$3" ]; do
		if [ "$(hp_luns "$1")" = "$2" ]; then
			same=$((same + 1))
			[ $same -ge 5 ] && return 0
		else
			same=0
		fi
		sleep 1
		n=$((n + 1))
	done
	return 1
}
HA= HB=
for h in /sys/class/scsi_host/host*; do
	h=${h##*host}
	case " $(hp_luns "$h")" in
	" 0 ") HA=$h ;;
	*" 5 "*) HB=$h ;;
	esac
done
echo "L2-HP-READY A=$HA B=$HB A-luns=$(hp_luns "$HA")B-luns=$(hp_luns "$HB")"
if [ -n "$HA" ] && [ -n "$HB" ]; then
	r=ok
	# (the host starts targetcli first: up to a minute or two of a slow VM)
	hp_wait "$HA" "0 3 " 300 || r=timeout
	[ $r = ok ] && { hp_wait "$HB" "0 3 5 6 7 " 120 || r=timeout; }
	n=0
	while [ -z "$(ls /sys/bus/scsi/devices/$HA:0:1:3/block 2>/dev/null)" ] && [ $n -lt 120 ]; do
		sleep 1
		n=$((n + 1))
	done
	d=$(ls /sys/bus/scsi/devices/$HA:0:1:3/block 2>/dev/null)
	m=$(dd if=/dev/$d bs=512 count=1 iflag=direct 2>/dev/null | head -c 24)
	echo "L2-HP-ADDED $r A-luns=$(hp_luns "$HA")B-luns=$(hp_luns "$HB")disk=$d data=$m"
	r=ok
	hp_wait "$HA" "0 " 120 || r=timeout
	[ $r = ok ] && { hp_wait "$HB" "0 5 6 7 " 120 || r=timeout; }
	echo "L2-HP-REMOVED $r A-luns=$(hp_luns "$HA")B-luns=$(hp_luns "$HB")"
	hp_wait "$HA" "0 9 10 " 180
	echo "L2-HP-FINAL A=$(hp_luns "$HA")"
fi
