#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# qemu-new.sh - a QEMU newer than the system's (Debian trixie-backports'
# qemu-system-x86, 11.x: vhost-scsi-pci,hotplug=on and vfio-user-pci, which
# bookworm's 10.0 lacks), run on bookworm without installing anything:
# the package and its trixie library closure are fetched with a private apt
# configuration (trixie is never added to the system's sources, whose libc
# it would replace), unpacked with dpkg -x into the cache, and started
# through the closure's own loader (ld-linux-x86-64.so.2 --library-path),
# with QEMU_MODULE_DIR and -L pointing into the unpacked tree (without
# them 11.x loads the system's 10.0 modules and aborts).
#
# usage: scripts/qemu-new.sh [--path-only]
#   prints the path of a wrapper that runs the unpacked QEMU like
#   qemu-system-x86_64, building it once into the cache (keyed by the
#   package's version); --path-only prints it without building.
#   The system's own QEMU stays the default everywhere else; `make deps`
#   runs this, the tests that need the newer QEMU get the wrapper's path
#   from scripts/vm.sh (QEMU_NEW).
# env:   TCM_VIRT_CACHE  the cache directory (as scripts/kernel.sh)
#        QEMU_NEW_SUITE  the suite to take qemu-system-x86 from
#                        (default trixie-backports)
set -euo pipefail
CACHE=${TCM_VIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcm_virt}
SUITE=${QEMU_NEW_SUITE:-trixie-backports}
apt_dir=$CACHE/qemu-new-apt
log() { echo "qemu-new: $*" >&2; }

# A private apt: trixie and trixie-backports, an empty dpkg status (so the
# closure is computed as for an empty system, libc included).
mkdir -p "$apt_dir"/{lists/partial,archives/partial,etc/preferences.d}
cat > "$apt_dir/etc/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
EOS
: > "$apt_dir/status"
# The suite's packages first (qemu-system-x86's own qemu-system-common,
# -data and -modules are of its version only there).
cat > "$apt_dir/etc/preferences.d/suite.pref" <<EOP
Package: *
Pin: release n=$SUITE
Pin-Priority: 990
EOP
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
	-o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
	-o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Architecture=amd64
	-o APT::Architectures=amd64)
# The lists are refreshed once a week (a newer backport is then fetched);
# --path-only never fetches: it answers from the lists there are.
if [ "${1:-}" != --path-only ] &&
	{ [ ! -f "$apt_dir/updated" ] || [ -n "$(find "$apt_dir/updated" -mtime +7)" ]; }; then
	log "apt-get update (private: trixie, trixie-backports)"
	if apt-get "${apt_opts[@]}" -qq update; then
		touch "$apt_dir/updated"
	elif [ -f "$apt_dir/updated" ]; then
		log "apt-get update failed: going on with the lists of $(date -r "$apt_dir/updated" +%F)"
	else
		exit 1
	fi
fi
ver=$(apt-cache "${apt_opts[@]}" madison qemu-system-x86 2>/dev/null | awk -v s="$SUITE" '$0 ~ s"/" {print $3; exit}')
[ -n "$ver" ] || { log "no qemu-system-x86 in $SUITE (run 'make deps')"; exit 1; }
out=$CACHE/qemu-new-${ver//[^A-Za-z0-9.+~-]/_}
wrapper=$out/qemu-system-x86_64
[ "${1:-}" = --path-only ] && { echo "$wrapper"; exit 0; }
if [ -f "$out/.done" ]; then
	echo "$wrapper"
	exit 0
fi
rm -rf "$out"
mkdir -p "$out/root"
# The closure: every package qemu-system-x86 depends on, recursively, as
# the private apt resolves it (first alternative; no recommends).
pkgs=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances --no-pre-depends "qemu-system-x86=$ver" |
	grep -v '^ ' | grep -v '^<' | sort -u)
pkgs=$(echo "$pkgs" | grep -vx 'qemu-system-x86')
rm -f "$apt_dir"/archives/*.deb
log "fetching qemu-system-x86 $ver and $(echo "$pkgs" | wc -l) packages of its closure"
(
	cd "$apt_dir/archives"
	# shellcheck disable=SC2086 # one word per package
	apt-get "${apt_opts[@]}" -qq download "qemu-system-x86=$ver" $pkgs
)
for deb in "$apt_dir"/archives/*.deb; do
	dpkg -x "$deb" "$out/root"
done
# The wrapper: trixie's loader and libraries, trixie's QEMU modules and
# firmware; everything else (arguments, environment) as given.
cat > "$wrapper" <<EOW
#!/bin/sh
# QEMU $ver from $SUITE, unpacked by scripts/qemu-new.sh
r=$out/root
export QEMU_MODULE_DIR=\$r/usr/lib/x86_64-linux-gnu/qemu
exec \$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \\
	--library-path \$r/usr/lib/x86_64-linux-gnu:\$r/lib/x86_64-linux-gnu \\
	\$r/usr/bin/qemu-system-x86_64 -L \$r/usr/share/qemu -L \$r/usr/share/seabios "\$@"
EOW
chmod +x "$wrapper"
"$wrapper" --version | head -1 >&2
"$wrapper" -device vhost-scsi-pci,help 2>/dev/null | grep -q hotplug ||
	{ log "the unpacked QEMU has no vhost-scsi-pci hotplug property"; exit 1; }
"$wrapper" -device help 2>/dev/null | grep -q vfio-user-pci ||
	{ log "the unpacked QEMU has no vfio-user-pci"; exit 1; }
rm -f "$apt_dir"/archives/*.deb
touch "$out/.done"
echo "$wrapper"
