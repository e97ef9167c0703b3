#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-profile.sh - inside the VM booted on the bench kernel: where the CPU
# goes on the 4 KiB random-read QD32 row of rd_mcp, C vhost_scsi (C) and
# tcm_virt (T) one after the other: `perf record -e cpu-clock -a -g` of a
# vsdrv run of PROF_SECS (6) seconds each (perf starts it), then the top
# symbols, the modules' own symbols (resolved with /proc/kallsyms: the
# module is insmod'ed from the checkout, which perf cannot find), the
# callers of memcpy/memset/unlock and the hottest offsets inside tcm_virt.
#
# usage: KDIR=<bench kernel> scripts/vm.sh env [KO=...] [DIRECT=0|1] [QS="1 4"]
#        [SIDES="C T"] [PROF_SECS=6] [NULLIO=1] scripts/bench-profile.sh
# DIRECT (default 1): the backstore's submit_type/complete_type.
# NULLIO=1: rd_mcp with rd_nullio=1 (no data copied: the fabric's own cost).
# The side profiled first in a boot runs 10-20 % faster whichever it is
# (benchmarks.rst, "Four queues at the same settings"): compare shares
# within one side, or profile again with SIDES in the other order.
# make bench's CPU model (no rep movsb/stosb in the guest kernel, see the
# Makefile's BENCH_CPU): VM_QEMU_OPTS="-cpu max,erms=off,fsrm=off,fsrs=off,fzrm=off,fsrc=off".
set -u
. "$TOP/tools/testing/lib.sh"
vm_setup
modprobe null_blk nr_devices=1 gb=4 irqmode=0
mkdir -p $CFG/core/rd_mcp_0/rd0
echo rd_pages=131072${NULLIO:+,rd_nullio=$NULLIO} > $CFG/core/rd_mcp_0/rd0/control
echo 1 > $CFG/core/rd_mcp_0/rd0/enable
modprobe vhost_scsi
tcm_load fabric_name=$ALT_FABRIC vhost_devname=$ALT_DEV
IO_WWPN=naa.5001405000000009
for f in vhost $ALT_FABRIC; do
	mkdir -p $CFG/$f/$IO_WWPN/tpgt_1
	echo $INITIATOR > $CFG/$f/$IO_WWPN/tpgt_1/nexus
	mkdir $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0
	ln -s $CFG/core/rd_mcp_0/rd0 $CFG/$f/$IO_WWPN/tpgt_1/lun/lun_0/disk
done
$VSDRV --dev /dev/vhost-scsi --wwpn $IO_WWPN bench --lun 0 --rw write --bs 1048576 --qd 8 --secs 2 > /dev/null
a=$CFG/core/rd_mcp_0/rd0/attrib
echo ${DIRECT:-1} > $a/submit_type; echo ${DIRECT:-1} > $a/complete_type
for q in ${QS:-1}; do
for side in ${SIDES:-C T}; do
	dev=/dev/vhost-scsi; [ $side = T ] && dev=/dev/$ALT_DEV
	opts=""; [ $q -gt 1 ] && opts="--queues $q --workers"
	$VSDRV --dev $dev --wwpn $IO_WWPN $opts bench --lun 0 --rw randread --bs 4096 --qd 32 --secs 1 >/dev/null
	# perf starts the run itself once its events are set up: started beside
	# a run, it once took longer than the run to come up (4 queues under
	# TCG) and recorded an idle VM.  The samples cover the run from its open
	# of the device to its close (PROF_SECS of I/O, default 6).
	perf record -q -e cpu-clock -a ${PG:--g} -o /tmp/perf-$side-$q.data -- \
		$VSDRV --dev $dev --wwpn $IO_WWPN $opts bench --lun 0 --rw randread --bs 4096 --qd 32 \
		--secs "${PROF_SECS:-6}" > /tmp/prof-$side-$q.bench
	echo "== $side q=$q: $(cat /tmp/prof-$side-$q.bench)"
	perf report -q -i /tmp/perf-$side-$q.data --stdio --no-children --sort sym -g none --percent-limit 0.25 2>/dev/null | head -90
	echo "-- dso"; perf report -q --kallsyms /proc/kallsyms -i /tmp/perf-$side-$q.data --stdio --no-children --sort dso -g none 2>/dev/null | head -12
	echo "-- module syms"; perf report -q --kallsyms /proc/kallsyms -i /tmp/perf-$side-$q.data --stdio --no-children --sort dso,sym -g none --percent-limit 0.05 2>/dev/null | grep -v "kernel.vmlinux\|vsdrv\|libc\|vdso" | head -70
	perf script -i /tmp/perf-$side-$q.data -F ip,sym 2>/dev/null > /tmp/cs-$side
	sort /proc/kallsyms > /tmp/ks-all
	python3 - /tmp/cs-$side /tmp/ks-all <<'PY'
import sys,bisect
ks=[]
for l in open(sys.argv[2]):
    f=l.split()
    if len(f)<3: continue
    ks.append((int(f[0],16),f[2]+(' '+f[3] if len(f)>3 else '')))
ks.sort(); addrs=[a for a,_ in ks]
def res(ip):
    i=bisect.bisect_right(addrs,ip)-1
    return ks[i][1] if i>=0 else '?'
# samples: blank-line separated; each line "ip sym"
samples=[];cur=[]
for l in open(sys.argv[1]):
    l=l.strip()
    if not l:
        if cur: samples.append(cur); cur=[]
        continue
    f=l.split(None,1)
    try: cur.append(int(f[0],16))
    except: pass
if cur: samples.append(cur)
self_={}; par={}
for s in samples:
    leaf=res(s[0]); self_[leaf]=self_.get(leaf,0)+1
    if leaf.startswith(('memcpy','memset','_raw_spin_unlock','?')) and len(s)>1:
        k=leaf+' <- '+res(s[1])+' <- '+(res(s[2]) if len(s)>2 else '')
        par[k]=par.get(k,0)+1
print("samples",len(samples))
for n,c in sorted(self_.items(),key=lambda x:-x[1])[:12]: print(" self",c,n)
mods=[(n,c) for n,c in self_.items() if '[' in n]
print(" module total", sum(c for n,c in mods))
for n,c in sorted(mods,key=lambda x:-x[1])[:40]: print(" mod",c,n)
for n,c in sorted(par.items(),key=lambda x:-x[1])[:60]: print(" callers",c,n)
offs={}
for s in samples:
    i=bisect.bisect_right(addrs,s[0])-1
    if i>=0 and 'tcm_virt' in ks[i][1]:
        k='%s+0x%x'%(ks[i][1].split()[0],s[0]-ks[i][0]); offs[k]=offs.get(k,0)+1
for n,c in sorted(offs.items(),key=lambda x:-x[1])[:150]: print(" off",c,n)
PY
done
done
