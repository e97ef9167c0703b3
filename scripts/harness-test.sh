#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# harness-test.sh - the test of the build harness itself: the top Makefile
# finds the kernel tree the way a first run on a fresh machine needs it to.
# Runs on the host, after the kernels are built (check.sh's harness phase).
# Prints 'PASS name' / 'FAIL name: why' per check and 'harness: done'.
#
# The defect this guards against: the Makefile computed KDIR when it was
# parsed, before `make deps` had installed the kernel source and clang, so
# on a fresh machine it was empty and every lint failed ('KDIR= is not a
# built kernel tree', '/source/.rustfmt.toml' not found), while a second
# run passed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=$("$top/scripts/kernel.sh" --path-only debug)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass() { echo "PASS harness: $1"; }
fail() { echo "FAIL harness: $1"; }
mkq() { make -C "$top" --no-print-directory -s "$@" 2>&1; }

if [ ! -f "$want/.tcm_virt-done" ]; then
	fail "the default kernel $want is not built"
	# 6. The kernel log filter: a warning is a report; an allocator's report
#    of a failed allocation is one outside a fault injection window and
#    none inside it; the C vhost_scsi lockdep report is dropped.
klog() { printf '%s\n' "$@" | awk -f "$top/scripts/klog-filter.awk" 2>/dev/null; }
# klog_expect NAME WANT LINE...: the filter prints WANT for LINE...
klog_expect() {
	local name=$1 want=$2 got
	shift 2
	got=$(klog "$@")
	[ "$got" = "$want" ] && pass "klog filter: $name" || fail "klog filter: $name gave '$got'"
}
alloc=("mfi: vmalloc error: size 12288" "Call Trace:" " <TASK>" " f+0x1/0x2" " </TASK>")
armed="tcm_virt-test: mark 1 failslab fault injection armed"
klog_expect "a warning" "WARNING: CPU: 0 at x" "a" "WARNING: CPU: 0 at x" "b"
klog_expect "an allocation failure outside injection" "Call Trace:" "${alloc[@]}"
klog_expect "an allocation failure inside injection" "Call Trace:" "$armed" "${alloc[@]}" \
	"tcm_virt-test: mark 2 failslab fault injection disarmed" "${alloc[@]}"
klog_expect "a BUG inside injection" "BUG: kernel NULL pointer" "$armed" "BUG: kernel NULL pointer"
echo "harness: done"
	exit 0
fi

# 1. A first run: at parse time clang-19 is missing (deps has not run yet);
#    a prerequisite then installs it (here: makes the stand-in answer), and
#    the recipe must see the final tree.
mkdir -p "$tmp/bin"
real_clang=$(command -v clang-19)
cat > "$tmp/bin/clang-19" <<EOF
#!/bin/sh
[ -e "$tmp/deps-done" ] || { echo "clang-19: not installed" >&2; exit 127; }
exec "$real_clang" "\$@"
EOF
chmod +x "$tmp/bin/clang-19"
cat > "$tmp/first-run.mk" <<EOF
harness-deps:
	@touch $tmp/deps-done
harness-probe: harness-deps
	@echo "KDIR=\$(KDIR)"
	@echo "SRCTREE=\$(SRCTREE)"
EOF
out=$(env -u KDIR PATH="$tmp/bin:$PATH" make -C "$top" --no-print-directory -s \
	-f Makefile -f "$tmp/first-run.mk" harness-probe 2>&1)
if [ "$(echo "$out" | sed -n 's/^KDIR=//p')" = "$want" ] &&
	[ -f "$(echo "$out" | sed -n 's/^SRCTREE=//p')/.rustfmt.toml" ]; then
	pass "KDIR found after deps, not at parse time"
else
	fail "KDIR found at parse time: got '$out', want KDIR=$want"
fi

# 2. An empty KDIR, from the environment (what check.sh passed down) or
#    the command line, means the default tree.
got=$(env KDIR= make -C "$top" --no-print-directory -s kdir 2>&1)
[ "$got" = "$want" ] && pass "empty KDIR in the environment" ||
	fail "empty KDIR in the environment: got '$got', want '$want'"
got=$(mkq kdir KDIR=)
[ "$got" = "$want" ] && pass "empty KDIR on the command line" ||
	fail "empty KDIR on the command line: got '$got', want '$want'"
# an empty cache variable means the default cache (as an unset one: the
# user may have set TCM_VIRT_CACHE for this run)
want_default=$(env -u TCM_VIRT_CACHE "$top/scripts/kernel.sh" --path-only debug 2>&1)
got=$(env TCM_VIRT_CACHE= "$top/scripts/kernel.sh" --path-only debug 2>&1)
[ "$got" = "$want_default" ] && pass "empty TCM_VIRT_CACHE" ||
	fail "empty TCM_VIRT_CACHE: got '$got', want '$want_default'"

# 3. The lint that needs only the kernel's source tree, with the first
#    run's environment (clippy and stackcheck run the same way in check.sh).
if out=$(env KDIR= make -C "$top" --no-print-directory fmtcheck 2>&1); then
	pass "fmtcheck with an empty KDIR"
else
	fail "fmtcheck with an empty KDIR: $(echo "$out" | tail -3 | tr '\n' ' ')"
fi

# 4. A given KDIR is used as it is and must be a built tree.
got=$(mkq kdir KDIR="$tmp")
[ "$got" = "$tmp" ] && pass "KDIR given on the command line" ||
	fail "KDIR given on the command line: got '$got'"
if out=$(mkq module KDIR="$tmp"); then
	fail "module with KDIR=$tmp (not a kernel tree) succeeded"
elif echo "$out" | grep -q "is not a built kernel tree"; then
	pass "module refuses a KDIR that is not a built tree"
else
	fail "module with a bad KDIR: unexpected '$out'"
fi
# 5. A wedged VM does not outlive VM_TIMEOUT: a stand-in vng starts a
#    process that ignores the end of vng (as QEMU did) and holds the
#    console pipe; vm.sh must end within the timeout plus its grace.
mkdir -p "$tmp/vng-bin" "$tmp/kdir/arch/x86/boot"
touch "$tmp/kdir/arch/x86/boot/bzImage"
cat > "$tmp/vng-bin/vng" <<EOF
#!/bin/bash
sleep 600 &
echo \$! > $tmp/qemu.pid
wait
EOF
chmod +x "$tmp/vng-bin/vng"
t0=$(date +%s)
PATH="$tmp/vng-bin:$PATH" VM_TIMEOUT=2 KDIR="$tmp/kdir" L2_KDIR="$tmp/kdir" L2_INITRAMFS=/dev/null L2_INITRAMFS_SLIM=/dev/null \
	VM_LOG="$tmp/vm.log" timeout 60 "$top/scripts/vm.sh" true > /dev/null 2>&1
rc=$?
took=$(($(date +%s) - t0))
qpid=$(cat "$tmp/qemu.pid" 2>/dev/null)
if [ "$rc" != 124 ] && [ "$rc" != 137 ]; then
	fail "VM_TIMEOUT: vm.sh exit status $rc after $took s, expected 124"
elif [ "$took" -gt 20 ]; then
	fail "VM_TIMEOUT=2: vm.sh ended only after $took s (the VM outlived its timeout)"
elif [ -n "$qpid" ] && [ -e "/proc/$qpid" ] && [ "$(awk '{print $3}' "/proc/$qpid/stat" 2>/dev/null)" != Z ]; then
	kill -KILL "$qpid"
	fail "VM_TIMEOUT: the VM's child process outlived vm.sh"
else
	pass "VM_TIMEOUT kills the whole VM ($took s)"
fi
# 6. The kernel log filter: a warning is a report; an allocator's report
#    of a failed allocation is one outside a fault injection window and
#    none inside it; the C vhost_scsi lockdep report is dropped.
klog() { printf '%s\n' "$@" | awk -f "$top/scripts/klog-filter.awk" 2>/dev/null; }
alloc=("mfi: vmalloc error: size 12288" "Call Trace:" " <TASK>" " f+0x1/0x2" " </TASK>")
got=$(klog "a" "WARNING: CPU: 0 at x" "b")
[ "$got" = "WARNING: CPU: 0 at x" ] && pass "klog filter: a warning" ||
	fail "klog filter: a warning gave '$got'"
got=$(klog "${alloc[@]}")
[ "$got" = "Call Trace:" ] && pass "klog filter: an allocation failure outside injection" ||
	fail "klog filter: an allocation failure outside injection gave '$got'"
got=$(klog "tcm_virt-test: mark 1 failslab fault injection armed" "${alloc[@]}" \
	"tcm_virt-test: mark 2 failslab fault injection disarmed" "${alloc[@]}")
[ "$got" = "Call Trace:" ] && pass "klog filter: an allocation failure inside injection" ||
	fail "klog filter: an allocation failure inside injection gave '$got'"
got=$(klog "tcm_virt-test: mark 1 failslab fault injection armed" "BUG: kernel NULL pointer")
[ "$got" = "BUG: kernel NULL pointer" ] && pass "klog filter: a BUG inside injection" ||
	fail "klog filter: a BUG inside injection gave '$got'"
echo "harness: done"
