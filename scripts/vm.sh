#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# vm.sh - boot the test kernel under QEMU (TCG) with virtme-ng and run one
# command in it; exit with that command's status.
#
# usage: scripts/vm.sh COMMAND [ARGS...]
# env:   KDIR        kernel build tree (default: the cached debug kernel)
#        L2_KDIR     tiny nested-guest kernel tree (passed to the guest)
#        L2_INITRAMFS  base archive of the nested guests' initramfs
#                    (default: scripts/mk-initramfs.sh --base, cached)
#        L2_INITRAMFS_SLIM  the same with busybox alone (--base-slim)
#        QEMU_NEW    the newer QEMU's wrapper (scripts/qemu-new.sh; passed to
#                    the guest, empty when it was not fetched)
#        VM_TIMEOUT  seconds before the VM is killed (default 3600)
#        VM_MEM      guest memory (default 2G)
#        VM_LOG      copy of the console output (default: a temporary file)
#        VM_VERBOSE  1: also show the kernel console (boot messages)
#        VM_QEMU_OPTS  more QEMU options (appended to vng's command line)
#        VM_APPEND   more kernel command line (appended to the guest's)
#
# The host root is shared read-only over 9p, so the guest runs this
# checkout's tcm_virt.ko, the host's targetcli, sg3_utils, fio and QEMU.
# KVM is not used: /dev/kvm on these machines cannot run an ordinary guest.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
KDIR=${KDIR:-$("$top/scripts/kernel.sh" --path-only debug)}
L2_KDIR=${L2_KDIR:-$("$top/scripts/kernel.sh" --path-only l2)}
[ -f "$KDIR/arch/x86/boot/bzImage" ] || { echo "vm.sh: no kernel in $KDIR: run 'make kernel'" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: vm.sh COMMAND [ARGS...]" >&2; exit 2; }
# The nested guests' initramfs without its guest script, built here at
# native speed (once, cached) rather than in the VM under emulation.
L2_INITRAMFS=${L2_INITRAMFS:-$("$top/scripts/mk-initramfs.sh" --base)} ||
	{ echo "vm.sh: building the L2 initramfs failed" >&2; exit 1; }
L2_INITRAMFS_SLIM=${L2_INITRAMFS_SLIM:-$("$top/scripts/mk-initramfs.sh" --base-slim)} ||
	{ echo "vm.sh: building the slim L2 initramfs failed" >&2; exit 1; }

QEMU_NEW=${QEMU_NEW:-$("$top/scripts/qemu-new.sh" --path-only 2>/dev/null)}
[ -x "$QEMU_NEW" ] || QEMU_NEW=
cmd=$(printf '%q ' env TOP="$top" KDIR="$KDIR" L2_KDIR="$L2_KDIR" L2_INITRAMFS="$L2_INITRAMFS" \
	L2_INITRAMFS_SLIM="$L2_INITRAMFS_SLIM" QEMU_NEW="$QEMU_NEW" \
	TEST_VERBOSE="${TEST_VERBOSE:-0}" "$@")
[ "${VM_VERBOSE:-0}" = 1 ] || unset VM_VERBOSE
log=${VM_LOG:-$(mktemp /tmp/tcm_virt-vm.XXXXXX.log)}
# kasan_multi_shot: report every KASAN error, not only the first one, so an
# unrelated early report cannot hide a later one.  log_buf_len: a suite's
# kernel log fits in the ring buffer (each test reads its part of it).
# mitigations=off: no retpolines and return thunks; the test VM runs no
# untrusted code, and under emulation every indirect branch through a
# thunk costs a lookup of QEMU's.
# watchdog_thresh=30: a soft lockup is reported after 60 s of a CPU not
# scheduling, not 20 s: emulation runs instrumented kernel loops ~50 times
# slower than a host does.
# rootflags: vng's own 9p root options plus cache=loose.  vng mounts the
# host root without a cache, and every stat, open and read then crosses to
# the host's QEMU: targetcli took 28 s to start, 6 s with the cache.  The
# root is read-only and the host does not change the files a run uses
# while it runs, so the cache cannot go stale.  (The last rootflags= wins.)
# vng's output must be piped, not redirected: QEMU reopens /proc/self/fd/1.
# The VM runs in a session of its own: `timeout --foreground` kills only
# vng, not the QEMU it started, so on a timeout the whole session (QEMU
# included) is killed too; a wedged VM never outlives VM_TIMEOUT.
rootflags=rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose
# virtme-ng gives each of its six script I/O ports (virtme.stdin, .stdout,
# ...) a virtio-serial-pci device of its own, each with room for 31 ports:
# 64 virtqueues each, 384 ioeventfds in all, which QEMU's main loop polled
# at every wake-up (under TCG a queue notification is a write the vCPU
# thread turns into an eventfd signal), and the main thread kept one host
# CPU busy through the whole run.  Room for two ports per device (port 0 is
# kept for a console, virtme-ng's port is 1: 6 queues) and notifications
# handled in the vCPU thread (no ioeventfd) leave the main loop 3 eventfds;
# the VM boots in 200 s instead of 307 s (Documentation/testing.rst).
qemu_opts="-global virtio-serial-pci.max_ports=2 -global virtio-serial-pci.ioeventfd=off ${VM_QEMU_OPTS:-}"
pgid_file=$(mktemp /tmp/tcm_virt-vm-pgid.XXXXXX)
trap 'rm -f "$pgid_file"' EXIT
(
	setsid --wait bash -c 'echo $$ > "$0"; exec "$@"' "$pgid_file" \
		timeout --foreground -k 10 "${VM_TIMEOUT:-3600}" \
		vng --run "$KDIR" --disable-kvm ${VM_VERBOSE:+--verbose} --cpus 2 --memory "${VM_MEM:-2G}" \
		--append "kasan_multi_shot no5lvl mitigations=off log_buf_len=16M watchdog_thresh=30 $rootflags ${VM_APPEND:-}" --cwd "$top" \
		--qemu-opts="$qemu_opts" --exec "$cmd" < /dev/null 2>&1
	rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		pg=$(cat "$pgid_file")
		[ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null
	fi
	exit "$rc"
) | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "vm.sh: VM killed after ${VM_TIMEOUT:-3600} s" >&2
exit "$rc"
