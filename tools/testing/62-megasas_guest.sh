#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The megasas front end driven by a real guest: tools/vfu-megasas presents
# /dev/tcm-megasas to the newer QEMU (QEMU_NEW, 11.x: vfio-user-pci) as a
# MegaRAID SAS 2108 PCI function (1000:0079), guest RAM in a shared memfd
# that QEMU hands to the server (DMA_MAP with a file descriptor), which
# makes it the adapter's memory table.  The nested guest's own
# megaraid_sas probes it (INIT, CTRL_GET_INFO, LD lists, the event wait)
# and gets LUN 0 of the TPG as its LD 0; the same TPG is also a
# vhost-scsi-pci controller of the same guest.  In the guest
# (guest/megasas.sh, guest/disk-roundtrip.sh, guest/megasas-2.sh):
# mkfs.ext4, a file written, e2fsck, read back on the adapter's disk; the
# host finds the guest's raw pattern in the backing file; what one
# controller writes the other reads; the guest's own host reset of the
# adapter (sg_reset -H, megaraid_sas's eh_host_reset_handler), I/O read
# back after it; its online controller reset (OCR) after an I/O timeout:
# a write to LD 1 (iblock on a scsi_debug disk here, which leaves it
# unanswered for 55 s) times out in the guest, whose error handler resets
# the adapter through host_diag while the write is still in flight (the
# reset lasts longer than QEMU waits for a vfio-user reply, which
# vfu-megasas answers meanwhile), INITs it again and reissues the write,
# data read back; a LUN linked with targetcli while the guest runs appears
# as LD 3 through the MFI event path (its data read) and vanishes when it
# is unlinked.  Then the server is stopped, the adapter released, rmmod.
. "$TOP/tools/testing/lib.sh"

[ -n "${QEMU_NEW:-}" ] && [ -x "$QEMU_NEW" ] ||
	fail "no newer QEMU (QEMU_NEW='${QEMU_NEW:-}'): 'make deps' fetches it (scripts/qemu-new.sh)"
VFU=${VFU_BIN:-$TOP/tools/target/release/vfu-megasas}
[ -x "$VFU" ] || fail "no $VFU: 'make tools'"
L2_QEMU=$QEMU_NEW
check tcm_load
rm -f /tmp/mr0.img /tmp/mr3.img
# The set-up through configfs (a targetcli start costs a minute of a slow
# VM); the LUN linked while the guest runs is targetcli's.
check fileio_lun $WWPN mr0 /tmp/mr0.img 32
d3=$CFG/core/fileio_0/mr3
mkdir -p $d3 && echo "fd_dev_name=/tmp/mr3.img,fd_dev_size=$((8 * 1048576)),fd_buffered_io=1" > $d3/control &&
	echo 1 > $d3/enable || fail "fileio backstore mr3"
# LUN 1 (the guest's LD 1): iblock on a scsi_debug disk whose next
# WRITE(10) scsi_debug leaves unanswered; this host's SCSI error handling
# ends it after the disk's 55 s timeout (abort, then the retry succeeds).
# Nothing but the guest's OCR step writes to it.
sdebug_iblock mrsd dev_size_mb=16 || fail "scsi_debug iblock LUN"
mkdir -p $CFG/vhost/$WWPN/tpgt_1/lun/lun_1 && ln -s "$IB" $CFG/vhost/$WWPN/tpgt_1/lun/lun_1/mrsd ||
	fail "LUN 1"
echo 55 > /sys/block/$SD_DISK/device/timeout || fail "timeout of $SD_DISK"
sdebug_inject $SD_DISK "0 -1 0x2a" || fail "scsi_debug error injection on $SD_DISK"
ok "LUN 1: iblock on scsi_debug $SD_DISK, whose next WRITE(10) is left unanswered (55 s timeout)"
HP_MARK=tcm_virt-megasas-ld3-ok
printf '%s' "$HP_MARK" | dd of=/tmp/mr3.img conv=notrunc status=none || fail "mr3 marker"

TR=/sys/kernel/tracing
[ -d $TR/events ] || mount -t tracefs none $TR || fail "no tracefs"
echo > $TR/trace
echo 1 > $TR/events/tcm_virt/tcm_virt_cmd_refused/enable || fail "trace event cmd_refused"
echo 1 > $TR/tracing_on
rm -f /tmp/mr.sock /tmp/vfu.log
$VFU --socket /tmp/mr.sock --wwpn $WWPN --tpgt 1 > /tmp/vfu.log 2>&1 &
vfu=$!
for _ in $(seq "$(scaled 30)"); do
	[ -S /tmp/mr.sock ] && break
	kill -0 $vfu 2> /dev/null || break
	nap 1
done
[ -S /tmp/mr.sock ] || fail "vfu-megasas did not listen: $(cat /tmp/vfu.log)"
ok "vfu-megasas listens on /tmp/mr.sock for $WWPN tpgt 1"

{
	cat "$TOP/tools/testing/guest/megasas.sh"
	echo 'set -e'
	cat "$TOP/tools/testing/guest/disk-roundtrip.sh"
	cat "$TOP/tools/testing/guest/megasas-2.sh"
} > /tmp/guest.sh

# Hotplug: the host links LUN 3 when the guest is ready, unlinks it once
# the guest has seen it (one targetcli reading a pipe).
rm -f /tmp/l2.log /tmp/mr-tcli.out /tmp/mr-tcli.fifo
(
	end=$((SECONDS + 900 * TIME_SCALE))
	l2_at L2-MR-HP-READY $end || exit 1
	mkfifo /tmp/mr-tcli.fifo || exit 1
	targetcli < /tmp/mr-tcli.fifo > /tmp/mr-tcli.out 2>&1 &
	exec {tc}> /tmp/mr-tcli.fifo
	echo "/vhost/$WWPN/tpg1/luns create /backstores/fileio/mr3 lun=3" >&$tc
	l2_at L2-MR-HP-ADDED $end || exit 1
	echo "/vhost/$WWPN/tpg1/luns delete 3" >&$tc
	exec {tc}>&-
	wait
) &
host_hp=$!
L2_TIMEOUT=600 L2_APPEND="megaraid_sas.scmd_timeout=10 megaraid_sas.resetwaittime=1" nested_run $WWPN /tmp/guest.sh \
	-object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem \
	-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"/tmp/mr.sock"}}'
rc=$?
kill $host_hp 2> /dev/null
wait $host_hp
grep -v 'DMA' /tmp/vfu.log
echo "adapter statistics:"
echo "refusals: $(grep -c tcm_virt_cmd_refused $TR/trace), other than bad_target:"
grep tcm_virt_cmd_refused $TR/trace | grep -v reason=bad_target | head -n 20
tr -d '\r' < /tmp/l2.log | grep -a '^L2-MR-STEP'
echo 0 > $TR/events/tcm_virt/tcm_virt_cmd_refused/enable
[ $rc = 0 ] || fail "nested_run"
ok "nested_run: the guest passed"

probe=$(l2_line L2-MR-PROBE)
[[ $probe == "L2-MR-PROBE host="[0-9]*" disk=sd"*" id=0x1000:0x0079 virtio-host="[0-9]*" disk=sd"* ]] ||
	fail "guest: '$probe'"
ok "guest: megaraid_sas bound the SAS2108 (1000:0079) of vfio-user-pci, LD 0 is a disk; ${probe#L2-MR-PROBE }"
drv=$(l2_line L2-MR-DRIVER)
[[ $drv == "L2-MR-DRIVER init=1 "* ]] || fail "megaraid_sas: '$drv'"
ok "guest: megaraid_sas INIT adapter done; ${drv#L2-MR-DRIVER init=1 }"
irq=$(l2_line L2-MR-IRQ)
[[ $irq == *PCI-MSIX*megasas0-msix0* ]] || fail "the adapter's interrupt: '$irq'"
ok "guest: its replies come by MSI-X (the eventfd the kernel signals): ${irq#L2-MR-IRQ }"
md=${probe#*host=*disk=}
md=${md%% *}
want=$(tr -d '\r' < /tmp/l2.log | sed -n "s/^L2-PATTERN $md [^ ]* \([0-9a-f]*\).*/\1/p")
got=$(dd if=/tmp/mr0.img bs=64k skip=16 count=4 2> /dev/null | md5sum | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "backing file has '$got', the guest wrote '$want' through the adapter"
ok "guest on the adapter: mkfs.ext4, file written, e2fsck, read back; the backing file holds the guest's raw pattern"
read -r _ aw vr vw ar <<< "$(l2_line L2-MR-CROSS)"
[ "${aw#*=}" = "${vr#*=}" ] && [ "${vw#*=}" = "${ar#*=}" ] && [ -n "${ar#*=}" ] ||
	fail "one TPG, two controllers: '$(l2_line L2-MR-CROSS)'"
ok "one TPG, both front ends: the virtio controller reads what the adapter wrote, and the other way round"
[ "$(l2_line L2-MR-BIG)" = "L2-MR-BIG write=0 read=0 data=equal fw-status=0" ] ||
	fail "128 KiB direct I/O (SGLs past the posted frames): '$(l2_line L2-MR-BIG)'"
ok "guest: 128 KiB direct writes and reads (32-entry SGLs, past the 8 posted frames), data equal"
[ "$(l2_line L2-MR-RESET)" = "L2-MR-RESET rc=0 after=${ar#*=}" ] ||
	fail "guest host reset: '$(l2_line L2-MR-RESET)', expected rc=0 after=${ar#*=}"
ok "guest: sg_reset -H on the adapter's host, data read back after it"
ocr=$(l2_line L2-MR-OCR)
[[ $ocr == "L2-MR-OCR disk=sd"*" write=0 secs="*" data=equal fault=1 restarted=1 after-ocr=1 done=1 killed=0" ]] ||
	fail "the guest's online controller reset: '$ocr'"
ok "guest: a write to LD 1 timed out, the driver's OCR reset the adapter (host_diag) and reissued it, data read back; ${ocr#L2-MR-OCR }"
rs=$(grep -a -m1 -o 'adapter reset (host_diag reset) in [0-9]* ms' /tmp/vfu.log)
ms=${rs#*in }
ms=${ms% ms}
[ -n "$ms" ] && [ "$ms" -gt 15000 ] ||
	fail "vfu-megasas: no host_diag reset of more than 15 s (the driver polls host_diag 10 s after its reset write, QEMU waits 5 s for the reply): '$rs'"
ok "the adapter reset waited for the write ($ms ms) while vfu-megasas kept answering QEMU"
[[ "$(l2_line L2-MR-HP-ADDED)" == "L2-MR-HP-ADDED ok disk=sd"*" data=$HP_MARK" ]] ||
	fail "LUN 3 linked with targetcli: '$(l2_line L2-MR-HP-ADDED)'"
ok "LUN 3 linked with targetcli appeared in the guest as LD 3 (MFI event), its data read"
[ "$(l2_line L2-MR-HP-REMOVED)" = "L2-MR-HP-REMOVED ok lds=0 1 " ] ||
	fail "LUN 3 unlinked: '$(l2_line L2-MR-HP-REMOVED)'"
ok "LUN 3 unlinked with targetcli vanished from the guest"
[ "$(l2_line L2-MR-FW-STATUS)" = "L2-MR-FW-STATUS 0 " ] ||
	fail "frames answered with a status megaraid_sas does not expect: '$(l2_line L2-MR-FW-STATUS)'"
ok "no frame answered with a status the driver does not expect"

# vfu-megasas ends by itself when QEMU disconnects
kill $vfu 2> /dev/null
wait $vfu
vrc=$?
[ $vrc = 0 ] || [ $vrc = 143 ] || fail "vfu-megasas ended rc=$vrc"
fabric_teardown vhost
check test ! -d $CFG/vhost
backstores_teardown
check rmmod tcm_virt
check rmmod_idle scsi_debug
