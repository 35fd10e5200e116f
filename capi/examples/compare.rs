//! C reads against the Rust `Reader` in one run (docs/BENCHMARKS.md, "C
//! readers"): publishes one object, times the Rust reads, runs the C program
//! (capi/benches/c_read.c, built by scripts/capi-bench.sh) on the same
//! object, prints one table.
//!
//! `cargo run --release -p shmstate-capi --example compare -- PATH_TO_C_READ [ITERATIONS]`

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::process::Command;

use shmstate_core::{Reader, Writer};

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_conns: u64,
    pub ratio: f64,
}

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone)]
pub struct Config {
    pub stamp: u64,
    pub name: String,
    pub limits: Limits,
    pub weights: Vec<f64>,
    /// 1000 entries each, keys `k0`..`k999` and 0..1000.
    pub by_name: HashMap<String, u64>,
    pub by_id: BTreeMap<u64, u64>,
}

/// CPU time of this thread in ns: on a loaded machine wall time counts the
/// time the scheduler gave to others (the C side measures the same way).
fn thread_cpu_ns() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant
    // every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

fn per_op(n: u64, f: impl FnMut()) -> f64 {
    let mut f = f;
    let start = thread_cpu_ns();
    for _ in 0..n {
        f();
    }
    (thread_cpu_ns() - start) / n as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let c_read = args.next().ok_or("usage: compare PATH_TO_C_READ [ITERATIONS]")?;
    let n: u64 = args.next().map_or(Ok(10_000_000), |s| s.parse())?;
    let name = format!("capi-compare-{}", std::process::id());
    let _ = shmstate_core::remove(&name);
    let mut w = Writer::<Config>::create(&name)?;
    let weights: Vec<f64> = (0..1000).map(f64::from).collect();
    let by_name = (0..1000).map(|i| (format!("k{i}"), i)).collect();
    let by_id = (0..1000).map(|i| (i, i)).collect();
    let limits = Limits { max_conns: 1024, ratio: 0.5 };
    w.publish(&Config { stamp: 1, name: "a bench object".into(), limits, weights, by_name, by_id })?;

    let mut r = Reader::<Config>::open(&name)?;
    let unchanged = per_op(n, || {
        black_box(&*r.read().unwrap());
    });
    // The same read behind a call that is not inlined (as a C call is not).
    #[inline(never)]
    fn read_call(r: &mut Reader<Config>) -> *const ArchivedConfig {
        &*r.read().unwrap()
    }
    let unchanged_call = per_op(n, || {
        black_box(read_call(&mut r));
    });
    let field = per_op(n, || {
        black_box(u64::from(r.read().unwrap().limits.max_conns));
    });
    let view = per_op(n, || {
        let s = r.read().unwrap();
        black_box(s.weights.as_slice().last().map(|x| x.to_native()));
    });

    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let mut i = 0;
    let hash_lookup = per_op(n, || {
        i = (i + 7) % 1000;
        black_box(r.read().unwrap().by_name.get(keys[i].as_str()).map(|x| x.to_native()));
    });
    let btree_lookup = per_op(n, || {
        i = (i + 7) % 1000;
        black_box(
            r.read()
                .unwrap()
                .by_id
                .get(&shmstate_core::rkyv::rend::u64_le::from_native(i as u64))
                .map(|x| x.to_native()),
        );
    });
    let string = per_op(n, || {
        black_box(r.read().unwrap().name.as_str().len());
    });

    let out = Command::new(&c_read).args([&name, &n.to_string()]).output()?;
    let _ = shmstate_core::remove(&name);
    if !out.status.success() {
        return Err(format!("{c_read} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let c = |case: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(case)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {case} in the C output:\n{text}"))
    };
    println!("{n} iterations each");
    println!("| read | Rust `Reader` | C | C / Rust |");
    println!("| --- | --- | --- | --- |");
    let row = |what: &str, rust: f64, c: f64| println!("| {what} | {rust:.2} ns | {c:.2} ns | {:.2}× |", c / rust);
    row("unchanged snapshot (`read`)", unchanged, c("unchanged_read"));
    row("unchanged snapshot, Rust behind an `#[inline(never)]` call", unchanged_call, c("unchanged_read"));
    row("unchanged snapshot, C `shmstate_read_fast` (inline)", unchanged, c("unchanged_read_fast"));
    row("`limits.max_conns` by path (`shmstate_get_u64`)", field, c("field_by_path"));
    row("`limits.max_conns` from a held value (`shmstate_value_u64`)", field, c("field_by_value"));
    row("1000 × f64 in place (`shmstate_value_f64s`)", view, c("vector_view"));
    row("a string in place (`shmstate_value_str`)", string, c("string_view"));
    row("HashMap<String, u64> of 1000, by key (`shmstate_value_lookup_str`)", hash_lookup, c("hash_lookup"));
    row("BTreeMap<u64, u64> of 1000, by key (`shmstate_value_lookup_u64`)", btree_lookup, c("btree_lookup"));
    println!();
    println!("C, per snapshot (release + read + the walk, minus release + read):");
    println!("| first walk of `limits.max_conns` | {:.0} ns |", c("first_walk"));
    println!("| first lookup in the HashMap of 1000 (builds its index) | {:.0} ns |", c("first_lookup"));
    Ok(())
}
