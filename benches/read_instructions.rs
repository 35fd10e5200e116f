//! Instruction counts of the read and publish paths: a plain program (no
//! criterion), meant to be run under `valgrind --tool=callgrind` by
//! `scripts/read-instructions.sh`, which counts only inside the `measured_*`
//! function of a scenario (deterministic however loaded the machine is) and
//! differences two runs of K1 and K2 iterations.
//!
//! ```text
//! read_instructions SCENARIO --size 100|10000|1000000 --iterations K [--pins table|locks]
//! ```
//!
//! Scenarios (the timed region is the `measured_*` call only):
//! - `new`: the writer publishes (not counted), then `read()` pins and
//!   validates the new generation, with the previous generation's pin held:
//!   what a reader of a changing object pays per generation;
//! - `forced`: `release_and_forget_validation()` + `read()` of the same
//!   generation (what `benches/compare` times as "new generation");
//! - `unchanged`: `read()` of the cached generation;
//! - `heap`: `rkyv::access` on a heap buffer (the floor of the validation);
//! - `publish`: `Writer::publish` with one reader that re-reads after every
//!   publish (not counted), so its pin follows;
//! - `publish_plain` / `publish_lane`: publish of a next version of the
//!   snapshot (it wraps it and adds a field), alone or with a lane of the
//!   previous version (`WriterOptions::lane`, docs/DEPLOYING.md "Lanes"),
//!   no reader; `publish_lane_ref`: the lane by `WriterOptions::lane_ref`
//!   (serialized from a borrow, no conversion).

#[path = "common/types.rs"]
mod types;

use std::hint::black_box;

use shmstate::rkyv::rancor::BoxedError;
use shmstate::{Reader, Shared, Writer};
use types::{BenchName, Snapshot};

struct Args {
    scenario: String,
    size: usize,
    iterations: u64,
    lock_pins: bool,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let scenario = it.next().unwrap_or_else(|| usage("no scenario"));
    let mut a = Args { scenario, size: 100, iterations: 1000, lock_pins: false };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage(&format!("{flag}: not a number: {value}")));
        match flag.as_str() {
            "--size" => a.size = number() as usize,
            "--iterations" => a.iterations = number(),
            "--pins" => {
                a.lock_pins = match value.as_str() {
                    "table" => false,
                    "locks" => true,
                    _ => usage("--pins is table or locks"),
                }
            }
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!("read_instructions: {why}");
    eprintln!("usage: read_instructions new|forced|unchanged|heap|publish|publish_plain|publish_lane|publish_lane_ref --size 100|10000|1000000 --iterations K [--pins table|locks]");
    std::process::exit(2)
}

#[inline(never)]
fn measured_read<T: Snapshot>(r: &mut Reader<T>) -> u64 {
    let s = r.read().expect("read");
    black_box(&*s);
    s.generation().get()
}

#[inline(never)]
fn measured_heap<T: Snapshot>(bytes: &[u8]) -> usize {
    let a = shmstate::rkyv::access::<T::Archived, BoxedError>(black_box(bytes)).expect("access");
    black_box(a) as *const _ as usize
}

#[inline(never)]
fn measured_publish<T: Snapshot>(w: &mut Writer<T>, value: &T) {
    w.publish(value).expect("publish");
}

/// The next version of [`types::Small`] (as in `benches/lanes.rs`).
#[shmstate::shared]
#[derive(Debug, Clone)]
struct SmallNext {
    v1: types::Small,
    zone: String,
}

/// The next version of [`types::Config`].
#[shmstate::shared]
#[derive(Debug, Clone)]
struct ConfigNext {
    v1: types::Config,
    zone: String,
}

#[inline(never)]
fn measured_publish_next<N: Shared>(w: &mut Writer<N>, value: &N) {
    w.publish(value).expect("publish");
}

/// `publish_plain` / `publish_lane`: `next` makes the next version, `v1` takes the old one out of it.
fn run_lane<N: Shared, V1: Shared>(a: &Args, next: impl Fn(u64) -> N, v1: fn(&N) -> V1, v1_ref: fn(&N) -> &V1) {
    let name = BenchName::new(&format!("ri-{}-{}", a.scenario, a.size));
    let opts = Writer::<N>::options();
    let opts = match a.scenario.as_str() {
        "publish_lane" => opts.lane(v1),
        "publish_lane_ref" => opts.lane_ref(v1_ref),
        _ => opts,
    };
    let mut w = opts.create(name.as_str()).expect("create");
    let values = [next(1), next(2)];
    for i in 0..a.iterations as usize {
        measured_publish_next(&mut w, &values[i & 1]);
    }
}

fn run<T: Snapshot>(a: &Args, make: fn(u64) -> T) {
    let name = BenchName::new(&format!("ri-{}-{}", a.scenario, a.size));
    let mut w = Writer::<T>::options().lock_pins(a.lock_pins).create(name.as_str()).expect("create");
    let values = [make(1), make(2)];
    w.publish(&values[0]).expect("publish");
    let mut r = Reader::<T>::open(name.as_str()).expect("open");
    let mut sum = measured_read(&mut r);
    let bytes = shmstate::rkyv::to_bytes::<BoxedError>(&values[0]).expect("to_bytes");
    for i in 0..a.iterations as usize {
        match a.scenario.as_str() {
            "new" => {
                w.publish(&values[i & 1]).expect("publish");
                sum += measured_read(&mut r);
            }
            "forced" => {
                r.release_and_forget_validation();
                sum += measured_read(&mut r);
            }
            "unchanged" => sum += measured_read(&mut r),
            "heap" => sum += measured_heap::<T>(&bytes) as u64,
            "publish" => {
                measured_publish(&mut w, &values[i & 1]);
                sum += r.read().expect("read").generation().get();
            }
            other => usage(&format!("unknown scenario {other}")),
        }
    }
    black_box(sum);
}

fn main() {
    let a = parse_args();
    if a.scenario.starts_with("publish_") {
        return match a.size {
            100 => run_lane(
                &a,
                |g| SmallNext { v1: types::small(g), zone: "eu-west-1a".into() },
                |n| n.v1.clone(),
                |n| &n.v1,
            ),
            10000 => run_lane(
                &a,
                |g| ConfigNext { v1: types::config(g), zone: "eu-west-1a".into() },
                |n| n.v1.clone(),
                |n| &n.v1,
            ),
            _ => usage("publish_plain / publish_lane: --size is 100 or 10000"),
        };
    }
    match a.size {
        100 => run(&a, types::small),
        10000 => run(&a, types::config),
        1000000 => run(&a, types::large),
        _ => usage("--size is 100, 10000 or 1000000"),
    }
}
