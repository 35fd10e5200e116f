//! Multi-thread and multi-process scenarios criterion cannot express, timed by
//! hand with `Instant` / CLOCK_MONOTONIC and printed as tables:
//!
//! 1. publish latency (p50/p99/p99.9/max) with 0, 1 and 2 reader threads reading,
//!    with table pins (the default for owner-only objects) and with lock pins
//!    (`WriterOptions::lock_pins(true)`);
//! 2. reader scaling, unchanged generation: 1 vs 2 threads, 1 vs 2 processes;
//! 3. wake-up latency of `wait_newer` across processes (p50/p99), with the plain
//!    futex wait and with `ReaderOptions::wait_spin`, for a publish every 1 ms
//!    and every 20 µs; and, in the same run, the floor: a bare shared futex
//!    between two processes (a counter bumped and woken, no shmstate), timed
//!    the same way.
//!
//! `cargo bench --bench contention` runs it (~25 s). Without `--bench` (e.g.
//! `cargo test --benches`) it runs a short smoke pass. Child processes are this
//! same binary, re-executed with `SHMSTATE_BENCH_ROLE` set.

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rustix::thread::futex;
use shmstate::{Generation, Reader, Writer};
use types::{mono_ns, pct, BenchName, Config, Small};

const ROLE: &str = "SHMSTATE_BENCH_ROLE";

struct Scale {
    publish_secs: f64,
    scale_secs: f64,
    rounds: usize,
    wakeups: usize,
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    // `cargo bench` passes `--bench` (full run); `cargo test --benches` does
    // not (a smoke run); QUICK=1 makes `cargo bench` a smoke run too.
    let full = std::env::args().any(|a| a == "--bench") && std::env::var("QUICK").map_or(true, |q| q != "1");
    let s = if full {
        Scale { publish_secs: 1.5, scale_secs: 0.5, rounds: 5, wakeups: 2000 }
    } else {
        Scale { publish_secs: 0.05, scale_secs: 0.02, rounds: 1, wakeups: 20 }
    };
    publish_under_readers(&s);
    reader_scaling_threads(&s);
    reader_scaling_processes(&s);
    for (interval_ns, spin_us) in [(1_000_000, 0), (1_000_000, 50), (20_000, 0), (20_000, 50)] {
        let ours = wakeup_latency(&s, interval_ns, spin_us);
        if spin_us == 0 {
            let floor = bare_futex_latency(&s, interval_ns);
            println!("wait_newer p50 / bare futex p50: {:.2}x (+{:.1} us)", ours / floor, (ours - floor) / 1e3);
        }
    }
}

fn child(role: &str) {
    let parts: Vec<&str> = role.split(':').collect();
    match parts.as_slice() {
        ["reader", name, start, dur] => {
            let mut r = Reader::<Config>::open(name).expect("child open");
            let start: u64 = start.parse().expect("start");
            let dur: u64 = dur.parse().expect("dur");
            let _ = r.read().expect("first read");
            while mono_ns() < start {
                std::hint::spin_loop();
            }
            let (n, ns) = read_for(&mut r, Duration::from_nanos(dur));
            println!("reads {n} {ns}");
        }
        ["waiter", name, n, spin_us] => {
            let n: usize = n.parse().expect("n");
            let spin = Duration::from_micros(spin_us.parse().expect("spin"));
            let mut r = Reader::<Small>::options().wait_spin(spin).open(name).expect("child open");
            let mut g = r.generation();
            // The parent publishes `n` generations after this one.
            let last = g.get() + n as u64;
            println!("ready");
            let mut lat = Vec::with_capacity(n);
            while g.get() < last {
                match r.wait_newer(g, Duration::from_secs(5)) {
                    Ok(now) => {
                        let t = mono_ns();
                        let s = r.read().expect("read");
                        // Only when the read returns the generation the wait saw:
                        // otherwise its timestamp belongs to a later publish.
                        if s.generation() == now {
                            lat.push(t.saturating_sub(s.ids[0].to_native()));
                        }
                        g = now.max(s.generation());
                    }
                    Err(e) => {
                        eprintln!("waiter: {e}");
                        break;
                    }
                }
            }
            let line: Vec<String> = lat.iter().map(u64::to_string).collect();
            println!("lat {}", line.join(" "));
        }
        ["futex", path, n] => {
            let n: u32 = n.parse().expect("n");
            let shared = FutexPage::open(path);
            let (word, stamp) = shared.words();
            println!("ready");
            let mut seen = word.load(Ordering::Acquire);
            let mut lat = Vec::with_capacity(n as usize);
            // The slice `wait_newer` sleeps in (100 ms), so both arm a timer.
            let slice = futex::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
            while seen < n {
                // EAGAIN (already bumped), timeouts and spurious returns: look again.
                let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&slice));
                let t = mono_ns();
                // SYNC(floor): Acquire pairs with the parent's Release bump.
                let now = word.load(Ordering::Acquire);
                if now == seen + 1 {
                    lat.push(t.saturating_sub(stamp.load(Ordering::Relaxed)));
                }
                seen = now;
            }
            let line: Vec<String> = lat.iter().map(u64::to_string).collect();
            println!("lat {}", line.join(" "));
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Reads an unchanged generation in a loop for `dur`; returns (reads, elapsed ns).
fn read_for(r: &mut Reader<Config>, dur: Duration) -> (u64, u64) {
    let t = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..1024 {
            let s = r.read().expect("read");
            black_box(s.max_connections.to_native());
        }
        n += 1024;
        let e = t.elapsed();
        if e >= dur {
            return (n, e.as_nanos() as u64);
        }
    }
}

fn involuntary_switches() -> i64 {
    // SAFETY: `getrusage` only writes the zeroed struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_nivcsw
    }
}

fn publish_under_readers(s: &Scale) {
    println!(
        "\n== publish latency, 10 KB snapshot, {} s per row (writer thread + N reader threads, 2 vCPUs)",
        s.publish_secs
    );
    println!("   table = reader-table pins (no syscalls); locks = lock_pins(true) (OFD locks)");
    println!(
        "{:<7} {:<8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>14} {:>10}",
        "pins", "readers", "publishes", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "reads/s total", "wr ivcsw"
    );
    let values = [types::config(1), types::config(2)];
    for (lock_pins, readers) in [(false, 0usize), (false, 1), (false, 2), (true, 0), (true, 2)] {
        let name = BenchName::new("pubrd");
        let mut w = Writer::<Config>::options().lock_pins(lock_pins).create(name.as_str()).expect("create");
        w.publish(&values[0]).expect("publish");
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(readers + 1));
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                let (stop, reads, barrier) = (stop.clone(), reads.clone(), barrier.clone());
                let mut r = Reader::<Config>::open(name.as_str()).expect("open");
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let s = r.read().expect("read");
                        black_box(s.endpoints.len());
                        n += 1;
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        barrier.wait();
        let mut lat = Vec::with_capacity(1 << 20);
        let cs0 = involuntary_switches();
        let t = Instant::now();
        let dur = Duration::from_secs_f64(s.publish_secs);
        let mut i = 0usize;
        while t.elapsed() < dur {
            i += 1;
            let t0 = Instant::now();
            w.publish(&values[i & 1]).expect("publish");
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        let cs = involuntary_switches() - cs0;
        let el = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().for_each(|h| h.join().expect("reader thread"));
        lat.sort_unstable();
        println!(
            "{:<7} {:<8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>14.0} {:>10}",
            if lock_pins { "locks" } else { "table" },
            readers,
            lat.len(),
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            lat.last().copied().unwrap_or(0),
            reads.load(Ordering::Relaxed) as f64 / el,
            cs
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reader_scaling_threads(s: &Scale) {
    println!(
        "\n== reader scaling, unchanged generation (10 KB), threads: median of {} rounds of {} s",
        s.rounds, s.scale_secs
    );
    let name = BenchName::new("scale");
    let mut w = Writer::<Config>::create(name.as_str()).expect("create");
    w.publish(&types::config(1)).expect("publish");
    let mut rates = [0.0f64; 2];
    for threads in [1usize, 2] {
        let mut per_round = Vec::new();
        for _ in 0..s.rounds {
            let barrier = Arc::new(Barrier::new(threads));
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    let mut r = Reader::<Config>::open(name.as_str()).expect("open");
                    let barrier = barrier.clone();
                    let dur = Duration::from_secs_f64(s.scale_secs);
                    std::thread::spawn(move || {
                        let _ = r.read().expect("first read");
                        barrier.wait();
                        let (n, ns) = read_for(&mut r, dur);
                        n as f64 * 1e9 / ns as f64
                    })
                })
                .collect();
            per_round.push(hs.into_iter().map(|h| h.join().expect("thread")).sum::<f64>());
        }
        rates[threads - 1] = median(per_round);
        println!(
            "{threads} thread(s): {:>8.1} M reads/s total ({:.2} ns/read/thread)",
            rates[threads - 1] / 1e6,
            threads as f64 * 1e9 / rates[threads - 1]
        );
    }
    println!("scaling 2 threads / 1 thread: {:.2}x", rates[1] / rates[0]);
}

fn spawn_role(role: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

fn reader_scaling_processes(s: &Scale) {
    println!(
        "\n== reader scaling, unchanged generation (10 KB), processes: median of {} rounds of {} s",
        s.rounds, s.scale_secs
    );
    let name = BenchName::new("scalep");
    let mut w = Writer::<Config>::create(name.as_str()).expect("create");
    w.publish(&types::config(1)).expect("publish");
    let dur = (s.scale_secs * 1e9) as u64;
    let mut rates = [0.0f64; 2];
    for procs in [1usize, 2] {
        let mut per_round = Vec::new();
        for _ in 0..s.rounds {
            let start = mono_ns() + 300_000_000;
            let kids: Vec<_> =
                (0..procs).map(|_| spawn_role(&format!("reader:{}:{start}:{dur}", name.as_str()))).collect();
            let mut total = 0.0;
            for k in kids {
                let out = k.wait_with_output().expect("child");
                let text = String::from_utf8_lossy(&out.stdout);
                let line = text.lines().find_map(|l| l.strip_prefix("reads ")).expect("child result");
                let mut it = line.split(' ').map(|x| x.parse::<f64>().expect("number"));
                let (n, ns) = (it.next().expect("n"), it.next().expect("ns"));
                total += n * 1e9 / ns;
            }
            per_round.push(total);
        }
        rates[procs - 1] = median(per_round);
        println!("{procs} process(es): {:>8.1} M reads/s total", rates[procs - 1] / 1e6);
    }
    println!("scaling 2 processes / 1 process: {:.2}x", rates[1] / rates[0]);
}

/// Sleeps for 1 ms and more, busy-waits below.
fn pause(interval_ns: u64) {
    if interval_ns >= 1_000_000 {
        std::thread::sleep(Duration::from_nanos(interval_ns));
    } else {
        let until = mono_ns() + interval_ns;
        while mono_ns() < until {
            std::hint::spin_loop();
        }
    }
}

/// A page of `/dev/shm` shared by the parent and a child: a futex word and
/// the time of its last bump. The floor under `wait_newer`'s wake-up.
struct FutexPage {
    map: memmap2::MmapMut,
    path: String,
}

impl FutexPage {
    fn create() -> Self {
        let path = format!("/dev/shm/shmstate-bench-futex-{}", std::process::id());
        let file =
            std::fs::File::options().read(true).write(true).create(true).truncate(true).open(&path).expect("file");
        file.set_len(4096).expect("size");
        Self::map(file, path)
    }

    fn open(path: &str) -> Self {
        let file = std::fs::File::options().read(true).write(true).open(path).expect("file");
        Self::map(file, path.to_string())
    }

    fn map(file: std::fs::File, path: String) -> Self {
        // SAFETY: a file of ours, mapped shared; the two processes touch its
        // bytes only through the atomics of `words`.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.expect("mmap");
        FutexPage { map, path }
    }

    fn words(&self) -> (&AtomicU32, &AtomicU64) {
        let base = self.map.as_ptr();
        // SAFETY: the mapping is page-aligned and 4096 bytes long, lives as long
        // as `self`, and is only accessed atomically (by both processes).
        unsafe { (&*base.cast::<AtomicU32>(), &*base.add(8).cast::<AtomicU64>()) }
    }
}

/// The same measurement as `wakeup_latency` without shmstate: the parent
/// stamps the time, bumps a shared futex word and wakes it; a child process
/// blocked in `futex_wait` on it notes when it returns. Returns p50 in ns.
fn bare_futex_latency(s: &Scale, interval_ns: u64) -> f64 {
    println!(
        "\n== floor: bare shared futex across processes (publish every {} us, {} bumps)",
        interval_ns / 1000,
        s.wakeups
    );
    let page = FutexPage::create();
    let (word, stamp) = page.words();
    let mut kid = spawn_role(&format!("futex:{}:{}", page.path, s.wakeups));
    let mut out = BufReader::new(kid.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready", "child did not start");
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..s.wakeups {
        pause(interval_ns);
        stamp.store(mono_ns(), Ordering::Relaxed);
        // SYNC(floor): Release pairs with the child's Acquire load.
        word.fetch_add(1, Ordering::Release);
        futex::wake(word, futex::Flags::empty(), 1).expect("futex wake");
    }
    line.clear();
    out.read_line(&mut line).expect("result line");
    kid.wait().expect("child exit");
    let _ = std::fs::remove_file(&page.path);
    report(line, s.wakeups, s.wakeups as u64)
}

/// Prints the percentiles of a child's `lat ...` line; returns p50 in ns.
fn report(line: String, sent: usize, last: u64) -> f64 {
    let mut lat: Vec<u64> =
        line.trim().strip_prefix("lat").unwrap_or("").split_whitespace().map(|x| x.parse().expect("ns")).collect();
    lat.sort_unstable();
    println!(
        "samples {} of {sent} publishes (last generation {last}): p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        lat.len(),
        pct(&lat, 50.0) as f64 / 1e3,
        pct(&lat, 99.0) as f64 / 1e3,
        pct(&lat, 99.9) as f64 / 1e3,
        lat.last().copied().unwrap_or(0) as f64 / 1e3
    );
    pct(&lat, 50.0) as f64
}

/// Publishes `s.wakeups` times, one every `interval_ns` (a sleep for 1 ms and
/// more, a busy wait below), to a child waiting with `wait_spin(spin_us)`.
/// Returns p50 in ns.
fn wakeup_latency(s: &Scale, interval_ns: u64, spin_us: u64) -> f64 {
    println!(
        "\n== wake-up latency of wait_newer across processes (100 B snapshot, publish every {} us, wait_spin {} us, {} publishes)",
        interval_ns / 1000,
        spin_us,
        s.wakeups
    );
    println!("   measured from just before publish() to just after wait_newer returns in the child (CLOCK_MONOTONIC)");
    let name = BenchName::new("wake");
    let mut w = Writer::<Small>::create(name.as_str()).expect("create");
    let mut v = types::small(0);
    v.ids[0] = mono_ns();
    w.publish(&v).expect("publish");
    let mut kid = spawn_role(&format!("waiter:{}:{}:{spin_us}", name.as_str(), s.wakeups));
    let mut out = BufReader::new(kid.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready", "child did not start");
    std::thread::sleep(Duration::from_millis(50));
    let mut last = Generation::NONE;
    for _ in 0..s.wakeups {
        pause(interval_ns);
        v.generation += 1;
        v.ids[0] = mono_ns();
        last = w.publish(&v).expect("publish");
    }
    line.clear();
    out.read_line(&mut line).expect("result line");
    kid.wait().expect("child exit");
    report(line, s.wakeups, last.get())
}
