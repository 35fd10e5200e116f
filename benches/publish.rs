//! Publish benchmarks for the three snapshot sizes, next to the floor the
//! goal is measured against: plain `rkyv::to_bytes` of the same value.
//!
//! `cargo bench --bench publish` (see BENCHMARKS.md).

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmstate::rkyv::rancor::BoxedError;
use shmstate::Writer;
use types::{BenchName, Snapshot};

fn bench_size<T: Snapshot>(c: &mut Criterion, label: &str, value: T) {
    let name = BenchName::new(&format!("publish-{label}"));
    let mut w = Writer::<T>::create(name.as_str()).expect("create");
    w.publish(&value).expect("publish");
    let mut g = c.benchmark_group("publish");
    g.bench_function(BenchmarkId::new("publish", label), |b| b.iter(|| black_box(w.publish(&value).expect("publish"))));
    g.bench_function(BenchmarkId::new("ref_rkyv_to_bytes", label), |b| {
        b.iter(|| black_box(shmstate::rkyv::to_bytes::<BoxedError>(&value).expect("to_bytes")))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_size(c, "100B", types::small(1));
    bench_size(c, "10KB", types::config(1));
    bench_size(c, "1MiB", types::large(1));
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = publish; config = config(); targets = benches }
criterion_main!(publish);
