//! `SharedReader` and async waits:
//!
//! 1. criterion: an unchanged read through one `SharedReader` from 1, 2 and 8
//!    threads at once, against `Reader::read` on one thread. The time is per
//!    load per thread (wall clock, all threads started by a barrier; the
//!    slowest thread counts);
//! 2. by hand: wake-up latency across threads (p50/p99) of `changed().await`
//!    (tokio current-thread runtime) against a blocking `Reader::wait_newer`,
//!    alternating in rounds within one run, a publish every 1 ms.
//!
//! `cargo bench --bench shared` (see BENCHMARKS.md). Without `--bench` (e.g.
//! `cargo test --benches`) it runs a short smoke pass.

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use shmstate::{Generation, Reader, SharedReader, Writer};
use types::{mono_ns, pct, small, BenchName, Small};

fn main() {
    // As benches/contention.rs: QUICK=1 makes the wake-up table a smoke run.
    let full = std::env::args().any(|a| a == "--bench") && std::env::var("QUICK").map_or(true, |q| q != "1");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    unchanged_reads(&mut c);
    c.final_summary();
    let (rounds, per_round) = if full { (6, 500) } else { (1, 10) };
    wake_latency(rounds, per_round);
}

fn unchanged_reads(c: &mut Criterion) {
    let name = BenchName::new("shared-read");
    let mut w = Writer::<Small>::create(name.as_str()).expect("create");
    w.publish(&small(1)).expect("publish");
    let mut g = c.benchmark_group("unchanged_read");

    let mut r = Reader::<Small>::open(name.as_str()).expect("open");
    g.bench_function("Reader::read", |b| {
        b.iter(|| {
            let s = r.read().expect("read");
            black_box(s.port.to_native())
        })
    });
    drop(r);

    let shared = Arc::new(SharedReader::<Small>::open(name.as_str()).expect("open shared"));
    // This thread too, for the one-thread row without spawning.
    g.bench_function(BenchmarkId::new("SharedReader::load", "1 thread (caller)"), |b| {
        b.iter(|| {
            let s = shared.load().expect("load");
            black_box(s.port.to_native())
        })
    });
    for threads in [1usize, 2, 8] {
        g.bench_function(BenchmarkId::new("SharedReader::load", format!("{threads} threads")), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || shared.clone(), |s| s.load().expect("load").port.to_native())
            })
        });
        // The same threads, each with its own plain `Reader`: the reference.
        g.bench_function(BenchmarkId::new("Reader::read (one per thread)", format!("{threads} threads")), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || Reader::<Small>::open(name.as_str()).expect("open"),
                    |r| r.read().expect("read").port.to_native(),
                )
            })
        });
    }
    g.finish();
}

/// Runs `iters` reads on each of `threads` new threads at once; returns the
/// slowest thread's time. Each thread's first read (which claims its reader
/// and validates) happens before the barrier and is not timed.
fn on_threads<H: Send + 'static, R: Fn(&mut H) -> u16 + Copy + Send + 'static>(
    threads: usize,
    iters: u64,
    make: impl Fn() -> H,
    read: R,
) -> Duration {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (mut handle, start) = (make(), start.clone());
            std::thread::spawn(move || {
                black_box(read(&mut handle));
                start.wait();
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(read(&mut handle));
                }
                t.elapsed()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("reader thread")).max().unwrap_or_default()
}

/// Publishes `per_round` times a round, one every 1 ms, alternating a blocking
/// waiter thread and an async one (tokio current-thread runtime on its own
/// thread); prints p50/p99 of publish-to-wake for each.
fn wake_latency(rounds: usize, per_round: usize) {
    println!(
        "\n== wake-up latency across threads, publish every 1 ms, {rounds} rounds x {per_round} publishes per waiter kind"
    );
    println!("   from just before publish() to just after the wait returns (CLOCK_MONOTONIC)");
    let name = BenchName::new("shared-wake");
    let mut w = Writer::<Small>::create(name.as_str()).expect("create");
    let total = rounds * per_round * 2 + 2;
    // Publish time of each generation, written before its publish.
    let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..=total as u64 + 1).map(|_| AtomicU64::new(0)).collect());
    let mut gen = w.publish(&small(1)).expect("publish");
    let mut lat_blocking = Vec::new();
    let mut lat_async = Vec::new();
    for _ in 0..rounds {
        for kind in ["blocking", "async"] {
            let waiter = spawn_waiter(kind, name.as_str(), gen, per_round as u64, stamps.clone());
            // Let the waiter get to its wait.
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..per_round {
                std::thread::sleep(Duration::from_millis(1));
                let next = gen.get() + 1;
                // SYNC(bench): Relaxed: the publish's Release orders it for the waiter.
                stamps[next as usize].store(mono_ns(), Ordering::Relaxed);
                gen = w.publish(&small(next)).expect("publish");
            }
            let lat = waiter.join().expect("waiter");
            if kind == "blocking" { &mut lat_blocking } else { &mut lat_async }.extend(lat);
        }
    }
    for (kind, lat) in
        [("Reader::wait_newer (blocking)", &mut lat_blocking), ("SharedReader::changed().await", &mut lat_async)]
    {
        lat.sort_unstable();
        println!(
            "{kind:<32} samples {:>5}: p50 {:>6.1} us, p99 {:>6.1} us, max {:>7.1} us",
            lat.len(),
            pct(lat, 50.0) as f64 / 1e3,
            pct(lat, 99.0) as f64 / 1e3,
            lat.last().copied().unwrap_or(0) as f64 / 1e3
        );
    }
}

/// A waiter thread that waits for `count` generations after `from` and
/// returns the publish-to-wake latency of each wake-up.
fn spawn_waiter(
    kind: &'static str,
    name: &str,
    from: Generation,
    count: u64,
    stamps: Arc<Vec<AtomicU64>>,
) -> std::thread::JoinHandle<Vec<u64>> {
    let name = name.to_string();
    std::thread::spawn(move || {
        let last = from.get() + count;
        let mut seen = from;
        let mut lat = Vec::new();
        let record = |seen: &mut Generation, lat: &mut Vec<u64>, g: Generation| {
            let woke = mono_ns();
            // SYNC(bench): Relaxed: written before the publish we saw (Acquire).
            let at = stamps[g.get() as usize].load(Ordering::Relaxed);
            // Only wake-ups for exactly the next generation (none skipped).
            if g.get() == seen.get() + 1 && at != 0 {
                lat.push(woke.saturating_sub(at));
            }
            *seen = g;
        };
        if kind == "blocking" {
            let r = Reader::<Small>::open(&name).expect("open");
            while seen.get() < last {
                let g = r.wait_newer(seen, Duration::from_secs(10)).expect("wait_newer");
                record(&mut seen, &mut lat, g);
            }
        } else {
            let shared = SharedReader::<Small>::open(&name).expect("open shared");
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            rt.block_on(async {
                while seen.get() < last {
                    let g = shared.changed(seen).await.expect("changed");
                    record(&mut seen, &mut lat, g);
                }
            });
        }
        lat
    })
}
