#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Installed like a distribution module (scripts/install.sh, `make
# install`): targetcli loads tcm_virt by itself (rtslib runs `modprobe
# tcm_vhost`), a configuration saved with `targetcli saveconfig` is
# recreated by `targetctl restore` (what target.service runs at boot) with
# the module loaded by that restore alone, and the data written before is
# read back through the restored TPG by the vhost device, the megasas
# adapter and a guest that libvirt starts (a scsi_host hostdev with
# protocol 'vhost': libvirt opens /dev/vhost-scsi and passes it to QEMU),
# which `virsh destroy` then kills with writes in flight.  Then
# --uninstall gives `tcm_vhost` back to C vhost_scsi.
. "$TOP/tools/testing/lib.sh"

kver=$(uname -r)
mods=/lib/modules/$kver
# The VM's module tree is the kernel build's, shared read-only from the
# host: a writable tree of links to it in /lib (a writable overlay here).
if [ -L "$mods" ]; then
	src=$(readlink -f "$mods")
	rm "$mods" && mkdir "$mods" && cp -as "$src"/. "$mods"/ || fail "writable $mods"
fi
tcm_loaded && fail "tcm_virt loaded before the test"
grep -q '^vhost_scsi ' /proc/modules && rmmod vhost_scsi

# A failure half-way must not leave the alias to later tests.
# Nor a libvirt guest or daemon.
trap 'virsh_ destroy l2v > /dev/null 2>&1; libvirt_stop > /dev/null 2>&1
"$TOP/scripts/install.sh" --uninstall > /dev/null 2>&1' EXIT
check "$TOP/scripts/install.sh" "$KO"
check test -f "$mods/updates/tcm_virt.ko"
check grep -q '^alias tcm_vhost tcm_virt$' /etc/modprobe.d/tcm_virt.conf
r=$(modprobe -R tcm_vhost) || fail "modprobe -R tcm_vhost"
[ "$r" = tcm_virt ] || fail "tcm_vhost resolves to '$r', expected tcm_virt"
ok "installed: tcm_vhost resolves to tcm_virt"

# 1. targetcli loads the module itself.
T=$CFG/vhost/$WWPN/tpgt_1
IMG=/tmp/restore.img
rm -f $IMG
out=$(tcli_batch "/backstores/fileio create rdisk $IMG 64M" \
	"/backstores/fileio/rdisk set attribute emulate_tpu=1" \
	"/vhost create $WWPN" \
	"/vhost/$WWPN/tpg1/luns create /backstores/fileio/rdisk" \
	"saveconfig /tmp/restore.json") || fail "targetcli: $out"
echo "$out"
tcm_loaded || fail "targetcli did not load tcm_virt"
grep -q '^vhost_scsi ' /proc/modules && fail "targetcli loaded C vhost_scsi"
ok "targetcli loaded tcm_virt (modprobe tcm_vhost)"
check test -c /dev/vhost-scsi
nexus=$(cat $T/nexus)
case $nexus in naa.*) ;; *) fail "no nexus: '$nexus'" ;; esac
check python3 -c "
import json
c = json.load(open('/tmp/restore.json'))
t = [t for t in c['targets'] if t['wwn'] == '$WWPN'][0]
assert t['fabric'] == 'vhost', t['fabric']
tpg = t['tpgs'][0]
assert len(tpg['luns']) == 1, tpg
print('saved: fabric', t['fabric'], 'TPG', tpg['tag'], 'luns', len(tpg['luns']))"

# Data through both front ends before the save.
check $VSDRV --wwpn $WWPN run <(printf 'lun 1 0\nwrite10 0 64 7\nread10 0 64 7\n')
MFI="${MFI_BIN:-$TOP/tools/target/release/mfi} --wwpn $WWPN"
check $MFI write 0 200 16 8
img=$(cat $CFG/core/fileio_0/rdisk/udev_path)
ls -l "$img" || fail "no backing file '$img'"
before=$(dd if="$img" bs=512 count=64 2> /dev/null | md5sum | cut -d' ' -f1)
echo "the first 64 blocks of $img: md5 $before"
od -A d -t x1 "$img" | head -3
ok "written through the vhost device and the megasas adapter"

# 2. Cleared and unloaded, then restored as at boot.
out=$(tcli_batch "clearconfig confirm=True") || fail "clearconfig: $out"
check test ! -d $CFG/vhost/$WWPN
rmdir $CFG/vhost 2>/dev/null
check rmmod tcm_virt
tcm_loaded && fail "tcm_virt still loaded"
out=$(targetctl restore /tmp/restore.json 2>&1) || fail "targetctl restore: $out"
tcm_loaded || fail "the restore did not load tcm_virt"
grep -q '^vhost_scsi ' /proc/modules && fail "the restore loaded C vhost_scsi"
# rtslib-fb saves no nexus: the restore makes one, with a new initiator
# name, as it does for C vhost_scsi (the admin guide says what follows).
n2=$(cat $T/nexus)
case $n2 in naa.*) echo "nexus before the save $nexus, after the restore $n2" ;; *) fail "no nexus after the restore: '$n2'" ;; esac
lun=$(ls -d $T/lun/lun_0/* | grep -v -e alua -e statistics | head -1)
check test "$(readlink -f "$lun")" = "$(readlink -f $CFG/core/fileio_0/rdisk)"
check test "$(cat $CFG/core/fileio_0/rdisk/attrib/emulate_tpu)" = 1
ok "targetctl restore: tcm_virt loaded by the restore, the same TPG, LUN and attribute, a nexus"

# 3. The data, through the restored TPG: both front ends.
check $VSDRV --wwpn $WWPN run <(printf 'lun 1 0\nread10 0 64 7\n')
check $MFI read 0 200 16 8
ok "vsdrv and the megasas adapter read back what was written before the save"

# 4. A guest started by libvirt, the way operators start one on
# vhost-scsi: a <hostdev type='scsi_host'> with protocol 'vhost', for which
# libvirt opens /dev/vhost-scsi and gives QEMU the descriptor.  The guest
# reads the data back, then writes without pause (past the first 64
# blocks) until `virsh destroy` kills its QEMU with writes in flight.
cat > /tmp/restore-guest.sh <<'G'
test -b /dev/sda
echo "L2-MD5 $(dd if=/dev/sda bs=512 count=64 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "L2-LOOP"
while dd if=/dev/urandom of=/dev/sda bs=64k seek=100 count=16 conv=fsync 2>/dev/null; do :; done
G
check libvirt_start
L2_SLIM=1 libvirt_guest l2v $WWPN /tmp/restore-guest.sh || fail "virsh create"
pid=$(pgrep -f 'qemu-system-x86_64 .*guest=l2v') || fail "no QEMU of the domain"
l2_wait /tmp/l2v.log L2-LOOP "$pid" 600 || fail "the libvirt guest did not reach its writes"
sed 's/^/  L2| /' /tmp/l2v.log
got=$(grep -a '^L2-MD5 ' /tmp/l2v.log | tr -d '\r' | cut -d' ' -f2)
[ "$got" = "$before" ] || fail "the guest read ${got:-nothing}, the disk held $before before the save"
ok "a guest started by libvirt read back what was written before the save"
qlog=/var/log/libvirt/qemu/l2v.log
grep -o -- '-device [^ ]*vhost-scsi-pci[^ ]*' $qlog || fail "no vhost-scsi-pci in $qlog"
# libvirt 11 writes -device as JSON: "vhostfd":"N"
grep -qE -- 'vhost-scsi-pci.*"?vhostfd"?[=:]"?[0-9]' $qlog || fail "libvirt gave QEMU no vhostfd"
ls -l /proc/$pid/fd | grep -q '/dev/vhost-scsi$' || fail "QEMU holds no /dev/vhost-scsi descriptor"
ok "libvirt opened /dev/vhost-scsi and passed it to QEMU (vhostfd)"
D=/sys/kernel/debug/tcm_virt
st=$(ls -d $D/vhost-*) && [ "$(echo "$st" | wc -l)" = 1 ] || fail "one vhost device expected in $D: '$st'"
s1=$(sed -n 's/^total: submitted=\([0-9]*\) .*/\1/p' $st)
nap 3
s2=$(sed -n 's/^total: submitted=\([0-9]*\) .*/\1/p' $st)
grep '^total' $st
[ "$s2" -gt "$s1" ] || fail "the guest's writes are not going on ($s1, then $s2 submitted)"
ok "the guest writes: $s1, then $s2 commands submitted"
check virsh_ destroy l2v
for _ in $(seq "$(scaled 30)"); do kill -0 "$pid" 2>/dev/null || break; nap 1; done
kill -0 "$pid" 2>/dev/null && fail "QEMU still runs after virsh destroy"
check test ! -e "$st"
check $VSDRV --wwpn $WWPN run <(printf 'lun 1 0\nread10 0 64 7\n')
ok "virsh destroy with writes in flight: the device went, the TPG serves the next initiator"
libvirt_stop

# 5. Uninstalled: tcm_vhost is C vhost_scsi's again.
# (configfs directly: a third targetcli costs 20 s of a slow VM)
fabric_teardown vhost
backstores_teardown
rmdir $CFG/vhost 2>/dev/null
check rmmod tcm_virt
check "$TOP/scripts/install.sh" --uninstall
check test ! -e "$mods/updates/tcm_virt.ko"
check test ! -e /etc/modprobe.d/tcm_virt.conf
r=$(modprobe -R tcm_vhost) || fail "modprobe -R tcm_vhost"
[ "$r" = vhost_scsi ] || fail "after uninstall tcm_vhost resolves to '$r'"
ok "uninstalled: tcm_vhost resolves to vhost_scsi"
rm -f $IMG /tmp/restore.json
