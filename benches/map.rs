//! The map object against a whole-snapshot `HashMap`, at 1k, 100k and 1M
//! entries: the cost of publishing a change of one key (a map commit vs a
//! `Writer<HashMap>` publish of everything), and reads (`get` of a random key
//! on an unchanged generation, and the first `get` after a commit or publish,
//! which pays for validation), and `changes_since` over 100 changed keys of
//! 1M against a full comparison of the two generations.
//!
//! `cargo bench --bench map` (see BENCHMARKS.md, "Map").

#[path = "common/types.rs"]
mod types;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmstate::map::{MapReader, MapSnapshot, MapWriter};
use shmstate::{Reader, Writer};
use types::BenchName;

/// A typical row of a feature store: about 60 archived bytes.
#[shmstate::shared]
#[derive(Debug, Clone)]
struct Row {
    id: u64,
    weight: f64,
    label: String,
}

fn row(id: u64, version: u64) -> Row {
    Row { id, weight: id as f64 * 0.5, label: format!("row-{id}-v{version}") }
}

/// A xorshift sequence of keys below `n`.
struct Keys(u64, u64);

impl Keys {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % self.1
    }
}

fn bench_size(c: &mut Criterion, label: &str, n: u64) {
    let mut g = c.benchmark_group("map");

    // The map: one commit of every row, then one-key commits.
    let map_name = BenchName::new(&format!("map-{label}"));
    let mut w = MapWriter::<u64, Row>::create(map_name.as_str()).expect("create map");
    w.extend((0..n).map(|k| (k, row(k, 0))));
    w.commit().expect("commit");
    let mut r = MapReader::<u64, Row>::open(map_name.as_str()).expect("open map");
    let mut keys = Keys(0x9e37_79b9_7f4a_7c15, n);
    let mut version = 1;
    g.bench_function(BenchmarkId::new("commit_1_key", label), |b| {
        b.iter(|| {
            version += 1;
            let k = keys.next();
            w.insert(k, row(k, version));
            black_box(w.commit().expect("commit"))
        })
    });
    // The reader's pin stays on the generation it read last (as a `Reader`'s).
    g.bench_function(BenchmarkId::new("get_unchanged", label), |b| {
        b.iter(|| {
            let snap = r.read().expect("read");
            black_box(snap.get(&keys.next()).expect("get").is_some())
        })
    });
    g.bench_function(BenchmarkId::new("get_first_after_commit", label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version += 1;
                let k = keys.next();
                w.insert(k, row(k, version));
                w.commit().expect("commit");
                let start = Instant::now();
                let snap = r.read().expect("read");
                black_box(snap.get(&k).expect("get").is_some());
                total += start.elapsed();
            }
            total
        })
    });
    drop(r);
    drop(w);

    // The whole snapshot: a HashMap republished for every change.
    let hash_name = BenchName::new(&format!("hashmap-{label}"));
    let mut table: HashMap<u64, Row> = (0..n).map(|k| (k, row(k, 0))).collect();
    let mut hw = Writer::<HashMap<u64, Row>>::options()
        .capacity(64 << 20)
        .max_size(1 << 34)
        .create(hash_name.as_str())
        .expect("create hashmap object");
    hw.publish(&table).expect("publish");
    let mut hr = Reader::<HashMap<u64, Row>>::open(hash_name.as_str()).expect("open hashmap object");
    g.bench_function(BenchmarkId::new("hashmap_publish_1_key", label), |b| {
        b.iter(|| {
            version += 1;
            let k = keys.next();
            table.insert(k, row(k, version));
            black_box(hw.publish(&table).expect("publish"))
        })
    });
    g.bench_function(BenchmarkId::new("hashmap_get_unchanged", label), |b| {
        b.iter(|| {
            let snap = hr.read().expect("read");
            black_box(snap.get(&shmstate::rkyv::rend::u64_le::from_native(keys.next())).is_some())
        })
    });
    g.bench_function(BenchmarkId::new("hashmap_get_first_after_publish", label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version += 1;
                let k = keys.next();
                table.insert(k, row(k, version));
                hw.publish(&table).expect("publish");
                let start = Instant::now();
                let snap = hr.read().expect("read");
                black_box(snap.get(&shmstate::rkyv::rend::u64_le::from_native(k)).is_some());
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// `changes_since` between two generations of a 1M-entry map that differ in
/// 100 keys, against comparing the two snapshots entry by entry.
fn bench_changes(c: &mut Criterion) {
    let mut g = c.benchmark_group("map");
    let n = 1_000_000;
    let name = BenchName::new("map-changes-1M");
    let mut w = MapWriter::<u64, Row>::create(name.as_str()).expect("create map");
    w.extend((0..n).map(|k| (k, row(k, 0))));
    w.commit().expect("commit");
    let (mut r_old, mut r_new) = (
        MapReader::<u64, Row>::open(name.as_str()).expect("open map"),
        MapReader::<u64, Row>::open(name.as_str()).expect("open map"),
    );
    let mut keys = Keys(0x2545_f491_4f6c_dd1d, n);
    let mut version = 0;
    // Holds the current generation in `r_old`, commits 100 changed keys and
    // times `compare` between the two generations.
    let mut run = |iters: u64, compare: &Compare| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let old = r_old.read().expect("read");
            version += 1;
            for _ in 0..100 {
                let k = keys.next();
                w.insert(k, row(k, version));
            }
            w.commit().expect("commit");
            let new = r_new.read().expect("read");
            let start = Instant::now();
            let changed = compare(&new, &old);
            total += start.elapsed();
            assert!((90..=100).contains(&changed), "{changed} changes");
        }
        total
    };
    g.bench_function(BenchmarkId::new("changes_since_100_of", "1M"), |b| {
        b.iter_custom(|iters| {
            run(iters, &|new, old| new.changes_since(old).map(|c| c.map(|_| 1).expect("change")).sum())
        })
    });
    g.bench_function(BenchmarkId::new("full_compare_100_of", "1M"), |b| {
        b.iter_custom(|iters| run(iters, &|new, old| full_compare(new, old)))
    });
    g.finish();
}

/// A count of the changes from the second snapshot to the first.
type Compare = dyn Fn(&MapSnapshot<'_, u64, Row>, &MapSnapshot<'_, u64, Row>) -> usize;

/// The changed keys found by iterating both snapshots (both hold every key
/// here, so the iterations stay aligned).
fn full_compare(new: &MapSnapshot<'_, u64, Row>, old: &MapSnapshot<'_, u64, Row>) -> usize {
    old.iter()
        .zip(new.iter())
        .filter(|(a, b)| {
            let ((ka, va), (kb, vb)) = (a.as_ref().expect("old"), b.as_ref().expect("new"));
            assert_eq!(ka, kb);
            va.id != vb.id || va.weight != vb.weight || va.label != vb.label
        })
        .count()
}

fn benches(c: &mut Criterion) {
    bench_size(c, "1k", 1_000);
    bench_size(c, "100k", 100_000);
    bench_size(c, "1M", 1_000_000);
    bench_changes(c);
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10)
}

criterion_group! { name = map; config = config(); targets = benches }
criterion_main!(map);
