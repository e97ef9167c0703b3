# SPDX-License-Identifier: GPL-2.0
# The second part of guest/megasas.sh, after guest/disk-roundtrip.sh ran
# on the adapter's disk $M: the two initiators of one TPG read each
# other's writes, the guest's own reset of the adapter's host, its online
# controller reset after an I/O timeout, LUN hotplug through the MFI event
# path.
set +e
echo "L2-MR-STEP roundtrip fw-status=$(fws)"
# md5 of 256 KiB of disk $1 at 64 KiB block $2 (direct: not the page cache)
rd() { dd if=/dev/$1 bs=64k skip=$2 count=4 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
dd if=/dev/urandom of=/tmp/pat1 bs=64k count=4 2>/dev/null
dd if=/tmp/pat1 of=/dev/$M bs=64k seek=48 oflag=direct 2>/dev/null
dd if=/dev/urandom of=/tmp/pat2 bs=64k count=4 2>/dev/null
dd if=/tmp/pat2 of=/dev/$V bs=64k seek=32 oflag=direct 2>/dev/null
p1=$(md5sum < /tmp/pat1 | cut -d' ' -f1) p2=$(md5sum < /tmp/pat2 | cut -d' ' -f1)
echo "L2-MR-CROSS adapter-wrote=$p1 virtio-read=$(rd "$V" 48) virtio-wrote=$p2 adapter-read=$(rd "$M" 32)"
echo "L2-MR-STEP cross fw-status=$(fws)"
# Direct I/O of 128 KiB (the driver's largest request) from a user buffer:
# 32 page segments, an SGL of 32 IEEE entries that goes on past the 8
# frames the driver posts (the adapter once answered such frames INVALID
# PARAMETER)
dd if=/dev/urandom of=/tmp/big bs=128k count=8 2>/dev/null
w=0 r=0
dd if=/tmp/big of=/dev/$M bs=128k seek=24 oflag=direct 2>/dev/null || w=$?
dd if=/dev/$M of=/tmp/big2 bs=128k skip=24 count=8 iflag=direct 2>/dev/null || r=$?
c=differ
cmp -s /tmp/big /tmp/big2 && c=equal
echo "L2-MR-BIG write=$w read=$r data=$c fw-status=$(fws)"
# the guest's own error handling: a host reset of the adapter's host
# (megaraid_sas's eh_host_reset_handler), then I/O verified
rc=0
sg_reset -H "/dev/$M" > /dev/null 2>&1 || rc=$?
echo "L2-MR-RESET rc=$rc after=$(rd "$M" 32)"
echo "L2-MR-STEP reset fw-status=$(fws)"
# The driver's online controller reset (OCR) after an I/O timeout: LD 1 is
# LUN 1 of the TPG, iblock on the host's scsi_debug disk, which leaves the
# next WRITE(10) unanswered until the host's own timeout (55 s).  With
# megaraid_sas.scmd_timeout=10 and resetwaittime=1 (L2_APPEND; the driver
# restarts a command's timer until twice scmd_timeout has passed) and the
# disk's timeout at 5 s, the error handler starts after 20-25 s; its host
# reset waits 1 s more for the write, then finds it outstanding, resets the
# adapter through host_diag (megasas_adp_reset_gen2, which polls host_diag
# while the adapter waits for the write), INITs it again and reissues the
# write; then the data is read back.
O= w=- c=- secs=-
ocr_from=$(dmesg | wc -l)
if wait_for "$MR:2:1:0" 60; then
	O=$(disk_of "$MR:2:1:0")
	echo 5 > "/sys/block/$O/device/timeout"
	dd if=/dev/urandom of=/tmp/pat3 bs=64k count=1 2>/dev/null
	read -r t0 _ < /proc/uptime
	w=0
	dd if=/tmp/pat3 of="/dev/$O" bs=64k seek=2 oflag=direct 2>/dev/null || w=$?
	read -r t1 _ < /proc/uptime
	secs=$((${t1%.*} - ${t0%.*}))
	c=differ
	[ "$(dd if="/dev/$O" bs=64k skip=2 count=1 iflag=direct 2>/dev/null | md5sum)" = "$(md5sum < /tmp/pat3)" ] && c=equal
fi
# the driver's messages since this step began
n() { dmesg | tail -n +$((ocr_from + 1)) | grep -a -c "$1"; }
echo "L2-MR-OCR disk=$O write=$w secs=$secs data=$c fault=$(n 'FW detected to be in fault') restarted=$(n 'FW restarted successfully') after-ocr=$(n 'waiting_for_outstanding: after issue OCR') done=$(n 'no more pending commands remain after reset handling') killed=$(n 'killing adapter')"
dmesg | tail -n +$((ocr_from + 1)) | grep -av 'RESETGEN2: retry\|RESET_GEN2: retry' | tail -n 30
echo "L2-MR-STEP ocr fw-status=$(fws)"
# hotplug
echo "L2-MR-HP-READY"
r=ok
# (the host starts targetcli first: up to a minute or two of a slow VM)
wait_for "$MR:2:3:0" 300 || r=timeout
d=$(disk_of "$MR:2:3:0")
m=
[ -n "$d" ] && m=$(dd if=/dev/$d bs=512 count=1 iflag=direct 2>/dev/null | head -c 24)
echo "L2-MR-HP-ADDED $r disk=$d data=$m"
n=0
while [ -d "/sys/bus/scsi/devices/$MR:2:3:0" ] && [ $n -lt 300 ]; do
	sleep 1
	n=$((n + 1))
done
r=ok
[ -d "/sys/bus/scsi/devices/$MR:2:3:0" ] && r=timeout
lds=
for d in /sys/bus/scsi/devices/$MR:2:*; do
	[ -d "$d" ] || continue
	t=${d##*/$MR:2:}
	lds="$lds${t%%:*} "
done
echo "L2-MR-HP-REMOVED $r lds=$lds"
echo "L2-MR-STEP hotplug fw-status=$(fws)"
dmesg | grep -a -i megaraid | grep -av 'MFI FW status' | tail -n 30
# frames the adapter answered with an MFI status the driver does not map
# (megasas_complete_cmd's default case logs each at KERN_DEBUG)
echo "L2-MR-FW-STATUS $(dmesg | grep -a -c 'MFI FW status') $(dmesg | grep -a -m1 -o 'MFI FW status.*')"
echo "L2-RESULT: PASS"
