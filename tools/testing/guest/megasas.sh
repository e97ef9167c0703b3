# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest of 62-megasas_guest, which has two
# controllers on the same TPG: a MegaRAID SAS 2108 (QEMU's vfio-user-pci,
# served by tools/vfu-megasas on /dev/tcm-megasas), driven by the guest's
# own megaraid_sas, and a vhost-scsi-pci one (virtio_scsi).  LUN 0 of the
# TPG is LD 0 of the adapter (SCSI channel 2, target 0) and target 1 LUN 0
# of the virtio controller.  The host acts on the guest's lines:
#   L2-MR-HP-READY        the host links LUN 3 with targetcli
#   L2-MR-HP-ADDED ...    LD 3 appeared through the MFI event path; the
#                         host unlinks it
#   L2-MR-HP-REMOVED ...  it went away
set +e
MR= VS=
for h in /sys/class/scsi_host/host*; do
	case $(cat "$h/proc_name") in
	megaraid_sas) MR=${h##*host} ;;
	virtio_scsi) VS=${h##*host} ;;
	esac
done
# disk_of H:C:T:L: the block device of a SCSI device, if any
disk_of() { ls "/sys/bus/scsi/devices/$1/block" 2>/dev/null; }
# wait_for H:C:T:L SECS: until the device has a block device
wait_for() {
	n=0
	while [ -z "$(disk_of "$1")" ] && [ $n -lt "$2" ]; do
		sleep 1
		n=$((n + 1))
	done
	[ -n "$(disk_of "$1")" ]
}
wait_for "$MR:2:0:0" 120
wait_for "$VS:0:1:0" 120
M=$(disk_of "$MR:2:0:0")
V=$(disk_of "$VS:0:1:0")
P=$(basename "$(readlink -f "/sys/class/scsi_host/host$MR/device/..")")
echo "L2-MR-PROBE host=$MR disk=$M pci=$P id=$(cat /sys/bus/pci/devices/$P/vendor 2>/dev/null):$(cat /sys/bus/pci/devices/$P/device 2>/dev/null) virtio-host=$VS disk=$V"
[ -n "$M" ] && [ -n "$V" ] || { echo "L2-RESULT: FAIL no disks"; exit 1; }
echo "L2-MR-DRIVER init=$(dmesg | grep -a -c 'megaraid_sas .*INIT adapter done') $(dmesg | grep -a -m1 -o 'current msix.*' | tr '\t' ' ') max_sectors_kb=$(cat /sys/block/$M/queue/max_sectors_kb) max_segments=$(cat /sys/block/$M/queue/max_segments)"
echo "L2-MR-IRQ $(grep -c megasas /proc/interrupts) $(grep megasas /proc/interrupts | tr -s ' ' | cut -d' ' -f3-)"
# fws: the frames so far that megaraid_sas logged with an MFI status it
# does not map (its "MFI FW status" lines, KERN_DEBUG)
fws() { dmesg | grep -a -c 'MFI FW status'; }
echo "L2-MR-STEP probe fw-status=$(fws)"
DISKS=$M
