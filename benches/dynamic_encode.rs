//! Publishing without the Rust type: `dynamic::from_json` + `dynamic::encode`
//! of a struct holding one large numeric vector (what `shmstate.Writer.publish`
//! does for a numpy array), against `rkyv::to_bytes` of the typed value.
//! A plain program (no criterion): medians of a few rounds, in one run.
//!
//! ```text
//! cargo bench --bench dynamic_encode [-- --elements N]
//! ```

use std::time::{Duration, Instant};

use shmstate::dynamic::{encode, from_json};
use shmstate::rkyv::rancor::Error;
use shmstate::schema::schema_of;

#[shmstate::shared]
struct F64s {
    weights: Vec<f64>,
}

#[shmstate::shared]
struct I32s {
    weights: Vec<i32>,
}

#[shmstate::shared]
struct U8s {
    weights: Vec<u8>,
}

const ROUNDS: usize = 7;

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[ROUNDS / 2]
}

fn row<T>(what: &str, elements: usize, schema: shmstate::schema::SchemaDoc, json: serde_json::Value, typed: &T)
where
    T: for<'a> shmstate::rkyv::Serialize<
        shmstate::rkyv::api::high::HighSerializer<
            shmstate::rkyv::util::AlignedVec,
            shmstate::rkyv::ser::allocator::ArenaHandle<'a>,
            Error,
        >,
    >,
{
    let value = from_json(&schema, &json).expect("fits the schema");
    let bytes = encode(&schema, &value).expect("encodes");
    let rkyv = shmstate::rkyv::to_bytes::<Error>(typed).expect("serializes");
    assert_eq!(bytes.as_slice(), rkyv.as_slice(), "the encoder's bytes are rkyv's");
    let t_json = median(|| drop(std::hint::black_box(from_json(&schema, &json).unwrap())));
    let t_encode = median(|| drop(std::hint::black_box(encode(&schema, &value).unwrap())));
    let t_rkyv = median(|| drop(std::hint::black_box(shmstate::rkyv::to_bytes::<Error>(typed).unwrap())));
    println!(
        "| {what} | {elements} | {} | {:.2} ms | {:.2} ms | {:.3} ms | {:.0}x |",
        bytes.len(),
        t_json.as_secs_f64() * 1e3,
        t_encode.as_secs_f64() * 1e3,
        t_rkyv.as_secs_f64() * 1e3,
        (t_json + t_encode).as_secs_f64() / t_rkyv.as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut elements = 131_072usize; // 1 MiB of f64
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--elements", Some(n)) => elements = n.parse().expect("--elements takes a number"),
            _ => panic!("usage: dynamic_encode [--elements N]"),
        }
    }
    println!("| vector | elements | bytes | from_json | encode | rkyv::to_bytes (typed) | dynamic / typed |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let f: Vec<f64> = (0..elements).map(|i| i as f64 * 0.5).collect();
    let json = serde_json::json!({ "weights": f });
    row("Vec<f64>", elements, schema_of::<F64s>(), json, &F64s { weights: f });
    let n = elements * 2;
    let v: Vec<i32> = (0..n).map(|i| i as i32 - 7).collect();
    let json = serde_json::json!({ "weights": v });
    row("Vec<i32>", n, schema_of::<I32s>(), json, &I32s { weights: v });
    let n = elements * 8;
    let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
    let json = serde_json::json!({ "weights": v });
    row("Vec<u8>", n, schema_of::<U8s>(), json, &U8s { weights: v });
}
