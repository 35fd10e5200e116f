//! Side-by-side comparison, one run, interleaved: shmstate vs mmap-sync 2.0.4
//! vs the iceoryx2 blackboard vs plain rkyv on a heap buffer (the floor).
//!
//! `cargo run --release` from `benches/compare` (see BENCHMARKS.md). Prints
//! one markdown table with ratios to shmstate, writes `results/latest.csv`
//! and the plots in `../plots/`. `QUICK=1` makes a short smoke run;
//! `CLOCK=cpu` times the batched rows in thread CPU time (a loaded machine).
//!
//! Timing: batched `Instant` loops calibrated to ~4 ms per sample; each
//! implementation's sample is taken in turn (round-robin) and the figure is
//! the median over rounds.
//! `shmstate`'s new-generation read is measured as
//! `release_and_forget_validation()` + `read()`: the same pin + re-check +
//! bytecheck path, without a publish in the loop. (A plain `release()` +
//! `read()` of the same generation skips the second bytecheck.)

#[path = "../../common/types.rs"]
mod types;

mod m07;
mod plot;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mmap_sync::locks::LockDisabled;
use mmap_sync::synchronizer::Synchronizer;
use rkyv07::ser::serializers::AllocSerializer;
use rkyv07::validation::validators::DefaultValidator;
use shmstate::rkyv::rancor::BoxedError;
use shmstate::{Reader, Shared, Writer};
use types::{pct, BenchName};
use wyhash::WyHash;

/// mmap-sync with its defaults (writer sleep-poll 1 s).
type MsDefault = Synchronizer;
/// mmap-sync with a 10 µs writer sleep-poll: the tuning a latency-sensitive user picks.
type MsTuned = Synchronizer<WyHash, LockDisabled, 1024, 10_000>;

const SHM: &str = "shmstate";
/// shmstate with `WriterOptions::lock_pins(true)`: readers pin slots with OFD read locks.
const SHM_LOCK: &str = "shmstate lock pins";
const MS: &str = "mmap-sync";
const MS_CHECKED: &str = "mmap-sync checked";
const MS_RAW: &str = "mmap-sync write_raw";
const ICE: &str = "iceoryx2 blackboard";
const RKYV: &str = "rkyv heap (floor)";

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: String,
    pub size: String,
    pub bytes: usize,
    pub imp: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

struct Cfg {
    rounds: usize,
    sample: Duration,
    thread_secs: f64,
    torn_secs: f64,
    publish_secs: f64,
}

struct Case<'a> {
    imp: &'static str,
    f: Box<dyn FnMut(u64) -> Duration + 'a>,
    iters: u64,
    samples: Vec<f64>,
}

impl<'a> Case<'a> {
    fn new(imp: &'static str, f: impl FnMut(u64) -> Duration + 'a) -> Self {
        Case { imp, f: Box::new(f), iters: 1, samples: Vec::new() }
    }
}

/// Times `body` `iters` times as one batch: wall time, or with `CLOCK=cpu`
/// this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the
/// time the scheduler gave other processes: for a shared, loaded machine.
fn batch(iters: u64, mut body: impl FnMut()) -> Duration {
    if cpu_clock() {
        let t = thread_cpu_time();
        for _ in 0..iters {
            body();
        }
        return thread_cpu_time().saturating_sub(t);
    }
    let t = Instant::now();
    for _ in 0..iters {
        body();
    }
    t.elapsed()
}

/// Whether `CLOCK=cpu` asks `batch` for thread CPU time.
fn cpu_clock() -> bool {
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CPU.get_or_init(|| std::env::var("CLOCK").is_ok_and(|c| c == "cpu"))
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Calibrates every case, then samples them round-robin; returns medians (ns/op).
fn run_cases(cfg: &Cfg, cases: &mut [Case]) -> Vec<(&'static str, f64)> {
    for c in cases.iter_mut() {
        loop {
            let d = (c.f)(c.iters);
            if d >= cfg.sample / 2 || c.iters >= 1 << 30 {
                let per = d.as_nanos() as f64 / c.iters as f64;
                c.iters = ((cfg.sample.as_nanos() as f64 / per.max(0.01)) as u64).max(1);
                break;
            }
            c.iters *= 4;
        }
    }
    for _ in 0..cfg.rounds {
        for c in cases.iter_mut() {
            let d = (c.f)(c.iters);
            c.samples.push(d.as_nanos() as f64 / c.iters as f64);
        }
    }
    cases.iter_mut().map(|c| (c.imp, median(&mut c.samples))).collect()
}

/// Cost of an `Instant::now()` + `elapsed()` pair, subtracted from per-op timings.
fn instant_overhead() -> f64 {
    let mut s: Vec<f64> = (0..21)
        .map(|_| {
            let n = 100_000u64;
            let mut acc = Duration::ZERO;
            let t = Instant::now();
            for _ in 0..n {
                let t0 = Instant::now();
                acc += black_box(t0).elapsed();
            }
            black_box(acc);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    median(&mut s)
}

fn ms_prefix(what: &str) -> (String, OsString) {
    let p = format!("/dev/shm/shmstate-compare-{}-{what}", std::process::id());
    (p.clone(), OsString::from(p))
}

fn ms_cleanup(p: &str) {
    for suffix in ["_state", "_data_0", "_data_1"] {
        let _ = std::fs::remove_file(format!("{p}{suffix}"));
    }
}

type Shm08<T> = <T as shmstate::rkyv::Archive>::Archived;

/// Everything one snapshot size needs.
struct Size<T: shmstate::rkyv::Archive, U: rkyv07::Archive> {
    label: &'static str,
    make: fn(u64) -> T,
    conv: fn(&T) -> U,
    touch: fn(&Shm08<T>) -> u64,
    touch07: fn(&<U as rkyv07::Archive>::Archived) -> u64,
}

trait To08Bytes {
    fn bytes08(&self) -> shmstate::rkyv::util::AlignedVec;
}

impl<T> To08Bytes for T
where
    T: for<'a> shmstate::rkyv::Serialize<
        shmstate::rkyv::api::high::HighSerializer<
            shmstate::rkyv::util::AlignedVec,
            shmstate::rkyv::ser::allocator::ArenaHandle<'a>,
            BoxedError,
        >,
    >,
{
    fn bytes08(&self) -> shmstate::rkyv::util::AlignedVec {
        shmstate::rkyv::to_bytes::<BoxedError>(self).expect("to_bytes")
    }
}

fn size_suite<T, U, const N: usize>(cfg: &Cfg, rows: &mut Vec<Row>, s: Size<T, U>)
where
    T: Shared + To08Bytes,
    U: rkyv07::Archive + rkyv07::Serialize<AllocSerializer<1024>>,
    U::Archived: for<'b> rkyv07::CheckBytes<DefaultValidator<'b>>,
{
    let values = [(s.make)(1), (s.make)(2)];
    let values07 = [(s.conv)(&values[0]), (s.conv)(&values[1])];
    let heap = values[0].bytes08();
    let bytes = heap.len();
    let size = s.label.to_string();
    let mut push = |scenario: &str, res: Vec<(&'static str, f64)>, _: &[&str]| {
        for (imp, v) in res {
            rows.push(Row { scenario: scenario.into(), size: size.clone(), bytes, imp, value: v, unit: "ns" });
        }
    };

    // shmstate
    let name = BenchName::new(&format!("cmp-{}", s.label));
    let mut w = Writer::<T>::create(name.as_str()).expect("create");
    w.publish(&values[0]).expect("publish");
    let mut r = Reader::<T>::open(name.as_str()).expect("open");
    // shmstate, lock pins
    let lname = BenchName::new(&format!("cmp-lock-{}", s.label));
    let mut wl = Writer::<T>::options().lock_pins(true).create(lname.as_str()).expect("create (lock pins)");
    wl.publish(&values[0]).expect("publish");
    let mut rl = Reader::<T>::open(lname.as_str()).expect("open (lock pins)");
    // mmap-sync
    let (ms_path, ms_os) = ms_prefix(s.label);
    ms_cleanup(&ms_path);
    let mut msw = MsDefault::new(&ms_os);
    msw.write(&values07[0], Duration::from_secs(10)).expect("mmap-sync write");
    let mut msr = MsDefault::new(&ms_os);
    let raw07 = rkyv07::to_bytes::<_, 1024>(&values07[0]).expect("rkyv 0.7 bytes");
    #[cfg(feature = "iceoryx2")]
    let ice = ice::Board::<N>::new(s.label, &heap);
    #[cfg(not(feature = "iceoryx2"))]
    let _ = N;

    // 1. Read of an unchanged generation.
    {
        let (touch, touch07) = (s.touch, s.touch07);
        let (r, rl, msr, heap, mut ms2) = (&mut r, &mut rl, &mut msr, &heap, MsDefault::new(&ms_os));
        let mut cases = vec![
            Case::new(SHM, move |n| {
                batch(n, || {
                    black_box(touch(&r.read().expect("read")));
                })
            }),
            Case::new(SHM_LOCK, move |n| {
                batch(n, || {
                    black_box(touch(&rl.read().expect("read")));
                })
            }),
            Case::new(MS, move |n| {
                batch(n, || {
                    // SAFETY: nothing writes while we read; the guard drops at once.
                    let g = unsafe { msr.read::<U>(false) }.expect("mmap-sync read");
                    black_box(touch07(&g));
                })
            }),
            Case::new(MS_CHECKED, move |n| {
                batch(n, || {
                    // SAFETY: as above.
                    let g = unsafe { ms2.read::<U>(true) }.expect("mmap-sync read");
                    black_box(touch07(&g));
                })
            }),
            Case::new(RKYV, move |n| {
                batch(n, || {
                    // SAFETY: `heap` holds a valid archive of `T` (rkyv::to_bytes).
                    let a = unsafe { shmstate::rkyv::access_unchecked::<Shm08<T>>(black_box(heap)) };
                    black_box(touch(a));
                })
            }),
        ];
        #[cfg(feature = "iceoryx2")]
        cases.push(Case::new(ICE, |n| {
            batch(n, || {
                let v = ice.get();
                // SAFETY: the blackboard holds the archive we stored (trusted, like mmap-sync unchecked).
                let a = unsafe { shmstate::rkyv::access_unchecked::<Shm08<T>>(v.bytes()) };
                black_box(touch(a));
            })
        }));
        push("read, unchanged generation", run_cases(cfg, &mut cases), &[]);
    }

    // 2. Read of a new generation (validated). shmstate: pin + bytecheck once.
    {
        let (touch, touch07) = (s.touch, s.touch07);
        let (r, rl, msr, heap) = (&mut r, &mut rl, &mut msr, &heap);
        let mut cases = vec![
            // Dropping the pin, the cached view and the validation record makes
            // the next `read` take the new-generation path: pin, re-check,
            // locate, bytecheck.
            Case::new(SHM, move |n| {
                batch(n, || {
                    r.release_and_forget_validation();
                    black_box(touch(&r.read().expect("read")));
                })
            }),
            // Lock pins: `release` is an unlock syscall, the pin a lock syscall.
            Case::new(SHM_LOCK, move |n| {
                batch(n, || {
                    rl.release_and_forget_validation();
                    black_box(touch(&rl.read().expect("read")));
                })
            }),
            Case::new(MS_CHECKED, move |n| {
                batch(n, || {
                    // SAFETY: nothing writes while we read.
                    let g = unsafe { msr.read::<U>(true) }.expect("mmap-sync read");
                    black_box(touch07(&g));
                })
            }),
            Case::new(RKYV, move |n| {
                batch(n, || {
                    let a = shmstate::rkyv::access::<Shm08<T>, BoxedError>(black_box(heap)).expect("access");
                    black_box(touch(a));
                })
            }),
        ];
        #[cfg(feature = "iceoryx2")]
        cases.push(Case::new(ICE, |n| {
            batch(n, || {
                let v = ice.get();
                let a = shmstate::rkyv::access::<Shm08<T>, BoxedError>(v.bytes()).expect("access");
                black_box(touch(a));
            })
        }));
        push("read, new generation (validated)", run_cases(cfg, &mut cases), &[]);
    }

    // 3. Publish (no readers).
    {
        let (w, wl, values, values07, raw07) = (&mut w, &mut wl, &values, &values07, &raw07);
        let mut msw2 = MsDefault::new(&ms_os);
        let msw = &mut msw;
        let (mut i, mut il, mut j, mut k) = (0usize, 0usize, 0usize, 0usize);
        let mut cases = vec![
            Case::new(SHM, move |n| {
                batch(n, || {
                    i += 1;
                    black_box(w.publish(&values[i & 1]).expect("publish"));
                })
            }),
            // Lock pins: a write-lock probe and an unlock per publish. The reader
            // `rl` still holds its read lock on the slot it last read.
            Case::new(SHM_LOCK, move |n| {
                batch(n, || {
                    il += 1;
                    black_box(wl.publish(&values[il & 1]).expect("publish"));
                })
            }),
            Case::new(MS, move |n| {
                batch(n, || {
                    j += 1;
                    black_box(msw.write(&values07[j & 1], Duration::from_secs(10)).expect("write"));
                })
            }),
            Case::new(MS_RAW, move |n| {
                batch(n, || {
                    black_box(msw2.write_raw::<U>(raw07, Duration::from_secs(10)).expect("write_raw"));
                })
            }),
            Case::new(RKYV, move |n| {
                batch(n, || {
                    k += 1;
                    black_box(values[k & 1].bytes08());
                })
            }),
        ];
        #[cfg(feature = "iceoryx2")]
        {
            let mut m = 0usize;
            cases.push(Case::new(ICE, move |n| {
                batch(n, || {
                    m += 1;
                    ice.publish(&values[m & 1].bytes08());
                })
            }));
        }
        push("publish", run_cases(cfg, &mut cases), &[]);
    }
    drop(msr);
    drop(msw);
    ms_cleanup(&ms_path);
    eprintln!("  done: {} ({} archived bytes)", s.label, bytes);
}

fn alu(n: u64) -> u64 {
    let mut x = n | 1;
    for _ in 0..1024 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    x
}

/// Reads per second summed over `threads` threads, each with its own handle.
fn scaling(cfg: &Cfg, rows: &mut Vec<Row>) {
    let name = BenchName::new("cmp-scale");
    let mut w = Writer::<types::Config>::create(name.as_str()).expect("create");
    w.publish(&types::config(1)).expect("publish");
    let (ms_path, ms_os) = ms_prefix("scale");
    ms_cleanup(&ms_path);
    MsDefault::new(&ms_os).write(&m07::config(&types::config(1)), Duration::from_secs(10)).expect("write");
    #[cfg(feature = "iceoryx2")]
    let _ice = ice::Board::<16384>::new("scale", &types::config(1).bytes08());
    let dur = Duration::from_secs_f64(cfg.thread_secs);
    let mut imps: Vec<&'static str> = vec![SHM, MS, "reference: ALU loop, no sharing"];
    if cfg!(feature = "iceoryx2") {
        imps.push(ICE);
    }
    let mut res: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    for _ in 0..cfg.rounds.min(5) {
        for &imp in &imps {
            for threads in [1usize, 2] {
                let barrier = Arc::new(Barrier::new(threads));
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        let (barrier, name, ms_os) = (barrier.clone(), name.0.clone(), ms_os.clone());
                        std::thread::spawn(move || {
                            let mut reader = Reader::<types::Config>::open(&name).expect("open");
                            let mut ms = MsDefault::new(&ms_os);
                            #[cfg(feature = "iceoryx2")]
                            let board = if imp == ICE { Some(ice::Board::<16384>::open("scale")) } else { None };
                            barrier.wait();
                            let t = Instant::now();
                            let mut count = 0u64;
                            while t.elapsed() < dur {
                                for _ in 0..256 {
                                    match imp {
                                        SHM => {
                                            black_box(reader.read().expect("read").max_connections.to_native());
                                        }
                                        MS => {
                                            // SAFETY: guard dropped at once; writer idle.
                                            let g = unsafe { ms.read::<m07::Config>(false) }.expect("read");
                                            black_box(g.max_connections);
                                        }
                                        #[cfg(feature = "iceoryx2")]
                                        ICE => {
                                            black_box(board.as_ref().expect("board").get().len);
                                        }
                                        _ => {
                                            black_box(alu(count));
                                        }
                                    }
                                }
                                count += 256;
                            }
                            count as f64 / t.elapsed().as_secs_f64()
                        })
                    })
                    .collect();
                let total: f64 = hs.into_iter().map(|h| h.join().expect("thread")).sum();
                res.entry((imp, threads)).or_default().push(total);
            }
        }
    }
    for &imp in &imps {
        let one = median(res.get_mut(&(imp, 1)).expect("1"));
        let two = median(res.get_mut(&(imp, 2)).expect("2"));
        for (scenario, v, unit) in [
            ("reads/s, 1 thread", one, "op/s"),
            ("reads/s, 2 threads", two, "op/s"),
            ("scaling 2 threads / 1", two / one, "x"),
        ] {
            rows.push(Row { scenario: scenario.into(), size: "10KB".into(), bytes: 0, imp, value: v, unit });
        }
    }
    ms_cleanup(&ms_path);
}

/// Publish latency percentiles with 0 and 2 reader threads reading flat out.
fn publish_under_readers(cfg: &Cfg, rows: &mut Vec<Row>) {
    let dur = Duration::from_secs_f64(cfg.publish_secs);
    let values = [types::config(1), types::config(2)];
    let values07 = [m07::config(&values[0]), m07::config(&values[1])];
    for imp in [SHM, SHM_LOCK, MS] {
        for readers in [0usize, 2] {
            let name = BenchName::new("cmp-pubrd");
            let (ms_path, ms_os) = ms_prefix("pubrd");
            ms_cleanup(&ms_path);
            let mut w =
                Writer::<types::Config>::options().lock_pins(imp == SHM_LOCK).create(name.as_str()).expect("create");
            w.publish(&values[0]).expect("publish");
            let mut msw = MsTuned::with_params(&ms_os);
            msw.write(&values07[0], Duration::from_secs(10)).expect("write");
            let stop = Arc::new(AtomicBool::new(false));
            let barrier = Arc::new(Barrier::new(readers + 1));
            let hs: Vec<_> = (0..readers)
                .map(|_| {
                    let (stop, barrier, name, ms_os) = (stop.clone(), barrier.clone(), name.0.clone(), ms_os.clone());
                    std::thread::spawn(move || {
                        let mut r = Reader::<types::Config>::open(&name).expect("open");
                        let mut ms = MsTuned::with_params(&ms_os);
                        barrier.wait();
                        while !stop.load(Ordering::Relaxed) {
                            if imp != MS {
                                black_box(r.read().expect("read").endpoints.len());
                            } else {
                                // SAFETY: grace is 10 s; the guard is dropped at once.
                                let g = unsafe { ms.read::<m07::Config>(false) }.expect("read");
                                black_box(g.endpoints.len());
                            }
                        }
                    })
                })
                .collect();
            barrier.wait();
            let mut lat = Vec::with_capacity(1 << 20);
            let t = Instant::now();
            let mut i = 0usize;
            while t.elapsed() < dur {
                i += 1;
                let t0 = Instant::now();
                if imp != MS {
                    w.publish(&values[i & 1]).expect("publish");
                } else {
                    msw.write(&values07[i & 1], Duration::from_secs(10)).expect("write");
                }
                lat.push(t0.elapsed().as_nanos() as u64);
            }
            stop.store(true, Ordering::Relaxed);
            hs.into_iter().for_each(|h| h.join().expect("reader"));
            lat.sort_unstable();
            let label = if imp == MS { "mmap-sync (SD=10us)" } else { imp };
            let imp_name: &'static str = imp;
            eprintln!("  publish with {readers} readers, {label}: {} publishes", lat.len());
            for (p, pv) in [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)] {
                rows.push(Row {
                    scenario: format!("publish {p}, {readers} reader threads"),
                    size: "10KB".into(),
                    bytes: 0,
                    imp: imp_name,
                    value: pct(&lat, pv) as f64,
                    unit: "ns",
                });
            }
            rows.push(Row {
                scenario: format!("publish max, {readers} reader threads"),
                size: "10KB".into(),
                bytes: 0,
                imp: imp_name,
                value: *lat.last().unwrap_or(&0) as f64,
                unit: "ns",
            });
            ms_cleanup(&ms_path);
        }
    }
}

/// Torn-read probe: a writer thread publishing as fast as it can, 2 reader
/// threads checking every word of a fixed-layout snapshot equals its `seq`.
fn torn(cfg: &Cfg, rows: &mut Vec<Row>) {
    let dur = Duration::from_secs_f64(cfg.torn_secs);
    for imp in [SHM, SHM_LOCK, MS] {
        let name = BenchName::new("cmp-torn");
        let (ms_path, ms_os) = ms_prefix("torn");
        ms_cleanup(&ms_path);
        let mut w = Writer::<types::Probe>::options().lock_pins(imp == SHM_LOCK).create(name.as_str()).expect("create");
        w.publish(&types::probe(1)).expect("publish");
        let mut msw = MsTuned::with_params(&ms_os);
        msw.write(&m07::probe(&types::probe(1)), Duration::from_secs(10)).expect("write");
        let stop = Arc::new(AtomicBool::new(false));
        let (reads, torn, shown) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (stop, reads, torn, shown, name, ms_os) =
                    (stop.clone(), reads.clone(), torn.clone(), shown.clone(), name.0.clone(), ms_os.clone());
                std::thread::spawn(move || {
                    let mut r = Reader::<types::Probe>::open(&name).expect("open");
                    let mut ms = MsTuned::with_params(&ms_os);
                    let mut buf = Vec::with_capacity(types::PROBE_WORDS);
                    let (mut n, mut bad) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let res = if imp != MS {
                            let s = r.read().expect("read");
                            buf.clear();
                            buf.extend(s.payload.iter().map(|x| x.to_native()));
                            types::probe_check(s.seq.to_native(), s.seq_tail.to_native(), &buf)
                        } else {
                            // SAFETY: grace is 10 s and the guard lives only for this check.
                            let g = unsafe { ms.read::<m07::Probe>(false) }.expect("read");
                            types::probe_check(g.seq, g.seq_tail, &g.payload)
                        };
                        n += 1;
                        if let Err((seq, tail, min, max)) = res {
                            bad += 1;
                            if shown.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("  TORN ({imp}): seq={seq} seq_tail={tail} payload min={min} max={max}");
                            }
                        }
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                    torn.fetch_add(bad, Ordering::Relaxed);
                })
            })
            .collect();
        // mmap-sync writes pre-serialized archives with write_raw (as in
        // docs/PEERS.md), cycling through RING distinct generations so the
        // writer runs at full speed; a torn view mixes two of them.
        const RING: u64 = 1024;
        let raw: Vec<_> = if imp == MS {
            (0..RING).map(|k| rkyv07::to_bytes::<_, 1024>(&m07::probe(&types::probe(k + 2))).expect("bytes")).collect()
        } else {
            Vec::new()
        };
        let t = Instant::now();
        let mut g = 1u64;
        let mut resets = 0u64;
        while t.elapsed() < dur {
            for _ in 0..64 {
                g += 1;
                if imp != MS {
                    w.publish(&types::probe(g)).expect("publish");
                } else {
                    let bytes = &raw[((g - 2) % RING) as usize];
                    let (_, reset) = msw.write_raw::<m07::Probe>(bytes, Duration::from_secs(10)).expect("write_raw");
                    resets += reset as u64;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        hs.into_iter().for_each(|h| h.join().expect("reader"));
        let (nr, nt) = (reads.load(Ordering::Relaxed), torn.load(Ordering::Relaxed));
        eprintln!("  torn probe {imp}: {nr} reads, {} writes, {nt} torn, {resets} counter resets", g - 1);
        for (scenario, v, unit) in [
            ("torn probe: reads", nr as f64, "count"),
            ("torn probe: writes", (g - 1) as f64, "count"),
            ("torn probe: torn reads", nt as f64, "count"),
        ] {
            rows.push(Row { scenario: scenario.into(), size: "8KB probe".into(), bytes: 0, imp, value: v, unit });
        }
        ms_cleanup(&ms_path);
    }
}

#[cfg(feature = "iceoryx2")]
mod ice {
    //! An iceoryx2 blackboard entry holding a fixed-size buffer with the rkyv
    //! archive in it: blackboard values must be `Copy` + fixed size, so a
    //! reader `get()` copies the whole buffer out (a seqlock-style copy).
    use iceoryx2::port::reader::{BlackboardValue, EntryHandle};
    use iceoryx2::port::writer::EntryHandleMut;
    use iceoryx2::prelude::*;

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct Buf<const N: usize> {
        pub len: u64,
        pad: u64,
        bytes: [u8; N],
    }

    // SAFETY: `Buf` is `repr(C)`, `Copy`, and holds only plain bytes and integers.
    unsafe impl<const N: usize> ZeroCopySend for Buf<N> {}

    impl<const N: usize> Buf<N> {
        pub fn bytes(&self) -> &[u8] {
            &self.bytes[..self.len as usize]
        }
    }

    pub struct Board<const N: usize> {
        _node: Node<ipc::Service>,
        _service: iceoryx2::service::port_factory::blackboard::PortFactory<ipc::Service, u64>,
        _writer: Option<iceoryx2::port::writer::Writer<ipc::Service, u64>>,
        _reader: iceoryx2::port::reader::Reader<ipc::Service, u64>,
        wh: Option<EntryHandleMut<ipc::Service, u64, Buf<N>>>,
        rh: EntryHandle<ipc::Service, u64, Buf<N>>,
    }

    fn service_name(label: &str) -> String {
        format!("shmstate-compare/{}/{label}", std::process::id())
    }

    impl<const N: usize> Board<N> {
        pub fn new(label: &str, archive: &[u8]) -> Self {
            let node = NodeBuilder::new().create::<ipc::Service>().expect("iceoryx2 node");
            let name: ServiceName = service_name(label).as_str().try_into().expect("service name");
            let service = node
                .service_builder(&name)
                .blackboard_creator::<u64>()
                .max_readers(8)
                .add::<Buf<N>>(0, Self::fill(archive))
                .create()
                .expect("blackboard create");
            let writer = service.writer_builder().create().expect("writer");
            let wh = writer.entry::<Buf<N>>(&0).expect("writer entry");
            let reader = service.reader_builder().create().expect("reader");
            let rh = reader.entry::<Buf<N>>(&0).expect("reader entry");
            Board { _node: node, _service: service, _writer: Some(writer), _reader: reader, wh: Some(wh), rh }
        }

        pub fn open(label: &str) -> Self {
            let node = NodeBuilder::new().create::<ipc::Service>().expect("iceoryx2 node");
            let name: ServiceName = service_name(label).as_str().try_into().expect("service name");
            let service = node.service_builder(&name).blackboard_opener::<u64>().open().expect("blackboard open");
            let reader = service.reader_builder().create().expect("reader");
            let rh = reader.entry::<Buf<N>>(&0).expect("reader entry");
            Board { _node: node, _service: service, _writer: None, _reader: reader, wh: None, rh }
        }

        fn fill(archive: &[u8]) -> Buf<N> {
            assert!(archive.len() <= N, "archive of {} bytes does not fit {N}", archive.len());
            let mut b = Buf { len: archive.len() as u64, pad: 0, bytes: [0; N] };
            b.bytes[..archive.len()].copy_from_slice(archive);
            b
        }

        pub fn get(&self) -> BlackboardValue<Buf<N>> {
            self.rh.get()
        }

        pub fn publish(&self, archive: &[u8]) {
            self.wh.as_ref().expect("writer").update_with_copy(Self::fill(archive));
        }
    }
}

fn print_table(rows: &[Row]) -> String {
    use std::fmt::Write;
    let imps = [SHM, SHM_LOCK, MS, MS_CHECKED, MS_RAW, ICE, RKYV, "reference: ALU loop, no sharing"];
    let mut out = String::new();
    let present: Vec<&str> = imps.iter().copied().filter(|i| rows.iter().any(|r| r.imp == *i)).collect();
    let _ = write!(out, "| scenario | size |");
    for i in &present {
        let _ = write!(out, " {i} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(present.len()));
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.scenario.clone(), r.size.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (scenario, size) in keys {
        let get = |imp: &str| rows.iter().find(|r| r.scenario == scenario && r.size == size && r.imp == imp);
        let base = get(SHM).map(|r| r.value);
        let _ = write!(out, "| {scenario} | {size} |");
        for imp in &present {
            match get(imp) {
                None => out.push_str(" – |"),
                Some(r) => {
                    let v = fmt_value(r.value, r.unit);
                    match base {
                        Some(b) if *imp != SHM && b > 0.0 && r.unit != "count" && r.unit != "x" => {
                            let _ = write!(out, " {v} ({:.2}×) |", r.value / b);
                        }
                        _ => {
                            let _ = write!(out, " {v} |");
                        }
                    }
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "ns" if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        "ns" if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        "ns" if v >= 1e3 => format!("{:.2} µs", v / 1e3),
        "ns" if v >= 10.0 => format!("{v:.1} ns"),
        "ns" => format!("{v:.2} ns"),
        "op/s" => format!("{:.1} M/s", v / 1e6),
        "x" => format!("{v:.2}×"),
        _ => format!("{v:.0}"),
    }
}

fn main() {
    #[cfg(feature = "iceoryx2")]
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Fatal);
    let quick = std::env::var_os("QUICK").is_some();
    let cfg = if quick {
        Cfg { rounds: 3, sample: Duration::from_millis(1), thread_secs: 0.05, torn_secs: 0.3, publish_secs: 0.2 }
    } else {
        Cfg { rounds: 15, sample: Duration::from_millis(4), thread_secs: 0.3, torn_secs: 5.0, publish_secs: 1.5 }
    };
    // The blackboard builds 1 MiB values on the stack: run on a big stack.
    let rows = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut rows = Vec::new();
            eprintln!(
                "Instant pair overhead: {:.1} ns (all rows are batched; none is timed per op); batches timed in {}",
                instant_overhead(),
                if cpu_clock() { "thread CPU time (CLOCK=cpu)" } else { "wall time" }
            );
            let touch_small: fn(&types::ArchivedSmall) -> u64 = |a| a.generation.to_native() + a.ids.len() as u64;
            size_suite::<_, _, 256>(
                &cfg,
                &mut rows,
                Size {
                    label: "100B",
                    make: types::small,
                    conv: m07::small,
                    touch: touch_small,
                    touch07: |a| a.generation + a.ids.len() as u64,
                },
            );
            size_suite::<_, _, 16384>(
                &cfg,
                &mut rows,
                Size {
                    label: "10KB",
                    make: types::config,
                    conv: m07::config,
                    touch: |a| a.generation.to_native() + a.endpoints.len() as u64,
                    touch07: |a| a.generation + a.endpoints.len() as u64,
                },
            );
            size_suite::<_, _, { 1088 * 1024 }>(
                &cfg,
                &mut rows,
                Size {
                    label: "1MiB",
                    make: types::large,
                    conv: m07::large,
                    touch: |a| a.generation.to_native() + a.weights.len() as u64,
                    touch07: |a| a.generation + a.weights.len() as u64,
                },
            );
            scaling(&cfg, &mut rows);
            publish_under_readers(&cfg, &mut rows);
            torn(&cfg, &mut rows);
            rows
        })
        .expect("spawn")
        .join()
        .expect("benchmark thread");
    let table = print_table(&rows);
    println!("{table}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if !quick {
        let _ = std::fs::create_dir_all(dir.join("results"));
        let mut csv = String::from("scenario,size,bytes,implementation,value,unit\n");
        for r in &rows {
            csv.push_str(&format!("\"{}\",{},{},\"{}\",{},{}\n", r.scenario, r.size, r.bytes, r.imp, r.value, r.unit));
        }
        std::fs::write(dir.join("results/latest.csv"), csv).expect("write csv");
        std::fs::write(dir.join("results/latest.md"), &table).expect("write table");
        match plot::plots(&rows, &dir.join("../plots")) {
            Ok(files) => files.iter().for_each(|f| eprintln!("wrote {}", f.display())),
            Err(e) => eprintln!("plots skipped: {e}"),
        }
    }
}
