#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel.sh - build (once) and print the path of a cached kernel build tree.
#
# usage: scripts/kernel.sh [--path-only] VARIANT
#   VARIANT  debug  the test kernel: base + debug fragments (KASAN, lockdep,
#                   kmemleak, DEBUG_LIST, DEBUG_ATOMIC_SLEEP)
#            bench  base + bench fragment, no sanitizers (make bench)
#            l2     tinyconfig kernel for nested (L2) guests
#   --path-only     print where the tree is (or would be) and do nothing
#
# The debug and bench kernels carry the fixes in scripts/patches/ (applied
# to the extracted source; see Documentation/known-issues.rst).
#
# The tree lives in $TCM_VIRT_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/tcm_virt),
# in a directory named after a hash of the config fragments, the kernel source
# version, the patches (debug, bench), the toolchain versions and this script.  A finished build has a
# .tcm_virt-done stamp; a tree with the stamp is reused as it is.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
path_only=0
if [ "${1:-}" = --path-only ]; then path_only=1; shift; fi
variant=${1:?usage: kernel.sh [--path-only] debug|bench|l2}

CACHE=${TCM_VIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcm_virt}
LLVM_SUFFIX=${LLVM_SUFFIX:--19}
TARBALL=$(ls /usr/src/linux-source-7.3.tar.xz 2>/dev/null || true)
JOBS=${JOBS:-$(nproc)}

case $variant in
debug) frags=(base.config debug.config) ;;
bench) frags=(base.config bench.config) ;;
l2) frags=(l2-tiny.config) ;;
*) echo "kernel.sh: unknown variant '$variant'" >&2; exit 2 ;;
esac

key() {
	{
		for f in "${frags[@]}"; do cat "$top/scripts/kconfig/$f"; done
		cat "$0"
		dpkg-query -W -f='${Version}\n' linux-source-7.3 2>/dev/null || echo nosrc
		if [ "$variant" != l2 ]; then
			rustc --version; bindgen --version 2>/dev/null || true
			cat "$top"/scripts/patches/*.patch 2>/dev/null || true
		fi
		clang$LLVM_SUFFIX --version | head -1
	} | sha256sum | cut -c1-12
}

out=$CACHE/kernel-$variant-$(key)
if [ $path_only = 1 ]; then echo "$out"; exit 0; fi
if [ -f "$out/.tcm_virt-done" ]; then echo "$out"; exit 0; fi

[ -n "$TARBALL" ] || { echo "kernel.sh: /usr/src/linux-source-7.3.tar.xz missing: run 'make deps'" >&2; exit 1; }
src=$CACHE/src/linux-source-7.3
# The source carries exactly the patches of scripts/patches/: another set
# applied before means a fresh extraction.
patches=$(cat "$top"/scripts/patches/*.patch 2>/dev/null | sha256sum | cut -c1-12)
if [ -f "$src/.tcm_virt-patched" ] && [ "$(cat "$src/.tcm_virt-patched")" != "$patches" ]; then
	rm -f "$src/.tcm_virt-extracted"
fi
if [ ! -f "$src/.tcm_virt-extracted" ] || [ "$TARBALL" -nt "$src/.tcm_virt-extracted" ]; then
	echo "kernel.sh: extracting $TARBALL" >&2
	rm -rf "$src"
	mkdir -p "$CACHE/src"
	tar -C "$CACHE/src" -xf "$TARBALL"
	touch "$src/.tcm_virt-extracted"
fi
if [ ! -f "$src/.tcm_virt-patched" ]; then
	for p in "$top"/scripts/patches/*.patch; do
		[ -f "$p" ] || continue
		echo "kernel.sh: applying ${p##*/}" >&2
		patch -s -p1 -d "$src" < "$p" || { echo "kernel.sh: $p does not apply" >&2; exit 1; }
	done
	echo "$patches" > "$src/.tcm_virt-patched"
fi

mkdir -p "$out"
log=$out/build.log
echo "kernel.sh: building $variant kernel in $out (log: $log)" >&2
start=$(date +%s)
cd "$src"
mk() { make LLVM="$LLVM_SUFFIX" O="$out" "$@"; }
{
	if [ "$variant" = l2 ]; then
		mk tinyconfig
		./scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" \
			"$top/scripts/kconfig/l2-tiny.config"
		mk olddefconfig
		mk -j"$JOBS" bzImage
	else
		args=()
		for f in "${frags[@]}"; do args+=(--config "$top/scripts/kconfig/$f"); done
		vng --kconfig "${args[@]}" LLVM="$LLVM_SUFFIX" O="$out"
		# vng appends debug info after the user fragments: drop it again
		./scripts/config --file "$out/.config" \
			--disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable DEBUG_INFO_BTF \
			--enable DEBUG_INFO_NONE
		mk olddefconfig
		mk rustavailable
		# every fragment line must have survived olddefconfig
		for f in "${frags[@]}"; do
			grep -E '^CONFIG_[A-Z0-9_]+=[ym]' "$top/scripts/kconfig/$f" | while read -r l; do
				grep -qx "$l" "$out/.config" || echo "kernel.sh: warning: $l did not stick"
			done
		done
		mk -j"$JOBS"
	fi
} >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "kernel.sh: build failed, see $log" >&2; exit 1; }
grep 'did not stick' "$log" >&2 || true
[ -f "$out/arch/x86/boot/bzImage" ] || { echo "kernel.sh: no bzImage, see $log" >&2; exit 1; }
echo "$(( $(date +%s) - start ))" > "$out/.tcm_virt-build-seconds"
touch "$out/.tcm_virt-done"
echo "kernel.sh: $variant kernel built in $(( $(date +%s) - start )) s" >&2
echo "$out"
