//! Scale: how the writer's publish cost and `Reader::open` grow with the
//! number of readers. A plain program (no criterion), meant to be run under
//! `valgrind --tool=callgrind` by `scripts/scale-curves.sh`, which counts
//! instructions (deterministic on a busy machine) and differences two runs.
//!
//! ```text
//! scale --readers N --publishes K --pins table|locks --size BYTES [--reread-every R]
//! scale --open N --pins table|locks
//! ```
//!
//! Publish mode: creates an object, publishes once, opens N `Reader` handles
//! in this one process (each claims its own reader entry, or with lock pins
//! its own open file description), has every reader `read()` so that all of
//! them pin the current generation (the most the writer's pin scan can find),
//! then publishes K snapshots of about BYTES archived bytes. Every R publishes
//! (default 64) every reader reads again, so the pins keep following the
//! newest generations. Open mode: opens N handles and nothing else.
//!
//! Only `publish_one` and `open_one` are meant to be counted
//! (`--toggle-collect=*publish_one*`); the program also prints the wall-clock
//! time spent inside them, which on a loaded machine is noise.

#[path = "common/types.rs"]
mod types;

use std::time::{Duration, Instant};

use shmstate::{Reader, Writer};
use types::{BenchName, Blob, BLOB_OVERHEAD};

struct Args {
    readers: u32,
    publishes: u64,
    lock_pins: bool,
    size: usize,
    reread_every: u64,
    /// `Some(n)`: open mode.
    open: Option<u32>,
}

fn parse_args() -> Args {
    let mut a = Args { readers: 1, publishes: 1000, lock_pins: false, size: 100, reread_every: 64, open: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage(&format!("{flag}: not a number: {value}")));
        match flag.as_str() {
            "--readers" => a.readers = number() as u32,
            "--publishes" => a.publishes = number(),
            "--size" => a.size = number() as usize,
            "--reread-every" => a.reread_every = number().max(1),
            "--open" => a.open = Some(number() as u32),
            "--pins" => {
                a.lock_pins = match value.as_str() {
                    "table" => false,
                    "locks" => true,
                    _ => usage("--pins is table or locks"),
                }
            }
            // `cargo bench` passes `--bench`; it has no value, so skip it alone.
            "--bench" => {}
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!("scale: {why}");
    eprintln!("usage: scale --readers N --publishes K --pins table|locks --size BYTES [--reread-every R]");
    eprintln!("       scale --open N --pins table|locks");
    std::process::exit(2)
}

#[inline(never)]
fn publish_one(w: &mut Writer<Blob>, value: &Blob) {
    w.publish(value).expect("publish");
}

#[inline(never)]
fn open_one(name: &str) -> Reader<Blob> {
    Reader::<Blob>::open(name).expect("open reader")
}

fn read_all(readers: &mut [Reader<Blob>]) {
    for r in readers.iter_mut() {
        std::hint::black_box(r.read().expect("read").generation);
    }
}

fn main() {
    let a = parse_args();
    let name = BenchName::new("scale");
    let mut w = Writer::<Blob>::options().lock_pins(a.lock_pins).create(name.as_str()).expect("create");
    let mut value = Blob { generation: 0, bytes: vec![0x5a; a.size.saturating_sub(BLOB_OVERHEAD)] };
    publish_one(&mut w, &value);
    let pins = if a.lock_pins { "locks" } else { "table" };

    if let Some(n) = a.open {
        let start = Instant::now();
        let readers: Vec<_> = (0..n).map(|_| open_one(name.as_str())).collect();
        let spent = start.elapsed();
        println!("open pins={pins} n={n} wall_ns_per_open={}", per(spent, n as u64));
        drop(readers);
        return;
    }

    let mut readers: Vec<_> = (0..a.readers).map(|_| open_one(name.as_str())).collect();
    read_all(&mut readers);
    let mut spent = Duration::ZERO;
    for k in 1..=a.publishes {
        value.generation = k;
        let start = Instant::now();
        publish_one(&mut w, &value);
        spent += start.elapsed();
        if k % a.reread_every == 0 {
            read_all(&mut readers);
        }
    }
    println!(
        "publish pins={pins} readers={} publishes={} size={} wall_ns_per_publish={}",
        a.readers,
        a.publishes,
        a.size,
        per(spent, a.publishes)
    );
    drop(readers);
    drop(w);
    // `name` removes the object when dropped.
}

fn per(spent: Duration, n: u64) -> u128 {
    spent.as_nanos() / u128::from(n.max(1))
}
