// SPDX-License-Identifier: GPL-2.0
//! fuzz - a coverage-guided fuzzer of tcm_virt's two front ends.
//!
//! SYNOPSIS
//!     fuzz --wwpn NAME [OPTIONS] vhost|megasas
//!     fuzz --wwpn NAME repro vhost|megasas HEX
//!
//! OPTIONS
//!     --requests N      stop after N requests (vhost) or frames (megasas);
//!                       default 10000
//!     --secs N          stop after N seconds (default: no limit)
//!     --seed N          the random seed (default 1)
//!     --corpus FILE     inputs to run first and to mutate (hex, one a line)
//!     --save FILE       append the inputs that reached new coverage
//!     --timeout-ms N    the bound of every answer, close and ioctl
//!                       (default 10000)
//!
//! Each input is a byte string an interpreter reads as a batch of
//! requests (src/vhost.rs, src/megasas.rs say which and what their oracles
//! are).  Inputs come from the corpus, from mutations of it and from
//! random bytes; with KCOV (the debug kernel), an input whose requests made
//! the module's vhost workers reach program counters never seen before
//! joins the corpus.  The first broken oracle ends the run with
//!
//!     FAIL: <front end>: <what>
//!     repro: fuzz --wwpn NAME repro <front end> <input in hex>
//!
//! and exit status 1; `repro` runs that one input again on a fresh device.
//! The kernel's side (no oops, no KASAN or lockdep report, no leak) is
//! judged by the caller from the kernel log.  At the end a summary line:
//! requests, answers, requests refused by design, sessions, requests/s,
//! coverage (program counters), corpus size, failures.

mod input;
mod kcov;
mod megasas;
mod pseudo;
mod vhost;

use input::{from_hex, mutate, to_hex, Rng};
use std::io::Write;
use std::process::exit;
use std::time::{Duration, Instant};

enum Front {
    Vhost(Box<vhost::Vhost>),
    Megasas(Box<megasas::Megasas>),
}

impl Front {
    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        match self {
            Front::Vhost(v) => v.run(input),
            Front::Megasas(m) => m.run(input),
        }
    }

    fn close(&mut self) -> Result<(), String> {
        match self {
            Front::Vhost(v) => v.close(),
            Front::Megasas(m) => m.close(),
        }
    }

    fn count(&self) -> u64 {
        match self {
            Front::Vhost(v) => v.stats.requests,
            Front::Megasas(m) => m.stats.frames,
        }
    }

    fn summary(&self) -> String {
        match self {
            Front::Vhost(v) => format!(
                "{} requests, {} answered, {} refused or dropped by design, {} sessions",
                v.stats.requests, v.stats.answered, v.stats.refused, v.stats.reopens
            ),
            Front::Megasas(m) => format!(
                "{} frames, {} answered, {} refused or dropped by design, {} sessions, {} event waits aborted, {} canary processes, {} owners killed",
                m.stats.frames,
                m.stats.answered,
                m.stats.refused,
                m.stats.reopens,
                m.stats.aborted,
                m.stats.canaries,
                m.stats.kills
            ),
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: fuzz --wwpn NAME [--requests N] [--secs N] [--seed N] [--corpus FILE] [--save FILE] [--timeout-ms N] vhost|megasas");
    eprintln!("       fuzz --wwpn NAME repro vhost|megasas HEX");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut wwpn = String::new();
    let mut requests = 10_000u64;
    let mut secs = u64::MAX;
    let mut seed = 1u64;
    let mut corpus_file = None;
    let mut save = None;
    let mut timeout = Duration::from_secs(10);
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().unwrap_or_else(|| usage());
        let num = |i: usize| val(i).parse::<u64>().unwrap_or_else(|_| usage());
        match args[i].as_str() {
            "--wwpn" => wwpn = val(i),
            "--requests" => requests = num(i),
            "--secs" => secs = num(i),
            "--seed" => seed = num(i),
            "--corpus" => corpus_file = Some(val(i)),
            "--save" => save = Some(val(i)),
            "--timeout-ms" => timeout = Duration::from_millis(num(i)),
            a if a.starts_with("--") => usage(),
            a => {
                rest.push(a.to_string());
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    if wwpn.is_empty() || rest.is_empty() {
        usage();
    }
    let repro = rest[0] == "repro";
    let which = if repro { rest.get(1) } else { rest.first() }
        .cloned()
        .unwrap_or_else(|| usage());
    // Coverage first: the devices' workers take this thread's handle
    // when they are created.
    let (mut kcov, how) = if repro {
        (None, String::new())
    } else {
        kcov::try_open()
    };
    let mut front = match which.as_str() {
        "vhost" => Front::Vhost(Box::new(vhost::Vhost::new(&wwpn, timeout))),
        "megasas" => Front::Megasas(Box::new(megasas::Megasas::new(&wwpn, timeout))),
        _ => usage(),
    };
    if repro {
        let hex = rest.get(2).unwrap_or_else(|| usage());
        let input = from_hex(hex).unwrap_or_else(|e| {
            eprintln!("{e}");
            exit(2)
        });
        let r = front.run(&input).and_then(|()| front.close());
        match r {
            Ok(()) => println!("repro: {which}: passed ({})", front.summary()),
            Err(e) => {
                println!("FAIL: {which}: {e}");
                exit(1)
            }
        }
        return;
    }
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    if let Some(f) = &corpus_file {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| {
            eprintln!("{f}: {e}");
            exit(2)
        });
        for (n, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            corpus.push(from_hex(l).unwrap_or_else(|e| {
                eprintln!("{f}:{}: {e}", n + 1);
                exit(2)
            }));
        }
    }
    let kept = corpus.len();
    println!(
        "fuzz {which}: seed {seed}, {} corpus inputs, up to {requests} requests{}, {how}",
        kept,
        if secs < u64::MAX {
            format!(" or {secs} s")
        } else {
            String::new()
        }
    );
    // FUZZ_LOG_INPUTS: each input on stderr before it runs (to find the
    // one that a hang leaves unfinished).
    let log_inputs = std::env::var_os("FUZZ_LOG_INPUTS").is_some();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut last = start;
    let mut fresh: Vec<Vec<u8>> = Vec::new();
    let mut inputs = 0u64;
    let mut edges_at_corpus_end = 0;
    let fail = |which: &str, e: &str, input: &[u8]| -> ! {
        println!("FAIL: {which}: {e}");
        println!("repro: fuzz --wwpn {wwpn} repro {which} {}", to_hex(input));
        let _ = std::io::stdout().flush();
        exit(1)
    };
    while front.count() < requests && start.elapsed().as_secs() < secs {
        // The kept corpus first, as it is; then mutations and new inputs.
        let input = if (inputs as usize) < kept {
            corpus[inputs as usize].clone()
        } else if corpus.is_empty() || rng.below(4) == 0 {
            let n = 8 + rng.below(120);
            rng.bytes(n)
        } else {
            let a = rng.below(corpus.len());
            let b = rng.below(corpus.len());
            mutate(&mut rng, &corpus[a], &corpus[b])
        };
        inputs += 1;
        if log_inputs {
            eprintln!("input {inputs}: {}", to_hex(&input));
        }
        if let Err(e) = front.run(&input) {
            fail(&which, &e, &input);
        }
        if let Some(k) = kcov.as_mut() {
            if k.collect() > 0 && inputs as usize > kept {
                corpus.push(input.clone());
                fresh.push(input);
            }
            if inputs as usize == kept {
                edges_at_corpus_end = k.seen.len();
            }
        }
        if last.elapsed() >= Duration::from_secs(30) {
            last = Instant::now();
            println!(
                "progress: {} s, {}, edges {}",
                start.elapsed().as_secs(),
                front.summary(),
                kcov.as_ref().map_or(0, |k| k.seen.len())
            );
        }
    }
    if let Err(e) = front.close() {
        fail(&which, &e, &[]);
    }
    if let Some(k) = kcov.as_mut() {
        k.collect();
    }
    let t = start.elapsed().as_secs_f64();
    let edges = kcov.as_ref().map_or(0, |k| k.seen.len());
    println!(
        "fuzz {which}: {} in {t:.0} s, {:.0} requests/s, edges {edges} ({} after the kept corpus), corpus {} (+{} new), failures 0",
        front.summary(),
        front.count() as f64 / t.max(0.001),
        edges_at_corpus_end,
        corpus.len(),
        fresh.len()
    );
    if let Front::Vhost(v) = &front {
        println!("fuzz {which}: {}", v.stats.detail());
    }
    if let Some(f) = save {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .unwrap_or_else(|e| {
                eprintln!("{f}: {e}");
                exit(2)
            });
        for i in &fresh {
            let _ = writeln!(out, "{}", to_hex(i));
        }
    }
}
