#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# prepare-distro-kdir.sh - prepare a kernel build tree that tcm_virt can be
# built against for a distribution kernel built with CONFIG_RUST=y, whose
# headers package lacks the Rust build outputs (rust/*.rmeta,
# libmacros.so) an out-of-tree Rust module needs.
#
# usage: scripts/prepare-distro-kdir.sh [options] OUTDIR
#   --release REL   the kernel release to build for (default: uname -r)
#   --config FILE   its configuration (default: /boot/config-REL)
#   --source TAR    its source (default: /usr/src/linux-source-X.Y.tar.xz,
#                   Debian's linux-source-X.Y package)
#   --symvers FILE  its Module.symvers (default: the headers package's,
#                   /lib/modules/REL/build/Module.symvers)
#   --force         go on although the compilers differ from the kernel's
#
# Then: make KDIR=OUTDIR/build && make install KDIR=OUTDIR/build.
#
# The tree must be prepared with the compilers the distribution built the
# kernel with (the configuration names them: CONFIG_CC_VERSION_TEXT,
# CONFIG_RUSTC_VERSION_TEXT, CONFIG_BINDGEN_VERSION_TEXT): the hashes in the
# Rust symbols a module imports depend on the exact rustc, and the running
# kernel refuses a module whose symbols disagree.  This script checks them
# and stops if they differ.  Documentation/admin-guide.rst, "Building for a
# distribution kernel", says what it does not do (module signing).
set -euo pipefail

rel=$(uname -r) config= source= symvers= force=0
while [ $# -gt 1 ]; do
	case $1 in
	--release) rel=$2; shift 2 ;;
	--config) config=$2; shift 2 ;;
	--source) source=$2; shift 2 ;;
	--symvers) symvers=$2; shift 2 ;;
	--force) force=1; shift ;;
	*) break ;;
	esac
done
[ $# = 1 ] || { sed -n '9,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
out=$(realpath -m "$1")
die() { echo "prepare-distro-kdir: $*" >&2; exit 1; }

config=${config:-/boot/config-$rel}
symvers=${symvers:-/lib/modules/$rel/build/Module.symvers}
[ -f "$config" ] || die "no configuration $config (--config)"
grep -q '^CONFIG_RUST=y' "$config" || die "$config: the kernel was built without CONFIG_RUST: it cannot load a Rust module"
[ -f "$symvers" ] || die "no $symvers: install the kernel's headers package (Debian: linux-headers-$rel) or pass --symvers"
cfg() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$config"; }
if [ -z "$source" ]; then
	xy=$(echo "$rel" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
	source=/usr/src/linux-source-$xy.tar.xz
fi
[ -f "$source" ] || die "no kernel source $source (Debian: apt install linux-source-${xy:-X.Y}; or --source)"

# The compilers.  C: gcc or clang, as the configuration says.
cc_text=$(cfg CONFIG_CC_VERSION_TEXT)
rustc_text=$(cfg CONFIG_RUSTC_VERSION_TEXT)
bindgen_text=$(cfg CONFIG_BINDGEN_VERSION_TEXT)
make_args=(KERNELRELEASE="$rel")
if grep -q '^CONFIG_CC_IS_CLANG=y' "$config"; then
	ver=$(echo "$cc_text" | sed -n 's/.*clang version \([0-9]*\)\..*/\1/p')
	if command -v "clang-$ver" > /dev/null; then make_args+=(LLVM="-$ver"); else make_args+=(LLVM=1); fi
	cc=$(command -v "clang-$ver" || command -v clang || true)
else
	ver=$(echo "$cc_text" | sed -n 's/^gcc[^0-9]*\([0-9]*\)\..*/\1/p')
	cc=$(command -v "gcc-$ver" || true)
	[ -n "$cc" ] && make_args+=(CC="$cc" HOSTCC="$cc")
fi
have_cc=$([ -n "$cc" ] && "$cc" --version | head -1 || echo "none")
have_rustc=$(rustc --version 2>/dev/null || echo "none")
have_bindgen=$(bindgen --version 2>/dev/null || echo "none")
echo "kernel $rel, configuration $config"
printf '  %-8s kernel: %s\n  %-8s here:   %s\n' C "$cc_text" "" "$have_cc" \
	rustc "$rustc_text" "" "$have_rustc" bindgen "$bindgen_text" "" "$have_bindgen"
bad=
[ "$have_cc" = "$cc_text" ] || bad="$bad C compiler,"
[ "$have_rustc" = "$rustc_text" ] || bad="$bad rustc,"
# bindgen's output is checked by the build (types, layouts); its version
# does not enter a symbol hash.
[ "${have_bindgen%% *}" = "${bindgen_text%% *}" ] || bad="$bad bindgen,"
if [ -n "$bad" ]; then
	msg="the compilers differ from the kernel's:${bad%,}"
	[ "$have_rustc" = "$rustc_text" ] || msg="$msg (a module built with another rustc is refused by the running kernel)"
	[ $force = 1 ] || die "$msg; install the distribution's own (Debian: the rustc, bindgen and gcc packages of the kernel's suite), or --force"
	echo "prepare-distro-kdir: warning: $msg" >&2
fi

mkdir -p "$out/build"
if [ ! -f "$out/src/Makefile" ]; then
	echo "extracting $source into $out/src"
	mkdir -p "$out/src"
	tar -xaf "$source" -C "$out/src" --strip-components=1
fi
cp "$config" "$out/build/.config"
# The distribution's symbol versions: modpost checks the module's imports
# against them.
cp "$symvers" "$out/build/Module.symvers"
echo "preparing $out/build (modules_prepare, then the Rust crates)"
make -C "$out/src" O="$out/build" "${make_args[@]}" olddefconfig > /dev/null
make -C "$out/src" O="$out/build" "${make_args[@]}" -j"$(nproc)" modules_prepare
make -C "$out/src" O="$out/build" "${make_args[@]}" -j"$(nproc)" rust/
cp "$symvers" "$out/build/Module.symvers"
got=$(cat "$out/build/include/config/kernel.release")
[ "$got" = "$rel" ] || die "the tree's release is '$got', not '$rel'"
echo
cc_arg=
grep -q '^CONFIG_CC_IS_CLANG=y' "$config" || cc_arg=" CC=$cc"
echo "ready: make KDIR=$out/build$cc_arg && make install KDIR=$out/build$cc_arg"
echo "(Secure Boot: sign tcm_virt.ko with a key enrolled in the MOK list, see the admin guide)"
