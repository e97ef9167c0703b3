#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# bench-report.py RESULTS RUNS SECS: the I/O tables of `make bench` from the
# runs scripts/bench.sh recorded, one line per run:
#     ROW <TAB> SIDE <TAB> key=value ...   (SIDE C, T or M)
# For each row and side: the median of the runs and their min-max range.
# The ratios are ratios of medians, followed by the range of the paired
# ratios: the runs of one round (C, then tcm_virt) ran back to back, so the
# ratio of each round's pair is free of the machine's slower drift, and a
# range that stays on one side of 1 says more than the medians alone.  IOPS ratio above 1: tcm_virt faster;
# CPU ratio above 1: tcm_virt cheaper.  CPU per I/O is the device's own
# (kern_us_per_io: the vhost workers plus the threads of every other
# process, i.e. target core's kworkers and softirq threads, by the
# threads' run times), in microseconds of CPU time, with the workers' share
# and the client's own time beside it.
# Printed as reStructuredText tables, as Documentation/benchmarks.rst has
# them.
import statistics
import sys

NAMES = {"C": "C vhost_scsi", "T": "tcm_virt", "M": "tcm_virt megasas"}


def parse(path):
    rows, order, failed = {}, [], 0
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            name, side, out = parts
            if name not in rows:
                rows[name] = {}
                order.append(name)
            kv = dict(
                w.split("=", 1) for w in out.split() if "=" in w and not out.startswith("failed")
            )
            if "iops" not in kv:
                failed += 1
                continue
            rows[name].setdefault(side, []).append(
                {k: float(v.rstrip("%")) for k, v in kv.items() if k != "rw" and is_num(v)}
            )
    return rows, order, failed


def is_num(v):
    try:
        float(v.rstrip("%"))
        return True
    except ValueError:
        return False


def med(runs, key):
    return statistics.median(r.get(key, 0.0) for r in runs)


def rng(runs, key):
    v = [r.get(key, 0.0) for r in runs]
    return min(v), max(v)


def ratio(a, b):
    return "%.2f" % (a / b) if b else "-"


def paired(num, den, key):
    """The ratio of the medians of `num` and `den`, and the min-max range of
    the ratios of the runs paired by round."""
    r = ratio(med(num, key), med(den, key))
    pairs = [a.get(key, 0.0) / b[key] for a, b in zip(num, den) if b.get(key)]
    if r == "-" or not pairs:
        return r
    return "%s (%.2f-%.2f)" % (r, min(pairs), max(pairs))


def iops_cell(runs):
    lo, hi = rng(runs, "iops")
    return "%d (%d-%d)" % (med(runs, "iops"), lo, hi)


def cpu_cell(runs):
    # median device CPU per I/O (median workers' share), median client
    return "%.1f (%.1f) %.1f" % (
        med(runs, "kern_us_per_io"),
        med(runs, "worker_us_per_io"),
        med(runs, "client_us_per_io"),
    )


def table(header, lines):
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    rule = "  ".join("=" * w for w in widths)
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    print(rule)
    print(fmt(header))
    print(rule)
    for l in lines:
        print(fmt(l))
    print(rule)


def main():
    path, runs, secs = sys.argv[1], sys.argv[2], sys.argv[3]
    rows, order, failed = parse(path)
    print(
        "I/O: %s interleaved runs of %s s per side (each side after each other equally often) after a discarded warm-up; "
        "median (min-max); ratios: of the medians (min-max of the rounds' "
        "paired ratios)." % (runs, secs)
    )
    print(
        "CPU: device CPU time per I/O in us (vhost workers + other processes' threads: kworkers, softirq threads; run times), "
        "(the workers' share), then the client's own."
    )
    print()
    lines = []
    for name in order:
        c, t = rows[name].get("C"), rows[name].get("T")
        if not c or not t:
            lines.append([name, "-", "-", "-", "-", "-", "-"])
            continue
        lines.append(
            [
                name,
                iops_cell(c),
                iops_cell(t),
                paired(t, c, "iops"),
                cpu_cell(c),
                cpu_cell(t),
                paired(c, t, "kern_us_per_io"),
            ]
        )
    table(
        ["workload", "C vhost_scsi IOPS", "tcm_virt IOPS", "ratio", "C CPU/IO",
         "tcm_virt CPU/IO", "ratio"],
        lines,
    )
    mrows = [n for n in order if rows[n].get("M")]
    if mrows:
        print()
        lines = []
        for name in mrows:
            c, t, m = rows[name].get("C"), rows[name].get("T"), rows[name]["M"]
            lines.append(
                [
                    name,
                    iops_cell(m),
                    paired(m, c, "iops") if c else "-",
                    paired(m, t, "iops") if t else "-",
                    cpu_cell(m),
                    paired(c, m, "kern_us_per_io") if c else "-",
                ]
            )
        table(
            ["megasas front end (mfi)", "megasas IOPS", "/ C", "/ tcm_virt vhost",
             "megasas CPU/IO", "C / megasas CPU"],
            lines,
        )
    if failed:
        print("\n%d run(s) failed and are left out" % failed)


main()
