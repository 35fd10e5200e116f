//! Read-side benchmarks: unchanged generation, new generation (pin +
//! validation), unchecked, and `Reader::open`, for the three snapshot sizes.
//!
//! `cargo bench --bench read` (see BENCHMARKS.md).

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmstate::{Reader, Writer};
use types::{BenchName, Snapshot};

fn bench_size<T: Snapshot>(c: &mut Criterion, label: &str, make: fn(u64) -> T, touch: fn(&T::Archived) -> u64) {
    let name = BenchName::new(&format!("read-{label}"));
    let mut w = Writer::<T>::create(name.as_str()).expect("create");
    let mut r = Reader::<T>::open(name.as_str()).expect("open");
    let values = [make(1), make(2)];
    w.publish(&values[0]).expect("publish");
    let mut g = c.benchmark_group("read");

    g.bench_function(BenchmarkId::new("unchanged", label), |b| {
        b.iter(|| {
            let s = r.read().expect("read");
            black_box(touch(&s))
        })
    });

    // New generation: publish outside the timed region, time only the read
    // that pins and validates it (or, unchecked, only pins it). Per-iteration
    // Instant pairs add ~20-40 ns.
    let mut i = 0usize;
    for (id, checked) in [("new_generation", true), ("new_generation_unchecked", false)] {
        g.bench_function(BenchmarkId::new(id, label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    i += 1;
                    w.publish(&values[i & 1]).expect("publish");
                    let t = Instant::now();
                    // SAFETY: our own writer just published a valid `T`.
                    let s = if checked { r.read() } else { unsafe { r.read_unchecked() } }.expect("read");
                    black_box(touch(&s));
                    total += t.elapsed();
                }
                total
            })
        });
    }

    // An idle reader that releases its pin (bounding memory to what is held)
    // pays a pin on its next read of the same generation, not a validation.
    g.bench_function(BenchmarkId::new("release_then_read", label), |b| {
        b.iter(|| {
            r.release();
            let s = r.read().expect("read");
            black_box(touch(&s))
        })
    });

    // The same bound on memory without a call: the snapshot releases the pin
    // when dropped, so every read pins (`Reader::read_releasing`).
    g.bench_function(BenchmarkId::new("read_releasing", label), |b| {
        b.iter(|| {
            let s = r.read_releasing().expect("read");
            black_box(touch(&s))
        })
    });

    // Reference: what the validation alone costs (rkyv::access on a heap buffer).
    let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::BoxedError>(&values[0]).expect("to_bytes");
    g.bench_function(BenchmarkId::new("ref_rkyv_access_heap", label), |b| {
        b.iter(|| {
            let a = shmstate::rkyv::access::<T::Archived, shmstate::rkyv::rancor::BoxedError>(black_box(&bytes))
                .expect("access");
            black_box(touch(a))
        })
    });

    g.bench_function(BenchmarkId::new("open", label), |b| {
        b.iter(|| black_box(Reader::<T>::open(name.as_str()).expect("open")))
    });
    g.finish();
}

/// The floor of a new-generation pin (docs/PROTOCOL.md, "Pin counts"),
/// without shared memory or any check: the two count read-modify-writes (old
/// slot -1, new slot +1), the pin store, the SeqCst fence and the re-load of
/// the publish word, on private atomics. What a new-generation read costs
/// beyond validation can be no less.
fn bench_pin_floor(c: &mut Criterion) {
    use std::sync::atomic::{fence, AtomicU64, Ordering};
    let (current, pin) = (AtomicU64::new(1 << 12), AtomicU64::new(0));
    let counts = [AtomicU64::new(1), AtomicU64::new(0)];
    let mut g = c.benchmark_group("read");
    g.bench_function("ref_pin_floor", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k ^= 1;
            // The same operations, orderings and shape as `protocol::pin_current`.
            let _ = counts[k ^ 1].fetch_update(Ordering::Release, Ordering::Relaxed, |v| v.checked_sub(1));
            let word = current.load(Ordering::Acquire);
            pin.store(word, Ordering::Release);
            let _ = counts[k].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v + 1));
            fence(Ordering::SeqCst);
            black_box(current.load(Ordering::Acquire) == word)
        })
    });
    // The same on x86-64 as `protocol::pin_current` runs it there: the new
    // count's `lock cmpxchg` is F_R, no `mfence` (`sync::fence_after_count`).
    // The difference to `ref_pin_floor` is what the `mfence` cost.
    #[cfg(target_arch = "x86_64")]
    g.bench_function("ref_pin_floor_rmw_as_fence", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k ^= 1;
            let _ = counts[k ^ 1].fetch_update(Ordering::Release, Ordering::Relaxed, |v| v.checked_sub(1));
            let word = current.load(Ordering::Acquire);
            pin.store(word, Ordering::Release);
            let _ = counts[k].fetch_update(Ordering::Release, Ordering::Relaxed, |v| Some(v + 1));
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            black_box(current.load(Ordering::Acquire) == word)
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_pin_floor(c);
    bench_size::<types::Small>(c, "100B", types::small, |a| a.generation.to_native() + a.ids.len() as u64);
    bench_size::<types::Config>(c, "10KB", types::config, |a| a.generation.to_native() + a.endpoints.len() as u64);
    bench_size::<types::Large>(c, "1MiB", types::large, |a| a.generation.to_native() + a.weights.len() as u64);
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = read; config = config(); targets = benches }
criterion_main!(read);
