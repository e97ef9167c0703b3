#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# vm-costs.sh - runs inside the test VM: what the suite's time is made of on
# this machine.  Prints the boot time, the cost of a fork and of a fork and
# exec, a kmemleak scan, and one nested (L2) boot with initcall_debug whose
# console lines carry the milliseconds since its QEMU started (the test
# VM's clock; the L2 kernel's own clock is jiffies-based and runs slow),
# showing the initcalls that took over a second.  The figures of
# Documentation/testing.rst and README.md about process and scan costs and
# the nested boot come from it.  It turns kmemleak off for the rest of the
# boot (kmemleak cannot be turned on again): run it alone, not before the
# suite.
#
# usage (host): scripts/vm.sh scripts/vm-costs.sh
set -u
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
read -r up _ < /proc/uptime
echo "boot: userspace command at $up s of uptime"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
ms() { echo $(((${EPOCHREALTIME/./} - ${1/./}) / 1000)); }
per() { # NAME N COMMAND...: the mean of N runs of COMMAND
	local name=$1 n=$2 s i
	shift 2
	s=$EPOCHREALTIME
	for ((i = 0; i < n; i++)); do "$@"; done > /dev/null 2>&1
	echo "$name: $(($(ms "$s") / n)) ms"
}
costs() {
	per "fork of bash" 20 eval '( : )'
	per "fork and exec of /bin/true" 20 /bin/true
}
costs
s=$EPOCHREALTIME
echo scan > /sys/kernel/debug/kmemleak
echo "kmemleak scan: $(ms "$s") ms ($(grep MemTotal /proc/meminfo))"
echo "kmemleak off (for good, in this boot):"
echo off > /sys/kernel/debug/kmemleak
costs
echo 'echo hello' > /tmp/costs-guest.sh
L2_SLIM=1 "$top/scripts/mk-initramfs.sh" /tmp/costs-initrd.cpio /tmp/costs-guest.sh || exit 1
# the nested guests' firmware and accelerator, as the tests have them
# shellcheck source=../tools/testing/lib.sh
. "$top/tools/testing/lib.sh"
echo "L2 boot on $L2_ACCEL (ms since its QEMU started, then the line):"
s=$EPOCHREALTIME
# shellcheck disable=SC2086 # L2_FIRMWARE: an option and its value
qemu-system-x86_64 -accel "$L2_ACCEL" -machine pc -m 256 -smp 1 -nodefaults -no-user-config \
	-display none -serial stdio -no-reboot $L2_FIRMWARE -kernel "$L2_KDIR/arch/x86/boot/bzImage" \
	-initrd /tmp/costs-initrd.cpio \
	-append "console=ttyS0 panic=-1 rdinit=/init loglevel=8 no_timer_check pty.legacy_count=0 initcall_debug" \
	< /dev/null 2>&1 | while IFS= read -r l; do
	case $l in
	*"initcall "*" returned "*" after "[0-9][0-9][0-9][0-9][0-9][0-9][0-9]*" usecs"* | \
		*"Linux version"* | *"Run /init"* | "L2"* | "hello"* | *"reboot:"*)
		echo "  $(ms "$s") $l" ;;
	esac
done
