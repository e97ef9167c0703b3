# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers of the VM tests (sourced; runs inside the test VM).
# Each test is a bash script that exits non-zero on the first failed check.

CFG=/sys/kernel/config/target
KO=${KO:-$TOP/tcm_virt.ko}
# WWNs used by the tests
WWPN=naa.5001405000000001
INITIATOR=naa.5001405000000002
# fabric and device names for tcm_virt loaded beside C vhost_scsi
ALT_FABRIC=tcm_virt_test
ALT_DEV=tcm-virt-test

# TIME_SCALE: how many times slower than the project's usual machine this
# one runs the test VM.  vm-suite.sh sets it from the VM's boot time (the
# usual machine starts the first test ~95 s after boot; a slow one was seen
# at 300-390 s, everything in it about four times slower).  Every time
# limit of the tests is multiplied by it (`scaled`), so that a slow machine
# ends a test late rather than failing it; what a limit guards against (a
# hang) still ends it.
TIME_SCALE=${TIME_SCALE:-1}
scaled() { echo $(($1 * TIME_SCALE)); }

# Waiting without processes.  In a slow test VM a process costs ~1 s of CPU,
# so a loop of `grep` and `sleep` every second kept a whole CPU busy beside
# the nested guest it waited for.
# nap SECS: sleep as a builtin (a read with a timeout on a pipe this shell
# holds both ends of, which never gets data)
exec {_nap_fd}<> <(:)
nap() { read -rt "$1" -u "$_nap_fd"; return 0; }
# has_line FILE PREFIX: a line of FILE starts with PREFIX (bash alone)
has_line() {
	local l
	[ -f "$1" ] || return 1
	while IFS= read -r l || [ -n "$l" ]; do
		[[ $l == "$2"* ]] && return 0
	done < "$1"
	return 1
}

# The simple file commands as loadable builtins (Debian's bash-builtins, in
# /usr/lib/bash): a relink loop of `rm` and `ln` every 0.35 s kept a CPU of a
# slow test VM busy beside the I/O it was meant to disturb.  The loadables
# take the options the tests use (mkdir -p, rm -f, ln -s, head -N, cut -c
# and -d/-f, seq, basename) and fail with the same errno text; where the
# package is missing the programs run as before.
for _b in mkdir mkfifo rmdir rm ln head cut seq basename dirname sleep; do
	[ -f "/usr/lib/bash/$_b" ] && enable -f "/usr/lib/bash/$_b" "$_b" 2>/dev/null
done
unset _b

log() {
	local up
	read -r up _ < /proc/uptime
	echo "[$up] $*"
}
fail() { echo "FAIL: $*"; exit 1; }
# ok: a passed check, with the seconds since the test started
ok() { echo "ok: $* [${SECONDS}s]"; }

# check CMD...: run it, fail the test if it fails
check() {
	if "$@"; then ok "$*"; else fail "$*"; fi
}

# klog_mark: write a unique marker line to the kernel log and print it.
klog_mark() {
	local m="tcm_virt-test: mark ${EPOCHREALTIME/./}${1:+ $1}"
	echo "$m" > /dev/kmsg
	echo "$m"
}
# klog_since MARK: the kernel log after the line MARK (all of it if MARK was
# rotated out of the ring buffer).  Line counts do not work: once the ring
# buffer is full, old lines go as new ones come.
klog_since() {
	dmesg | awk -v m="$1" '{ l[NR] = $0 } index($0, m) { s = NR } END { for (i = s + 1; i <= NR; i++) print l[i] }'
}

# vs_run SCRIPT [WIDTH]: vsdrv runs SCRIPT on $WWPN; its transcript goes
# to $OUT and is shown cut at WIDTH (default 240) columns; the test fails if
# vsdrv does.
vs_run() {
	local rc
	$VSDRV --wwpn $WWPN run "$1" > $OUT 2>&1
	rc=$?
	cut -c1-"${2:-240}" $OUT
	[ $rc = 0 ] || fail "vsdrv: rc=$rc"
}

# want LINE EXPECTED-SUBSTRING WHAT: line LINE of the vsdrv transcript $OUT
# must contain EXPECTED-SUBSTRING
# (bash alone: the tests call it ~100 times, and a grep costs a second of a
# slow VM)
want() {
	local l="" x re="^ *$1 "
	while IFS= read -r x; do
		[[ $x =~ $re ]] && { l=$x; break; }
	done < "$OUT"
	[[ "$l" == *"$2"* ]] || fail "line $1 ($3): got '$l', expected '$2'"
	ok "$3 -> $2"
}

# errno_of CMD...: run CMD (expected to fail) and print the strerror text of
# its failure ("OK" if it succeeded).  Works for mkdir, ln, echo > attr.
errno_of() {
	local msg
	if msg=$("$@" 2>&1); then echo OK; return; fi
	echo "${msg##*: }"
}

# expect_errno TEXT CMD...: CMD must fail with strerror TEXT
expect_errno() {
	local want=$1; shift
	local got
	got=$(errno_of "$@")
	[ "$got" = "$want" ] || fail "$* -> '$got', expected '$want'"
	ok "$* -> $want"
}

# write ATTR VALUE (a shell function so errno_of can wrap it)
write() { echo "$2" > "$1"; }

# within SECS OUT CMD...: runs CMD with its output in the file OUT; fails
# the test if CMD has not ended after SECS s (times TIME_SCALE; a close that hangs in the
# kernel cannot be killed, so `timeout` would wait for ever); else returns
# CMD's exit status.
within() {
	local secs=$1 out=$2 pid end
	shift 2
	"$@" > "$out" 2>&1 &
	pid=$!
	secs=$((secs * TIME_SCALE))
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		if ! kill -0 $pid 2>/dev/null; then
			wait $pid
			return
		fi
		nap 0.2
	done
	cat "$out"
	fail "$(basename "$1") ${*:2}: still running after $secs s (hung in the kernel?)"
}

# One-time VM setup: configfs, debugfs, a D-Bus system bus (targetcli-fb
# asks it for tcmu-runner handlers), a writable HOME, target core with a
# writable dbroot/pr.
vm_setup() {
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
	export HOME=/tmp/home
	mkdir -p "$HOME" /run/dbus
	[ -S /run/dbus/system_bus_socket ] || dbus-daemon --system --fork --nopidfile 2>/dev/null
	modprobe target_core_mod || echo "vm_setup: modprobe target_core_mod failed"
	# Target core writes persistent reservation state (the APTPL file, even
	# to clear it) to <dbroot>/pr, and rtslib points dbroot to
	# /etc/rtslib-fb-target: give each candidate its pr directory (/etc and
	# /var are writable overlays in the VM).
	mkdir -p /etc/rtslib-fb-target/pr /etc/target/pr /var/target/pr
	# udevd is virtme-ng's (its boot coldplug); nothing of the suite needs
	# it (devtmpfs makes the device nodes, rtslib reads sysfs), and each
	# disk the tests add or remove made it start its rules' programs
	# (scsi_id, sg_inq, blkid), which opened the disk while a test went
	# on and cost about a second of a slow VM's CPU each.
	if pgrep -x systemd-udevd > /dev/null; then
		udevadm control --exit 2>/dev/null || pkill -x systemd-udevd
	fi
	# targetcli must not save the configuration at each exit.  Its
	# preferences are written here as configshell keeps them (a pickled
	# dict; what is left out takes targetcli's defaults, but for the log
	# levels, which must be configshell's): a `targetcli set global` did the
	# same in a minute of a slow VM's boot, python alone in ~5 s.
	mkdir -p "$HOME/.targetcli"
	/usr/bin/python3 -c 'import pickle, sys
pickle.dump({"auto_save_on_exit": False, "logfile": sys.argv[1] + "/log.txt",
             "loglevel_console": "info", "loglevel_file": "debug"},
            open(sys.argv[1] + "/prefs.bin", "wb"), 2)' "$HOME/.targetcli"
}

# tcli ARGS...: one targetcli command
tcli() { targetcli "$@"; }
# tcli_batch CMD...: several targetcli commands in one start
tcli_batch() { printf '%s\n' "$@" | targetcli; }

tcm_load() { # [PARAMS...]
	modprobe -a target_core_mod vhost || return 1
	insmod "$KO" "$@"
}

tcm_loaded() { grep -q '^tcm_virt ' /proc/modules; }

# Remove every object of fabric $1 (default vhost) from configfs.
fabric_teardown() {
	local fab=$CFG/${1:-vhost} w t l
	[ -d "$fab" ] || return 0
	for t in "$fab"/*/tpgt_*; do
		[ -d "$t" ] || continue
		for l in "$t"/lun/lun_*; do
			[ -d "$l" ] || continue
			find "$l" -maxdepth 1 -type l -exec rm {} \;
			rmdir "$l"
		done
		echo NULL > "$t/nexus" 2>/dev/null
		rmdir "$t"
	done
	for w in "$fab"/*/; do
		[ -d "$w" ] && [ "$(basename "$w")" != discovery_auth ] && rmdir "$w"
	done
	rmdir "$fab" 2>/dev/null
	return 0
}

backstores_teardown() {
	local h d
	for h in "$CFG"/core/*_*/; do
		for d in "$h"*/; do
			[ -f "$d/enable" ] && rmdir "$d"
		done
		rmdir "$h" 2>/dev/null
	done
	return 0
}

# rmmod_idle MODULE: rmmod once the module's last user is gone, waiting for
# that up to 20 s (scaled).  A disk an iblock or pscsi backstore held is
# let go a moment after the backstore's rmdir returns, which an rmmod right
# after a builtin rmdir saw ("Module scsi_debug is in use"; a process
# between them had hidden it).
rmmod_idle() {
	local r i
	for ((i = 0; i < 40 * TIME_SCALE; i++)); do
		read -r r < "/sys/module/$1/refcnt" || break
		[ "$r" = 0 ] && break
		nap 0.5
	done
	rmmod "$1"
}

# Between tests: no configuration, no module of ours left behind.
vm_cleanup_between_tests() {
	fabric_teardown vhost
	fabric_teardown "$ALT_FABRIC"
	# pscsi backstores on loopback disks go first, then the loopback
	# LUNs and the backstores under them (see loop_mo)
	backstores_teardown
	fabric_teardown loopback
	backstores_teardown
	grep -q '^tcm_loop ' /proc/modules && rmmod tcm_loop
	tcm_loaded && rmmod tcm_virt
	grep -q '^vhost_scsi ' /proc/modules && rmmod vhost_scsi
	grep -q '^scsi_debug ' /proc/modules && rmmod_idle scsi_debug
	return 0
}

# nested_run WWPN GUEST_SCRIPT [QEMU ARGS...]: boot the tiny L2 kernel with
# -device vhost-scsi-pci,wwpn=WWPN[,L2_VHOST_OPTS] (L2_QEMU, on L2_ACCEL), run
# GUEST_SCRIPT in it; its console goes to /tmp/l2.log (L2_LOG).  Succeeds
# if the guest script did.  L2_SLIM=1: the initramfs has busybox alone.
# Files named in L2_PAYLOAD are copied to /payload/ in the
# guest.  no_timer_check: under emulation inside emulation a slow moment
# of the test VM made the L2 kernel's IO-APIC timer check fail ('IO-APIC +
# timer doesn't work', a panic; seen with three VMs on two cores).
# pty.legacy_count=0: tinyconfig has the 256 legacy BSD ptys, whose
# registration (512 tty devices) took 30 s of each nested boot on a slow
# machine; nothing in the guest uses a pty.
# L2_FIRMWARE: qboot, the minimal firmware that loads -kernel without a
# BIOS POST (SeaBIOS probes every target of every virtio-scsi controller
# before it boots, slow under emulation inside emulation).
L2_FIRMWARE=
[ -f /usr/share/qemu/qboot.rom ] && L2_FIRMWARE="-bios /usr/share/qemu/qboot.rom"
# L2_ACCEL: the accelerator of the L2 guest's QEMU.  kvm where the test VM
# has /dev/kvm: the test kernel has kvm_amd and the test VM's emulated CPU
# (-cpu max under TCG, an AMD) offers SVM, so the L2 guest's code runs as
# guest code of the test VM, with KVM's ioeventfd and irqfd wired to the
# vhost device as on a production host.  tcg otherwise (emulation inside
# emulation, one to two orders of magnitude slower).  The environment may
# force either.
if [ -z "${L2_ACCEL:-}" ]; then
	L2_ACCEL=tcg
	[ -c /dev/kvm ] && L2_ACCEL=kvm
fi
# l2_qemu INITRD [QEMU ARGS...]: the L2 guest's QEMU (L2_QEMU: the host's
# by default; "$QEMU_NEW" for the newer one, scripts/qemu-new.sh, passed in
# by vm.sh), on L2_ACCEL, on the tiny L2 kernel and INITRD, its console on
# stdout, killed after L2_TIMEOUT seconds (default 900; scaled); L2_APPEND
# adds to the guest kernel's command line.
l2_qemu() {
	local initrd=$1
	shift
	# shellcheck disable=SC2086 # L2_FIRMWARE: an option and its value
	timeout "$(scaled "${L2_TIMEOUT:-900}")" "${L2_QEMU:-qemu-system-x86_64}" -accel "$L2_ACCEL" -machine pc -m 256 -smp 1 \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot $L2_FIRMWARE \
		-kernel "$L2_KDIR/arch/x86/boot/bzImage" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 rdinit=/init loglevel=4 no_timer_check pty.legacy_count=0${L2_APPEND:+ $L2_APPEND}" \
		"$@" < /dev/null
}
# demo_setup DEVICE WHAT: the first steps of the `make run` demos, shown as
# they go: load tcm_virt (DEVICE: the character device to list), then a 32
# MiB fileio LUN (disk0, /tmp/disk0.img) behind the vhost target $WWPN,
# made with targetcli; WHAT ends the step's title.
demo_setup() {
	echo; echo "### insmod tcm_virt.ko"
	tcm_load || fail "insmod"
	dmesg | grep 'tcm_virt: '
	ls -l "$1"
	echo; echo "### targetcli: a 32 MiB fileio LUN behind a vhost target$2"
	rm -f /tmp/disk0.img
	tcli_batch "/backstores/fileio create disk0 /tmp/disk0.img 32M" \
		"/vhost create $WWPN" \
		"/vhost/$WWPN/tpg1/luns create /backstores/fileio/disk0" \
		"ls"
	[ -d $CFG/vhost/$WWPN/tpgt_1/lun/lun_0 ] || fail "the LUN was not created"
}

# l2_at PREFIX DEADLINE: wait until the nested guest's console
# (/tmp/l2.log, or L2_LOG) has a line starting with PREFIX; fails if the
# guest ended first (its L2-RESULT line) or at DEADLINE ($SECONDS).  For a
# host-side helper that acts on what the guest says while it runs.
l2_at() {
	local log=${L2_LOG:-/tmp/l2.log}
	while [ $SECONDS -lt "$2" ]; do
		has_line "$log" "$1" && return 0
		has_line "$log" L2-RESULT && return 1
		nap 1
	done
	return 1
}
# l2_line PREFIX: the first line of the nested guest's console (/tmp/l2.log,
# or L2_LOG) that starts with PREFIX, without its carriage return
l2_line() { tr -d '\r' < "${L2_LOG:-/tmp/l2.log}" | grep -a "^$1" | head -1; }
nested_run() {
	local wwpn=$1 script=$2
	shift 2
	local kernel=$L2_KDIR/arch/x86/boot/bzImage l2log=${L2_LOG:-/tmp/l2.log}
	local initrd=${l2log%.log}-initramfs.cpio
	[ -f "$kernel" ] || { echo "nested_run: no L2 kernel at $kernel"; return 1; }
	# shellcheck disable=SC2086 # L2_PAYLOAD: files for /payload/
	"$TOP/scripts/mk-initramfs.sh" "$initrd" "$script" ${L2_PAYLOAD:-} || return 1
	log "L2 boot (wwpn=$wwpn)"
	l2_qemu "$initrd" -device vhost-scsi-pci,wwpn="$wwpn"${L2_VHOST_OPTS:+,$L2_VHOST_OPTS} "$@" > "$l2log" 2>&1
	local rc=$?
	log "L2 exited rc=$rc"
	sed 's/^/  L2| /' "$l2log"
	grep -q '^L2-RESULT: PASS' "$l2log" && return 0
	# say why in one line: the guest's verdict and its last words before it
	echo "FAIL: L2 guest (qemu rc=$rc): $(grep -a -m1 '^L2-RESULT' "$l2log" | tr -d '\r')" \
		"after: $(grep -a -v '^L2-RESULT' "$l2log" | tr -d '\r' | grep -v '^$' | tail -n 2 | tr '\n' '|')"
	return 1
}

# libvirt_start: a libvirt daemon (Debian's libvirtd, system instance)
# in the test VM, running QEMU as root without cgroups, namespaces, a
# security driver or virtlogd (the test VM has none of them to offer: its
# root is the host's, read-only).  /etc and /var are the VM's writable
# overlays; the host's libvirt configuration is not touched.
libvirt_start() {
	pgrep -x libvirtd > /dev/null && return 0
	cat > /etc/libvirt/qemu.conf <<'C'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
C
	mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu /run/libvirt
	libvirtd -d || return 1
	local i
	for i in $(seq "$(scaled 30)"); do
		[ -S /run/libvirt/libvirt-sock ] && return 0
		nap 1
	done
	echo "libvirt_start: no /run/libvirt/libvirt-sock"
	return 1
}
libvirt_stop() {
	pkill -x libvirtd
	local i
	for i in $(seq 20); do pgrep -x libvirtd > /dev/null || return 0; nap 1; done
	pkill -KILL -x libvirtd
}
virsh_() { virsh -c qemu:///system "$@"; }

# libvirt_guest NAME WWPN GUEST_SCRIPT: define and start, through
# libvirt, the domain NAME: the tiny L2 kernel with GUEST_SCRIPT in its
# initramfs (as nested_run makes it), its console in /tmp/NAME.log, and
# the vhost-scsi target WWPN as a <hostdev type='scsi_host'> with
# protocol 'vhost': libvirt opens /dev/vhost-scsi itself and hands QEMU the
# file descriptor (vhostfd=).  Prints the domain XML.
libvirt_guest() {
	local name=$1 wwpn=$2 script=$3 type=qemu loader=
	local initrd=/tmp/$name-initramfs.cpio
	"$TOP/scripts/mk-initramfs.sh" "$initrd" "$script" || return 1
	[ "$L2_ACCEL" = kvm ] && type=kvm
	[ -f /usr/share/qemu/qboot.rom ] && loader="<loader type='rom'>/usr/share/qemu/qboot.rom</loader>"
	rm -f "/tmp/$name.log"
	cat > "/tmp/$name.xml" <<X
<domain type='$type'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    $loader
    <kernel>$L2_KDIR/arch/x86/boot/bzImage</kernel>
    <initrd>$initrd</initrd>
    <cmdline>console=ttyS0 panic=-1 rdinit=/init loglevel=4 no_timer_check pty.legacy_count=0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='/tmp/$name.log'/>
      <target port='0'/>
    </serial>
    <hostdev mode='subsystem' type='scsi_host'>
      <source protocol='vhost' wwpn='$wwpn'/>
    </hostdev>
    <memballoon model='none'/>
  </devices>
</domain>
X
	sed 's/^/  xml| /' "/tmp/$name.xml"
	log "virsh create (wwpn=$wwpn)"
	virsh_ create "/tmp/$name.xml"
}

# l2_wait LOG PATTERN PID SECONDS: wait until a line of the L2 console LOG
# starts with PATTERN, while the QEMU of PID lives, for SECONDS (scaled) at most;
# on failure print the console's last lines and return 1.
l2_wait() {
	local _
	local end=$((SECONDS + $4 * TIME_SCALE))
	while [ $SECONDS -lt $end ]; do
		has_line "$1" "$2" && return 0
		kill -0 "$3" 2>/dev/null || break
		nap 2
	done
	has_line "$1" "$2" && return 0
	sed 's/^/  L2| /' "$1" | tail -n 20
	return 1
}

# qmp SOCKET COMMAND [ARGUMENTS-JSON]: one QMP command to the QEMU listening
# on SOCKET, its answer printed as JSON.
qmp() {
	/usr/bin/python3 - "$@" <<'P'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
def cmd(name, args=None):
    m = {"execute": name}
    if args:
        m["arguments"] = json.loads(args)
    f.write(json.dumps(m) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
cmd("qmp_capabilities")
print(json.dumps(cmd(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))
P
}

# qmp_migrate SOCKET URI: migrate the VM to URI and wait (up to 120 s,
# scaled) for the end; succeeds if it completed.  One Python process for
# the whole wait (a process per query cost seconds of a slow VM's CPU).
qmp_migrate() {
	/usr/bin/python3 - "$1" "$2" "$(scaled 120)" <<'P'
import json, socket, sys, time
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
except OSError as e:
    sys.exit(f"qmp_migrate: the QEMU of {sys.argv[1]} is gone ({e})")
f = s.makefile("rw")
f.readline()
def cmd(name, args=None):
    m = {"execute": name}
    if args:
        m["arguments"] = args
    f.write(json.dumps(m) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            sys.exit(f"qmp_migrate: the QEMU of {sys.argv[1]} is gone")
        r = json.loads(line)
        if "event" not in r:
            return r
cmd("qmp_capabilities")
r = cmd("migrate", {"uri": sys.argv[2]})
if "error" in r:
    sys.exit(f"qmp_migrate: migrate: {r['error']}")
end = time.monotonic() + int(sys.argv[3])
st = "?"
while time.monotonic() < end:
    st = cmd("query-migrate").get("return", {}).get("status", "?")
    if st == "completed":
        sys.exit(0)
    if st in ("failed", "cancelled"):
        break
    time.sleep(0.5)
sys.exit(f"qmp_migrate: the migration to {sys.argv[2]} ended '{st}'")
P
}

# The userspace virtio-scsi driver (tools/vsdrv), built by make check.
VSDRV=${VSDRV:-$TOP/tools/target/release/vsdrv}

# lun_setup FABRIC WWPN MIB [DISK]: tpgt_1 with a nexus, LUN 0 = the rd_mcp
# disk DISK (default rd0) of MIB MiB, created if needed (configfs directly:
# faster than targetcli).
# fileio_lun WWPN NAME FILE MIB: a fileio backstore NAME on FILE (MIB MiB,
# buffered, as targetcli makes it) as LUN 0 of WWPN's TPG 1, with a nexus,
# through configfs.  For the nested tests after 50-nested_guest, which
# proves the same set-up made by targetcli: a targetcli start costs a
# minute of a slow VM.
fileio_lun() {
	local d=$CFG/core/fileio_0/$2
	mkdir -p "$d" || return 1
	echo "fd_dev_name=$3,fd_dev_size=$(($4 * 1048576)),fd_buffered_io=1" > "$d/control" || return 1
	echo 1 > "$d/enable" || return 1
	lun0_link "$CFG/vhost" "$1" "$d" "$2"
}

# lun0_link FABRIC-DIR WWPN BACKSTORE-DIR NAME: the backstore as LUN 0 of
# WWPN's TPG 1, with the test initiator's nexus
lun0_link() {
	local t=$1/$2/tpgt_1
	mkdir -p "$t/lun/lun_0" || return 1
	echo "$INITIATOR" > "$t/nexus"
	ln -s "$3" "$t/lun/lun_0/$4"
}

lun_setup() {
	local fab=$CFG/$1 wwpn=$2 mib=$3 d=$CFG/core/rd_mcp_0/${4:-rd0}
	if [ ! -d "$d" ]; then
		mkdir -p "$d" || return 1
		echo "rd_pages=$((mib * 256))" > "$d/control"
		echo 1 > "$d/enable"
	fi
	lun0_link "$fab" "$wwpn" "$d" disk
}

# sdebug_iblock NAME [SCSI_DEBUG PARAMS...]: a scsi_debug disk (one LUN)
# and the iblock backstore NAME on it, at $IB.  Slow it down with
# `echo NS > $SDEBUG/ndelay` (or the ndelay=NS parameter).
SDEBUG=/sys/bus/pseudo/drivers/scsi_debug
# sdebug_disk: wait (20 s at most, scaled) for scsi_debug's first disk to
# have its block device (the SCSI scan is asynchronous); SD_DISK gets its
# sdX name.
sdebug_disk() {
	local b i
	SD_DISK=
	for ((i = 0; i < 40 * TIME_SCALE; i++)); do
		for b in $SDEBUG/adapter*/host*/target*/*/block/*; do
			[ -b "/dev/${b##*/}" ] && { SD_DISK=${b##*/}; return 0; }
		done
		nap 0.5
	done
	echo "no scsi_debug disk"
	return 1
}
# The "polls: found=N empty=N" line of the vhost statistics file whose
# endpoint is WWPN (admin-guide.rst, "Statistics"), sampled every 0.2 s
# into FILE while PID runs, after DELAY seconds (default 0): the last
# sample stays (the file goes with the device's close).  Empty FILE: no
# sample.  Each sample forks; a DELAY keeps the sampler off the run's
# first part (a timed client on the sampler's vCPU loses that time).
sample_polls() { # WWPN PID FILE [DELAY]
	local f l
	: > "$3"
	sleep "${4:-0}"
	while kill -0 "$2" 2>/dev/null; do
		for f in /sys/kernel/debug/tcm_virt/vhost-*; do
			l=$(grep -s -A100 -x "endpoint: $1" "$f" | grep '^polls:') &&
				echo "$l" > "$3"
		done
		sleep 0.2
	done
}
# sdebug_inject DISK RULE...: scsi_debug error injection rules (its
# debugfs "error" file: TYPE COUNT OPCODE ..., a negative COUNT that many
# times) on the scsi_debug device whose disk is sdX DISK
sdebug_inject() {
	local e r
	e=/sys/kernel/debug/scsi_debug/$(basename "$(readlink -f "/sys/block/$1/device")")/error
	shift
	for r in "$@"; do
		echo "$r" > "$e" || return 1
	done
}
sdebug_iblock() {
	local name=$1 sd
	shift
	modprobe scsi_debug max_luns=1 num_tgts=1 "$@" || return 1
	sdebug_disk || return 1
	sd=$SD_DISK
	IB=$CFG/core/iblock_0/$name
	mkdir -p "$IB" && echo "udev_path=/dev/$sd" > "$IB/control" && echo 1 > "$IB/enable"
}

# sdebug_mo_disk: scsi_debug with two hosts of one LUN each, each with a
# store of its own: an optical memory device (peripheral type 07h, a block
# device to sd), whose VPD page list has no Block Limits page (B0h), then a
# disk, which has one.  Sets SD_MO and SD_DISK to their sdX names.
sdebug_mo_disk() {
	local b
	modprobe scsi_debug dev_size_mb=16 ptype=7 per_host_store=1 max_luns=1 num_tgts=1 ||
		return 1
	echo 0 > $SDEBUG/ptype && echo 1 > $SDEBUG/add_host || return 1
	for _ in $(seq "$(scaled 20)"); do
		SD_MO= SD_DISK=
		for b in $SDEBUG/adapter*/host*/target*/*/block/*; do
			[ -b "/dev/${b##*/}" ] || continue
			case $(cat "${b%/block/*}/type") in
			7) SD_MO=${b##*/} ;;
			0) SD_DISK=${b##*/} ;;
			esac
		done
		[ -n "$SD_MO" ] && [ -n "$SD_DISK" ] && return 0
		nap 0.5
	done
	echo "scsi_debug: optical memory device '$SD_MO', disk '$SD_DISK'"
	return 1
}

# pscsi_backstore NAME SDX: the pscsi backstore NAME on /dev/SDX
# (configfs), its path printed.
pscsi_backstore() {
	local p=$CFG/core/pscsi_0/$1 hctl h c t l
	hctl=$(basename "$(readlink -f /sys/block/$2/device)")
	IFS=: read -r h c t l <<< "$hctl"
	mkdir -p "$p" &&
		echo "scsi_host_id=$h,scsi_channel_id=$c,scsi_target_id=$t,scsi_lun_id=$l" > "$p/control" &&
		echo "/dev/$2" > "$p/udev_path" && echo 1 > "$p/enable" || return 1
	echo "$p"
}

# loop_mo N: the optical memory device $SD_MO (see sdebug_mo_disk) behind an
# adapter with a transfer limit: a pscsi backstore on it, exported by LIO's
# loopback fabric (tcm_loop) as LUNs 0 to N-1 of a host of this machine.
# tcm_loop's host takes at most 256 segments of one page per command
# (max_segments, dma_boundary), 1 MiB, which scsi_debug itself does not
# limit; the VPD pages still come from the device (pscsi passes INQUIRY
# through), so they lack Block Limits.  Sets LOOP_SD to the sdX names, by
# LUN.  loop_mo_teardown undoes it.
LOOP_WWN=naa.5001405000000a01
LOOP_T=$CFG/loopback/$LOOP_WWN/tpgt_1
loop_mo() {
	local n=$1 p i b h d
	p=$(pscsi_backstore loop_mo "$SD_MO") || return 1
	modprobe tcm_loop && mkdir -p $LOOP_T && echo naa.5001405000000a02 > $LOOP_T/nexus ||
		return 1
	for i in $(seq 0 $((n - 1))); do
		mkdir $LOOP_T/lun/lun_$i && ln -s "$p" $LOOP_T/lun/lun_$i/mo || return 1
	done
	for _ in $(seq "$(scaled 20)"); do
		LOOP_SD=()
		for b in /sys/block/sd*; do
			d=$(readlink -f "$b/device")
			h=${d%%/target*}
			[ "$(cat "$h/scsi_host/${h##*/}/proc_name" 2>/dev/null)" = tcm_loopback ] || continue
			LOOP_SD[${d##*:}]=${b##*/}
		done
		[ ${#LOOP_SD[@]} = "$n" ] && return 0
		nap 0.5
	done
	echo "tcm_loop: ${#LOOP_SD[@]} disks, expected $n"
	return 1
}

loop_mo_teardown() {
	local l
	for l in $LOOP_T/lun/lun_*; do
		rm -f "$l/mo" && rmdir "$l"
	done
	echo NULL > $LOOP_T/nexus
	rmdir $LOOP_T $CFG/loopback/$LOOP_WWN $CFG/loopback $CFG/core/pscsi_0/loop_mo &&
		rmmod tcm_loop
}

lun_teardown() { # FABRIC WWPN
	local t=$CFG/$1/$2/tpgt_1
	rm -f "$t/lun/lun_0/disk"
	rmdir "$t/lun/lun_0"
	echo NULL > "$t/nexus"
	rmdir "$t" "$CFG/$1/$2" "$CFG/$1"
}
