#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# deps.sh - install everything tcm_virt needs to build and test, idempotently.
#
# Target: a Debian 12 (bookworm) x86_64 machine, run as root (or with sudo).
# Re-running it when everything is present takes a few seconds: each step
# checks first and only then installs.
#
#   apt (bookworm)            clang/lld/llvm 19, libclang-19-dev, kernel build
#                             tools, targetcli-fb, python3-rtslib-fb, sg3-utils,
#                             fio, busybox-static, dbus, bash-builtins
#   apt (bookworm-backports)  qemu-system-x86 10.x, udev (vng needs it),
#                             libvirt-daemon, -driver-qemu, -clients 11.x (a
#                             test starts its own libvirtd in the test VM;
#                             Debian enables the daemon's socket units here)
#   apt (trixie-backports)    linux-source-7.3 (only this suite, pinned low)
#   apt (trixie-backports,    qemu-system-x86 11.x and its trixie library
#        private, unpacked)   closure, never installed (scripts/qemu-new.sh)
#   pip                       virtme-ng (pinned)
#   rustup                    rust-src component
#   cargo                     bindgen-cli (pinned)
set -euo pipefail

BINDGEN_VERSION=${BINDGEN_VERSION:-0.73.2}
VIRTME_NG_VERSION=${VIRTME_NG_VERSION:-1.42}
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

log() { echo "deps: $*"; }

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed'; }

# --- apt sources ------------------------------------------------------------
SRC=/etc/apt/sources.list.d/tcm-virt.sources
if [ ! -f "$SRC" ]; then
	log "adding bookworm-backports and trixie-backports to $SRC"
	$SUDO tee "$SRC" >/dev/null <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	# Backports suites are NotAutomatic (priority 100): nothing is taken from
	# them unless asked for with -t, so trixie never upgrades bookworm's libc.
	rm -f /var/lib/tcm-virt-apt-updated
fi

apt_updated=0
apt_update() {
	if [ $apt_updated = 0 ]; then
		$SUDO apt-get update -qq
		apt_updated=1
	fi
}
apt_install() { # [-t suite] pkgs...
	local suite=()
	if [ "$1" = -t ]; then suite=(-t "$2"); shift 2; fi
	local missing=()
	for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
	[ ${#missing[@]} = 0 ] && return 0
	apt_update
	log "apt-get install ${suite[*]} ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${suite[@]}" "${missing[@]}"
}

apt_install clang-19 lld-19 llvm-19 libclang-19-dev \
	bc flex bison libelf-dev libssl-dev cpio kmod xz-utils make gcc git patch \
	python3 python3-pip busybox-static dbus bash-builtins \
	targetcli-fb python3-rtslib-fb sg3-utils fio e2fsprogs extlinux syslinux-common
apt_install -t bookworm-backports qemu-system-x86 udev \
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
apt_install -t trixie-backports linux-source-7.3

# --- virtme-ng (pip) ----------------------------------------------------------
if ! command -v vng >/dev/null 2>&1 || ! vng --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
	log "pip install virtme-ng==$VIRTME_NG_VERSION"
	python3 -m pip install -q --root-user-action=ignore "virtme-ng==$VIRTME_NG_VERSION"
fi

# --- Rust -----------------------------------------------------------------------
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "rustup component add rust-src"
	rustup component add rust-src
fi
if ! command -v bindgen >/dev/null 2>&1 || ! bindgen --version | grep -q "$BINDGEN_VERSION"; then
	log "cargo install bindgen-cli@$BINDGEN_VERSION"
	cargo install --locked -q bindgen-cli --version "$BINDGEN_VERSION"
fi

# --- QEMU 11.x, unpacked into the cache (scripts/qemu-new.sh) -------------------
# For the tests of what bookworm's QEMU 10.0 lacks (vhost-scsi-pci hotplug=on,
# vfio-user-pci).
"$(dirname "$0")/qemu-new.sh" > /dev/null

log "all dependencies present"
