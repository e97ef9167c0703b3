#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cpu-accounting.sh - inside a VM: three counts of the same CPU time, for
# the choice of vsdrv's CPU split (Documentation/benchmarks.rst, "Counting
# the CPU time").  Two processes pinned to CPUs 0 and 1 pass a byte back
# and forth N times (each spinning S loop iterations per turn); at any time
# at most one of them runs.  Printed: the wall time, the two processes' run
# time (schedstat), the machine's busy time as wall time less /proc/stat's
# idle time, and as /proc/stat's tick-sampled busy fields.
#
# usage: KDIR=<bench kernel> scripts/vm.sh scripts/cpu-accounting.sh
#        [VM_QEMU_OPTS="-cpu max,erms=off,fsrm=off,fsrs=off,fzrm=off,fsrc=off"]
set -eu
cat > /tmp/pingpong.py <<'PY'
import os, sys, time
def stat():
    v = list(map(int, open('/proc/stat').readline().split()[1:9]))
    return sum(v) - v[3] - v[4], v[3] + v[4]
def run_ns(pid):
    return sum(int(open('/proc/%d/task/%s/schedstat' % (pid, t)).read().split()[0])
               for t in os.listdir('/proc/%d/task' % pid))
n, spin = int(sys.argv[1]), int(sys.argv[2])
r1, w1 = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.sched_setaffinity(0, {1})
    for i in range(n):
        os.read(r1, 1)
        for j in range(spin): pass
        os.write(w2, b'x')
    os._exit(0)
os.sched_setaffinity(0, {0})
time.sleep(0.2)
b0, i0 = stat(); t0 = time.monotonic(); r0 = run_ns(os.getpid()) + run_ns(pid)
for i in range(n):
    os.write(w1, b'x'); os.read(r2, 1)
b1, i1 = stat(); t1 = time.monotonic(); r1 = run_ns(os.getpid()) + run_ns(pid)
ncpu = os.cpu_count()
print("turns %d spin %d: wall %.2f s; run time %.3f s, wall less idle %.3f s, ticks %.3f s"
      % (n, spin, t1 - t0, (r1 - r0) / 1e9, (t1 - t0) * ncpu - (i1 - i0) / 100, (b1 - b0) / 100))
os.waitpid(pid, 0)
PY
python3 /tmp/pingpong.py 20000 0
python3 /tmp/pingpong.py 20000 200
python3 /tmp/pingpong.py 5000 5000
