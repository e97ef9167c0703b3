#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# install.sh - install tcm_virt.ko as the system's `vhost` fabric module, so
# that targetcli/rtslib (which load that fabric as `tcm_vhost`) and
# `targetctl restore` (target.service, at boot) load tcm_virt, not C
# vhost_scsi.
#
# usage: scripts/install.sh [KO]      (default: the checkout's tcm_virt.ko)
#        scripts/install.sh --uninstall
# env:   KVER  the kernel to install for (default: the running one, `uname -r`)
#
# Installs KO as /lib/modules/$KVER/updates/tcm_virt.ko, writes
# /etc/modprobe.d/tcm_virt.conf (`alias tcm_vhost tcm_virt`: a modprobe.d
# alias is looked up before the modules' own, so `modprobe tcm_vhost`
# loads tcm_virt although vhost_scsi declares that alias too) and runs
# depmod.  --uninstall removes both.  KO must be built for KVER (its
# vermagic is checked).  See Documentation/admin-guide.rst, "Installing".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kver=${KVER:-$(uname -r)}
dir=/lib/modules/$kver/updates
conf=/etc/modprobe.d/tcm_virt.conf

if [ "${1:-}" = --uninstall ]; then
	rm -f "$dir/tcm_virt.ko" "$conf"
	rmdir "$dir" 2>/dev/null || true
	depmod -a "$kver"
	echo "install.sh: tcm_virt removed from $kver"
	exit 0
fi

ko=${1:-$top/tcm_virt.ko}
[ -f "$ko" ] || { echo "install.sh: no module at $ko (run 'make module')" >&2; exit 1; }
[ -d "/lib/modules/$kver" ] || { echo "install.sh: no /lib/modules/$kver" >&2; exit 1; }
magic=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
if [ "$magic" != "$kver" ]; then
	echo "install.sh: $ko is built for $magic, not $kver (make module KDIR=<that kernel's build tree>)" >&2
	exit 1
fi
install -D -m 644 "$ko" "$dir/tcm_virt.ko"
mkdir -p "${conf%/*}"
cat > "$conf" <<'EOF'
# Written by tcm_virt's scripts/install.sh (make install); removed by
# `scripts/install.sh --uninstall` (make uninstall).
# targetcli/rtslib load the vhost fabric's module as "tcm_vhost", which C
# vhost_scsi declares as an alias of itself: this alias, looked up first,
# makes it tcm_virt.
alias tcm_vhost tcm_virt
EOF
depmod -a "$kver"
echo "install.sh: $dir/tcm_virt.ko and $conf installed; 'modprobe tcm_vhost' loads $(modprobe -R tcm_vhost 2>/dev/null || echo '?')"
