#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# panic-sites.py - every call to a Rust panic function in a build of
# tcm_virt.ko, with the source location the compiler passes it: the list a
# review of hostile-input paths walks (Documentation/robustness.rst,
# "Panics").  A panic in the module is an oops.
#
# usage: scripts/panic-sites.py [--summary] [--max N] [tcm_virt.ko]
#
# Fails (exit 1) when a site's location cannot be read (the script no
# longer understands the build) or, with --max, when there are more than
# N sites: a change that adds panic calls raises the ceiling in the
# Makefile (PANIC_MAX) after its review shows them unreachable.
#
# Each panic call in x86-64 kernel code loads the address of its
# core::panic::Location (file: &str, line: u32, col: u32) into a register
# just before the call, as an R_X86_64_32S relocation against a section;
# the Location's file pointer is itself a relocation in that section.  The
# script reads both with objdump/readelf (binutils), no ELF library.
# Output: "file:line:col kind function" per site, sorted, then counts per
# kind; --summary prints only the counts and the functions.
import collections
import re
import struct
import subprocess
import sys

PANICS = re.compile(
    r"(panic_bounds_check|slice_\w*index\w*fail|slice_index_fail|"
    r"panic_const_\w+|unwrap_failed|expect_failed|panic_fmt|panic_nounwind\w*|"
    r"assert_failed\w*|panic_explicit|panicking5panic\b|unreachable\w*|"
    r"panic_already_\w*borrowed|str_index_overflow_fail|panic_misaligned\w*|"
    r"begin_panic\w*|rust_begin_unwind)"
)


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def sections(ko):
    """name -> (file offset, size)"""
    out = {}
    for line in run("readelf", "-S", "-W", ko).splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m:
            out[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return out


def data_relocs(ko):
    """(section, offset) -> (target section, addend) of every relocation in data sections"""
    out = {}
    sec = None
    for line in run("readelf", "-r", "-W", ko).splitlines():
        m = re.match(r"Relocation section '\.rela(\S+)'", line)
        if m:
            sec = m.group(1)
            continue
        f = line.split()
        if sec and len(f) >= 7 and re.fullmatch(r"[0-9a-f]+", f[0]) and f[5] == "+":
            out[(sec, int(f[0], 16))] = (f[4], int(f[6], 16))
    return out


def demangle(names):
    try:
        p = subprocess.run(["rustfilt"], input="\n".join(names), capture_output=True, text=True)
        if p.returncode == 0:
            return dict(zip(names, p.stdout.splitlines()))
    except OSError:
        pass
    return {n: n for n in names}


def main():
    argv = sys.argv[1:]
    limit = None
    if "--max" in argv:
        i = argv.index("--max")
        limit = int(argv[i + 1])
        del argv[i : i + 2]
    args = [a for a in argv if not a.startswith("--")]
    summary = "--summary" in argv
    ko = args[0] if args else "tcm_virt.ko"
    blob = open(ko, "rb").read()
    secs = sections(ko)
    rel = data_relocs(ko)

    def location(sec, off):
        base, size = secs[sec]
        if off + 24 > size:
            return "?"
        ln = struct.unpack_from("<Q", blob, base + off + 8)[0]
        line, col = struct.unpack_from("<II", blob, base + off + 16)
        target = rel.get((sec, off))
        if not target or target[0] not in secs:
            return f"?:{line}:{col}"
        tbase, _ = secs[target[0]]
        name = blob[tbase + target[1]:tbase + target[1] + ln].decode("utf-8", "replace")
        return f"{name}:{line}:{col}"

    sites = []
    func = None
    recent = []
    dis = run("objdump", "-d", "-r", "--no-show-raw-insn", ko)
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            func, recent = m.group(1), []
            continue
        m = re.search(r"R_X86_64_(?:PLT32|PC32)\s+(\S+)", line)
        if m and PANICS.search(m.group(1)) and func and not PANICS.search(func):
            kind = PANICS.search(m.group(1)).group(1).replace("panic_const_", "")
            where = "?"
            for prev in reversed(recent[-12:]):
                r = re.search(r"R_X86_64_(?:32S|PC32)\s+(\.[\w.]+)\+0x([0-9a-f]+)", prev)
                if r and r.group(1) in secs:
                    addend = int(r.group(2), 16) + (4 if "PC32" in prev else 0)
                    where = location(r.group(1), addend)
                    break
            sites.append((where, kind, func))
        recent.append(line)

    names = demangle(sorted({s[2] for s in sites}))
    if not summary:
        for where, kind, func in sorted(sites):
            print(f"{where} {kind} {names[func]}")
        print()
    kinds = collections.Counter(s[1] for s in sites)
    funcs = collections.Counter(names[s[2]] for s in sites)
    print(f"{len(sites)} panic call sites in {len(funcs)} functions of {ko}")
    for k, n in kinds.most_common():
        print(f"  {n:4d} {k}")
    if summary:
        for f, n in funcs.most_common():
            print(f"  {n:4d} {f}")
    unknown = sum(1 for s in sites if s[0].startswith("?"))
    if unknown or not sites:
        print(f"panic-sites: {unknown} of {len(sites)} locations not read", file=sys.stderr)
        sys.exit(1)
    if limit is not None and len(sites) > limit:
        print(f"panic-sites: {len(sites)} sites, over the reviewed ceiling of {limit}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
