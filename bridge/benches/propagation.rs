//! Propagation latency across "hosts" through a real nats-server on loopback:
//! from `publish` on the source to the generation readable by a `Reader` on
//! the destination (export and import are the real `shmstate-bridge`
//! processes), and, in the same run, the floor: a bare key-value put → watch
//! delivery of the same bytes with the same client library. Then the
//! generations per second sustained at 10 KB with one exporter and three
//! importers.
//!
//! ```text
//! NATS_SERVER=/path/to/nats-server cargo bench -p shmstate-bridge --bench propagation
//! QUICK=1 ...   # fewer samples
//! ```
//! The server runs with `max_payload` 16 MiB so that every size goes through
//! one key-value message on both paths (a like-for-like floor); the 8 MiB row
//! through the object store (the default 1 MiB max payload) is measured last.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use shmstate::{Reader, Writer};
use shmstate_bridge::envelope::{Body, Envelope};

#[shmstate::shared]
struct Blob {
    seq: u64,
    data: Vec<u8>,
}

/// Generations sent before measuring.
const WARMUP: u64 = 4;

fn blob(seq: u64, size: usize) -> Blob {
    Blob { seq, data: vec![(seq % 251) as u8; size] }
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(max_payload: Option<&str>) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["-a".to_string(), "127.0.0.1".into(), "-p".into(), port.to_string(), "-js".into()];
    args.extend(["-sd".into(), dir.path().display().to_string()]);
    if let Some(max) = max_payload {
        let conf = dir.path().join("server.conf");
        std::fs::write(&conf, format!("max_payload: {max}\n")).unwrap();
        args.extend(["-c".into(), conf.display().to_string()]);
    }
    let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server (set NATS_SERVER; `bash scripts/test-all.sh` installs one under target/tools)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, port, _dir: dir }
}

fn bridge(url: &str, bucket: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shmstate-bridge"))
        .args(["--server", url, "--bucket", bucket, "--host", "bench"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Waits until the destination holds `seq`; returns when it was seen.
fn wait_seq(reader: &mut Reader<Blob>, seq: u64, deadline: Instant) -> Instant {
    loop {
        let g = reader.generation();
        if let Ok(snap) = reader.read() {
            if snap.seq == seq {
                return Instant::now();
            }
        }
        assert!(Instant::now() < deadline, "seq {seq} never arrived");
        let _ = reader.wait_newer(g, Duration::from_millis(50));
    }
}

fn open_when_ready(name: &str) -> Reader<Blob> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = Reader::<Blob>::open(name) {
            return r;
        }
        assert!(Instant::now() < deadline, "{name} never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Bridge path: publish → export → NATS → import → readable.
fn bridge_latency(url: &str, tag: &str, size: usize, samples: usize) -> Vec<Duration> {
    let src = format!("bench{}-{tag}", std::process::id());
    let bucket = format!("bench{}-{tag}", std::process::id());
    let prefix = "dst.";
    let dst = format!("{prefix}{src}");
    let _ = shmstate::remove(&src);
    let _ = shmstate::remove(&dst);
    let mut writer = Writer::<Blob>::create(&src).unwrap();
    writer.publish(&blob(0, size)).unwrap();
    let mut children = [bridge(url, &bucket, &["export", &src]), bridge(url, &bucket, &["import", "--prefix", prefix])];
    let mut reader = open_when_ready(&dst);
    wait_seq(&mut reader, 0, Instant::now() + Duration::from_secs(30));
    // Warm-up: every slot on both sides grown to size, connections warm.
    for seq in 1..=WARMUP {
        writer.publish(&blob(seq, size)).unwrap();
        wait_seq(&mut reader, seq, Instant::now() + Duration::from_secs(30));
    }
    let mut out = Vec::with_capacity(samples);
    for seq in WARMUP + 1..=WARMUP + samples as u64 {
        let value = blob(seq, size);
        let t0 = Instant::now();
        writer.publish(&value).unwrap();
        let t1 = wait_seq(&mut reader, seq, t0 + Duration::from_secs(30));
        out.push(t1 - t0);
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(reader);
    let _ = shmstate::remove(&src);
    let _ = shmstate::remove(&dst);
    out
}

/// Floor: the same envelope bytes, put → watch, one client each side.
fn floor_latency(url: &str, tag: &str, size: usize, samples: usize) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let put_js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let watch_js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let bucket = format!("floor{}-{tag}", std::process::id());
        let kv = put_js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: bucket.clone(),
                history: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut watch = watch_js.get_key_value(&bucket).await.unwrap().watch("k").await.unwrap();
        let schema = shmstate::schema::schema_of::<Blob>().encode();
        let mut out = Vec::with_capacity(samples);
        for seq in 1..=WARMUP + samples as u64 {
            let t0 = Instant::now();
            // What the exporter does per generation: archive, envelope, put.
            let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&blob(seq, size)).unwrap();
            let env = Envelope {
                version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
                fingerprint: 1,
                rkyv_format: 1,
                generation: seq,
                exporter: 1,
                incarnation: 1,
                digest: None,
                host: "bench",
                schema: &schema,
                len: bytes.len() as u64,
                lanes: Vec::new(),
                body: Body::Inline(&bytes),
                seal: None,
            }
            .encode();
            kv.put("k", env.into()).await.unwrap();
            let entry = watch.next().await.unwrap().unwrap();
            assert_eq!(Envelope::decode(&entry.value).unwrap().generation, seq);
            if seq > WARMUP {
                out.push(t0.elapsed());
            }
        }
        out
    })
}

/// Generations per second at each of three importers while one source
/// publishes 10 KB snapshots as fast as it can for `secs`.
fn throughput(url: &str, secs: u64) -> (f64, Vec<f64>) {
    let src = format!("bench{}-tput", std::process::id());
    let bucket = format!("bench{}-tput", std::process::id());
    let _ = shmstate::remove(&src);
    let mut writer = Writer::<Blob>::create(&src).unwrap();
    writer.publish(&blob(0, 10_000)).unwrap();
    let prefixes = ["i1.", "i2.", "i3."];
    let mut children = vec![bridge(url, &bucket, &["export", &src])];
    for p in prefixes {
        let _ = shmstate::remove(&format!("{p}{src}"));
        children.push(bridge(url, &bucket, &["import", "--prefix", p]));
    }
    let mut readers: Vec<Reader<Blob>> = prefixes.iter().map(|p| open_when_ready(&format!("{p}{src}"))).collect();
    for r in &mut readers {
        wait_seq(r, 0, Instant::now() + Duration::from_secs(30));
    }
    let start_gens: Vec<u64> =
        prefixes.iter().map(|p| shmstate::inspect(&format!("{p}{src}")).unwrap().generation).collect();
    let t0 = Instant::now();
    let mut seq = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        seq += 1;
        writer.publish(&blob(seq, 10_000)).unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // Let the last one arrive, then count what each importer published.
    for r in &mut readers {
        wait_seq(r, seq, Instant::now() + Duration::from_secs(30));
    }
    let rates = prefixes
        .iter()
        .zip(&start_gens)
        .map(|(p, g0)| (shmstate::inspect(&format!("{p}{src}")).unwrap().generation - g0) as f64 / elapsed)
        .collect();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = shmstate::remove(&src);
    for p in prefixes {
        let _ = shmstate::remove(&format!("{p}{src}"));
    }
    (seq as f64 / elapsed, rates)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = std::env::var_os("QUICK").is_some();
    let server = start_server(Some("16MB"));
    let url = format!("nats://127.0.0.1:{}", server.port);
    println!("| size | samples | bridge p50 | bridge p99 | floor p50 | floor p99 | p50 ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (label, size, samples) in
        [("100 B", 100, 300), ("10 KB", 10_000, 300), ("1 MiB", 1 << 20, 60), ("8 MiB", 8 << 20, 20)]
    {
        let samples = if quick { samples / 10 } else { samples };
        let tag = label.replace(' ', "");
        // Interleave the two paths in halves so drift hits both.
        let mut bridge = bridge_latency(&url, &format!("{tag}a"), size, samples / 2);
        let mut floor = floor_latency(&url, &format!("{tag}a"), size, samples / 2);
        bridge.extend(bridge_latency(&url, &format!("{tag}b"), size, samples / 2));
        floor.extend(floor_latency(&url, &format!("{tag}b"), size, samples / 2));
        bridge.sort();
        floor.sort();
        let (b50, b99, f50, f99) =
            (percentile(&bridge, 0.5), percentile(&bridge, 0.99), percentile(&floor, 0.5), percentile(&floor, 0.99));
        println!(
            "| {label} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}× |",
            bridge.len(),
            us(b50),
            us(b99),
            us(f50),
            us(f99),
            us(b50) / us(f50)
        );
    }
    drop(server);
    // The object store path: default max payload, so 8 MiB is a chunked object.
    let server = start_server(None);
    let url = format!("nats://127.0.0.1:{}", server.port);
    let mut large = bridge_latency(&url, "8MiBobj", 8 << 20, if quick { 4 } else { 20 });
    large.sort();
    println!(
        "\n8 MiB through the object store (1 MiB max payload): bridge p50 {:.0} µs, p99 {:.0} µs ({} samples)",
        us(percentile(&large, 0.5)),
        us(percentile(&large, 0.99)),
        large.len()
    );
    let (source, rates) = throughput(&url, if quick { 1 } else { 5 });
    println!(
        "\n10 KB, one exporter, three importers: source published {source:.0} gen/s; importers published {} gen/s",
        rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / ")
    );
}
