//! What a second layout (a lane, docs/DEPLOYING.md "Lanes") costs: publish
//! with one layout vs with a lane of the previous version, the conversion
//! alone, and reads of a lane vs of the plain name; then, hand-timed, the
//! time from a V2 writer's takeover to the first V2 generation its readers see.
//!
//! `cargo bench --bench lanes` (about 40 s); `QUICK=1 cargo bench --bench
//! lanes` (the 100 B snapshot only, shorter runs, about 10 s). BENCHMARKS.md
//! "Lanes" has the figures.

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use shmstate::{Reader, Shared, Writer};
use types::{BenchName, Config, Small};

/// The next version of [`Small`]: it wraps it and adds a field.
#[shmstate::shared]
#[derive(Debug, Clone)]
struct SmallV2 {
    v1: Small,
    zone: String,
}

/// The next version of [`Config`].
#[shmstate::shared]
#[derive(Debug, Clone)]
struct ConfigV2 {
    v1: Config,
    zone: String,
}

fn quick() -> bool {
    std::env::var_os("QUICK").is_some()
}

/// Publish of V2 alone, of V2 with a lane of V1 (`to_v1` converts), and the
/// conversion alone; then the unchanged read on the plain name and on a lane.
fn bench_size<V1: Shared, V2: Shared>(
    c: &mut Criterion,
    label: &str,
    v2: V2,
    to_v1: fn(&V2) -> V1,
    project: fn(&V2) -> &V1,
) {
    let mut g = c.benchmark_group("lanes");
    let one = BenchName::new(&format!("lanes1-{label}"));
    let mut w1 = Writer::<V2>::create(one.as_str()).expect("create");
    g.bench_function(BenchmarkId::new("publish_1_layout", label), |b| {
        b.iter(|| black_box(w1.publish(&v2).expect("publish")))
    });
    let two = BenchName::new(&format!("lanes2-{label}"));
    let mut w2 = Writer::<V2>::options().lane(to_v1).create(two.as_str()).expect("create");
    g.bench_function(BenchmarkId::new("publish_2_layouts", label), |b| {
        b.iter(|| black_box(w2.publish(&v2).expect("publish")))
    });
    let by_ref = BenchName::new(&format!("lanes3-{label}"));
    let mut w3 = Writer::<V2>::options().lane_ref(project).create(by_ref.as_str()).expect("create");
    g.bench_function(BenchmarkId::new("publish_2_layouts_lane_ref", label), |b| {
        b.iter(|| black_box(w3.publish(&v2).expect("publish")))
    });
    g.bench_function(BenchmarkId::new("conversion_alone", label), |b| b.iter(|| black_box(to_v1(black_box(&v2)))));

    // Unchanged reads: the plain name (V2) and the lane (V1).
    let mut plain = Reader::<V2>::open(two.as_str()).expect("open");
    let mut lane = Reader::<V1>::open(two.as_str()).expect("open lane");
    assert_ne!(lane.object_name(), two.as_str(), "V1 is read from its lane");
    g.bench_function(BenchmarkId::new("read_unchanged_plain", label), |b| {
        b.iter(|| black_box(plain.read().expect("read").generation()))
    });
    g.bench_function(BenchmarkId::new("read_unchanged_lane", label), |b| {
        b.iter(|| black_box(lane.read().expect("read").generation()))
    });
    g.finish();
}

fn small_v2(g: u64) -> SmallV2 {
    SmallV2 { v1: types::small(g), zone: "eu-west-1a".into() }
}

/// Takeover to first visible V2 generation, `rounds` times: a V1 writer and
/// a V1 reader blocked in `wait_newer`; the V1 writer goes; the V2 writer
/// (lane V1) opens and publishes. Medians of: open (`open_or_create`), first
/// V2-writer generation seen by the V1 reader (same object), and by a V2
/// reader that was waiting for its layout (`wait_for_layout`: inotify, open
/// of the new lane, futex).
fn takeover_times(rounds: usize) {
    let (mut open, mut v1_seen, mut v2_seen) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let name = BenchName::new("takeover");
        let n = name.as_str().to_string();
        let mut w1 = Writer::<Small>::create(&n).expect("create");
        let g1 = w1.publish(&types::small(1)).expect("publish");
        let r1 = Reader::<Small>::open(&n).expect("open");
        let n2 = n.clone();
        let v2_reader = std::thread::spawn(move || {
            let mut r = Reader::<SmallV2>::options().wait_for_layout(Duration::from_secs(10)).open(&n2).expect("V2");
            let seen = Instant::now();
            assert_eq!(r.read().expect("read").zone.as_str(), "eu-west-1a");
            seen
        });
        let v1_reader = std::thread::spawn(move || {
            r1.wait_newer(g1, Duration::from_secs(10)).expect("wait");
            Instant::now()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(w1);
        let start = Instant::now();
        let mut w2 = Writer::<SmallV2>::options().lane(|v: &SmallV2| v.v1.clone()).open_or_create(&n).expect("V2");
        open.push(start.elapsed());
        w2.publish(&small_v2(2)).expect("publish");
        v1_seen.push(v1_reader.join().expect("V1 reader") - start);
        v2_seen.push(v2_reader.join().expect("V2 reader") - start);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("takeover to first V2 generation ({rounds} rounds, medians from the V2 writer's open):");
    println!("  open_or_create with a V1 lane:          {:?}", median(&mut open));
    println!("  seen by a V1 reader in wait_newer:      {:?}", median(&mut v1_seen));
    println!("  seen by a V2 reader in wait_for_layout: {:?}", median(&mut v2_seen));
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if quick() { 1 } else { 3 }))
        .sample_size(if quick() { 10 } else { 20 })
        .configure_from_args();
    bench_size(&mut c, "100B", small_v2(1), |v: &SmallV2| v.v1.clone(), |v: &SmallV2| &v.v1);
    if !quick() {
        let v2 = ConfigV2 { v1: types::config(1), zone: "eu-west-1a".into() };
        bench_size(&mut c, "10KB", v2, |v: &ConfigV2| v.v1.clone(), |v: &ConfigV2| &v.v1);
    }
    c.final_summary();
    takeover_times(if quick() { 5 } else { 21 });
}
