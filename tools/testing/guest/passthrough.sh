# SPDX-License-Identifier: GPL-2.0
# Runs inside the nested (L2) guest: the pass-through (pscsi) LUN 5 of the
# second controller, a scsi_debug disk of the host.  sg_inq shows the host
# device's identity, sg_luns the TPG's LUN mapping (0 and 5), and a read
# of its first MiB goes through.
pt=
for d in /sys/block/sd*; do
	case $(basename "$(readlink -f $d/device)") in
	*:5) pt=${d##*/} ;;
	esac
done
test -n "$pt"
sg_inq /dev/$pt | tee /tmp/inq
grep -q 'Vendor identification: Linux' /tmp/inq
sg_luns /dev/$pt | tee /tmp/luns
grep -q '0000000000000000' /tmp/luns
grep -q '0005000000000000' /tmp/luns
dd if=/dev/$pt of=/dev/null bs=64k count=16
echo "L2-PASSTHROUGH $pt ok"
