//! Head-of-line blocking in the importer: a 256 MiB snapshot of key A goes
//! through the object store, and a 10 KB value of key B is put 50 ms after A's
//! envelope; the time from B's put to B readable in its mirror, beside the
//! same put with nothing else in flight (same run, rounds interleaved). One
//! `nats-server` on loopback, the real `shmstate-bridge import` (with
//! `--max-value-bytes 512M` so that A is fetched); the values are put by a
//! plain client.
//!
//! ```text
//! NATS_SERVER=/path/to/nats-server cargo bench -p shmstate-bridge --bench head_of_line
//! ROUNDS=N ...   # rounds (default 5)
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate_bridge::envelope::{Body, Envelope};

fn envelope(generation: u64, bytes: &[u8], body: Body<'_>) -> Vec<u8> {
    let schema = schema_of::<Routes>().encode();
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint: fingerprint_of::<Routes>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation,
        exporter: 3,
        incarnation: 1,
        digest: Some(shmstate_bridge::verify::digest(bytes)),
        host: "host-a",
        schema: &schema,
        len: bytes.len() as u64,
        lanes: Vec::new(),
        body,
        seal: None,
    }
    .encode()
}

fn archived(v: &Routes) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: u64 = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let server = NatsServer::start();
    let (big, small, bucket) = (Names::new("hol-big"), Names::new("hol-small"), bucket("hol"));
    let mut config = shmstate_bridge::Config::new(server.url());
    config.bucket = bucket.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nats = rt.block_on(shmstate_bridge::connect(&config)).unwrap();
    let import = Bridge::spawn(
        &[server.url()],
        &bucket,
        "host-b",
        &["import", "--prefix", &small.prefix, "--max-value-bytes", "512M", "*"],
    );
    let big_mirror = format!("{}{}", small.prefix, big.source);
    let small_mirror = small.mirror();

    let put = |key: &str, value: Vec<u8>| rt.block_on(nats.kv.put(key, value.into())).unwrap();
    // B's put to B readable, for generation `g` of B.
    let time_small = |g: u64| {
        let value = Routes::new(g, 2500);
        let t0 = Instant::now();
        put(&small.source, envelope(g, &archived(&value), Body::Inline(&archived(&value))));
        // Polled every 100 µs (`eventually` sleeps 10 ms).
        loop {
            if mirror_value(&small_mirror).is_some_and(|v| v == value) {
                break t0.elapsed();
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "B not mirrored: {}", import.log());
            std::thread::sleep(Duration::from_micros(100));
        }
    };
    let (mut alone, mut behind, mut a_readable) = (Vec::new(), Vec::new(), Vec::new());
    let mut g = 0;
    for round in 1..=rounds {
        g += 1;
        alone.push(time_small(g));
        // A: its object first (as an exporter does), then its envelope.
        let big_bytes = archived(&Routes::new(round, 64 << 20));
        let object = format!("big/{round}");
        rt.block_on(nats.objects.put(object.as_str(), &mut big_bytes.as_slice())).unwrap();
        let a_put = Instant::now();
        put(&big.source, envelope(round, &big_bytes, Body::Object(&object)));
        std::thread::sleep(Duration::from_millis(50));
        g += 1;
        behind.push(time_small(g));
        // A is readable before the next round (its publish done).
        eventually(
            Duration::from_secs(120),
            || import.log(),
            || {
                let mut reader = shmstate::Reader::<Routes>::open(&big_mirror).ok()?;
                let version = reader.read().ok()?.version.to_native();
                (version == round).then_some(())
            },
        );
        a_readable.push(a_put.elapsed());
    }
    let show = |v: &mut Vec<Duration>| {
        let each: Vec<String> = v.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).collect();
        v.sort();
        format!(
            "median {:.1} ms, max {:.1} ms (each: {})",
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            each.join(", ")
        )
    };
    // Its mirror is under B's prefix: not removed by `big`'s drop.
    let _ = shmstate::remove(&big_mirror);
    println!(
        "10 KB value of another key, {rounds} rounds: alone {}; put 50 ms after a 256 MiB object-store value {}; \
         the 256 MiB value readable after {} (its fetch and publish: what a sequential importer made B wait)",
        show(&mut alone),
        show(&mut behind),
        show(&mut a_readable)
    );
}
