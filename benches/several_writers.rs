//! Several writer processes on one object (docs/SEVERAL_WRITERS.md), timed by
//! hand and printed as tables:
//!
//! 1. the uncontended cost of a shared-mode publish against an exclusive
//!    writer's, 100 B, interleaved rounds in one run (medians, ratio);
//! 2. `update` throughput and per-update latency (p50/p99) with 1, 2, 4 and 8
//!    writer processes contending;
//! 3. failover: from SIGKILL of the active writer to the first publish of a
//!    standby blocked in `WriterOptions::wait_for_lock` (median of rounds).
//!
//! `cargo bench --bench several_writers` runs it (~20 s); without `--bench`
//! (`cargo test --benches`) a smoke pass. Children are this binary with
//! `SHMSTATE_BENCH_ROLE` set.

#[path = "common/types.rs"]
mod types;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmstate::Writer;
use types::{mono_ns, pct, small, BenchName, Small};

const ROLE: &str = "SHMSTATE_BENCH_ROLE";

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Counter {
    value: u64,
    note: String,
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench") && std::env::var("QUICK").map_or(true, |q| q != "1");
    let (rounds, per_round, updates, failovers) = if full { (15, 20_000, 20_000, 15) } else { (2, 200, 200, 2) };
    uncontended(rounds, per_round);
    contended(updates);
    failover(failovers);
}

fn child(role: &str) {
    let parts: Vec<&str> = role.split(':').collect();
    match parts[..] {
        ["update", name, count] => {
            let mut w = Writer::<Counter>::options().shared(true).open_or_create(name).expect("shared writer");
            let mut lat = Vec::with_capacity(count.parse().unwrap());
            println!("READY");
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            for _ in 0..count.parse::<u64>().unwrap() {
                let t = mono_ns();
                w.update(|cur| Counter { value: cur.map_or(0, |c| c.value.to_native()) + 1, note: "x".into() })
                    .expect("update");
                lat.push(mono_ns() - t);
            }
            lat.sort_unstable();
            println!("LAT {} {}", pct(&lat, 50.0), pct(&lat, 99.0));
        }
        ["active", name] => {
            let mut w = Writer::<Counter>::open_or_create(name).expect("active");
            w.publish(&Counter { value: 1, note: "a".into() }).unwrap();
            println!("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        ["standby", name] => {
            println!("WAITING");
            let mut w = Writer::<Counter>::options()
                .wait_for_lock(Duration::from_secs(60))
                .open_or_create(name)
                .expect("standby");
            w.publish(&Counter { value: 2, note: "s".into() }).unwrap();
            println!("PUBLISHED {}", mono_ns());
        }
        _ => panic!("unknown role {role}"),
    }
}

fn spawn(role: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(c.stdout.take().unwrap());
    (c, out)
}

fn line_starting(out: &mut impl BufRead, prefix: &str) -> String {
    let mut l = String::new();
    loop {
        l.clear();
        assert!(out.read_line(&mut l).unwrap() > 0, "child exited before {prefix}");
        if let Some(rest) = l.trim_end().strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn uncontended(rounds: usize, per_round: usize) {
    let (a, b) = (BenchName::new("exclusive"), BenchName::new("shared"));
    let mut exclusive = Writer::<Small>::create(a.as_str()).unwrap();
    let mut shared = Writer::<Small>::options().shared(true).create(b.as_str()).unwrap();
    let (mut ex, mut sh) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (w, out) in [(&mut exclusive, &mut ex), (&mut shared, &mut sh)] {
            let t = Instant::now();
            for g in 0..per_round {
                w.publish(&small(g as u64)).unwrap();
            }
            out.push(t.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    let (ex, sh) = (median(&mut ex), median(&mut sh));
    println!("uncontended publish, 100 B ({rounds} rounds of {per_round}, medians)");
    println!("  exclusive writer  {ex:>8.0} ns");
    println!("  shared writer     {sh:>8.0} ns   {:.2}x  (+{:.0} ns)", sh / ex, sh - ex);
}

fn contended(updates: usize) {
    println!("update, several writer processes ({updates} each; latency per update)");
    println!("  writers  updates/s   p50 ns   p99 ns (worst writer)");
    for n in [1, 2, 4, 8] {
        let name = BenchName::new("contended");
        let mut kids: Vec<_> = (0..n).map(|_| spawn(&format!("update:{}:{updates}", name.as_str()))).collect();
        for (_, out) in &mut kids {
            line_starting(out, "READY");
        }
        let t = Instant::now();
        for (c, _) in &mut kids {
            use std::io::Write;
            writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
        }
        let mut p50s = Vec::new();
        let mut worst99 = 0u64;
        for (c, out) in &mut kids {
            let lat = line_starting(out, "LAT");
            let mut it = lat.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            p50s.push(it.next().unwrap() as f64);
            worst99 = worst99.max(it.next().unwrap());
            assert!(c.wait().unwrap().success());
        }
        let secs = t.elapsed().as_secs_f64();
        let total = (n * updates) as f64;
        println!("  {n:>7}  {:>9.0}  {:>7.0}  {worst99:>7}", total / secs, median(&mut p50s));
    }
}

fn failover(rounds: usize) {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let name = BenchName::new("failover");
        let (mut active, mut aout) = spawn(&format!("active:{}", name.as_str()));
        line_starting(&mut aout, "READY");
        let (mut standby, mut sout) = spawn(&format!("standby:{}", name.as_str()));
        line_starting(&mut sout, "WAITING");
        std::thread::sleep(Duration::from_millis(50));
        let killed = mono_ns();
        active.kill().unwrap();
        let published: u64 = line_starting(&mut sout, "PUBLISHED").parse().unwrap();
        active.wait().unwrap();
        standby.wait().unwrap();
        times.push((published - killed) as f64 / 1e3);
    }
    let mut sorted = times.clone();
    println!(
        "failover: SIGKILL of the active writer -> the standby's first publish ({rounds} rounds): median {:.0} us, max {:.0} us",
        median(&mut sorted),
        times.iter().cloned().fold(0.0, f64::max)
    );
}
