//! Heal time after the exporter's server is lost: a 3-node JetStream cluster
//! (R3 buckets), the exporter connected to node 0 only (it learns the others
//! from the cluster), the importer to nodes 1 and 2, a writer publishing every
//! 5 ms. Each fault: SIGKILL node 0, then time from the kill to the first
//! generation published after the kill readable in the mirror; node 0 is
//! restarted and the mirror caught up before the next fault.
//!
//! ```text
//! NATS_SERVER=/path/to/nats-server cargo bench -p shmstate-bridge --bench heal
//! FAULTS=N ...   # faults (default 8)
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let faults: usize = std::env::var("FAULTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut cluster = NatsServer::cluster();
    let (names, bucket) = (Names::new("heal"), bucket("heal"));
    let urls: Vec<String> = cluster.iter().map(NatsServer::url).collect();
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let writer = {
        let (name, published, stop) = (names.source.clone(), published.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = shmstate::Writer::<Routes>::create(&name).unwrap();
            for v in 1.. {
                if stop.load(SeqCst) != 0 {
                    break;
                }
                w.publish(&Routes::new(v, 64)).unwrap();
                published.store(v, SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // R3 buckets, created before the bridge processes (which would make R1
    // ones when given fewer than three servers).
    let mut config = shmstate_bridge::Config::new(urls[1].clone());
    (config.bucket, config.replicas) = (bucket.clone(), 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(shmstate_bridge::connect(&config)).unwrap();
    let export = Bridge::spawn(&urls[..1], &bucket, "host-a", &["export", &names.source]);
    let import = Bridge::spawn(&urls[1..], &bucket, "host-b", &["import", "--prefix", &names.prefix]);
    let mirrored = || mirror_value(&names.mirror()).map_or(0, |r| r.version);
    let caught_up = |what: &str| {
        let want = published.load(SeqCst);
        eventually(
            Duration::from_secs(60),
            || format!("{what}\nexport:\n{}\nimport:\n{}", export.log(), import.log()),
            || (mirrored() >= want).then_some(()),
        );
    };
    caught_up("first value");
    let mut heal = Vec::new();
    for i in 0..faults {
        // A settled cluster before each fault.
        std::thread::sleep(Duration::from_secs(2));
        caught_up("before the fault");
        let at_kill = published.load(SeqCst);
        let t0 = Instant::now();
        cluster[0].kill();
        eventually(
            Duration::from_secs(60),
            || format!("fault {i}\nexport:\n{}", export.log()),
            || (mirrored() > at_kill).then_some(()),
        );
        heal.push(t0.elapsed());
        cluster[0].restart();
        caught_up("after the restart");
    }
    if std::env::var_os("HEAL_LOG").is_some() {
        eprintln!("export:\n{}\nimport:\n{}", export.log(), import.log());
    }
    stop.store(1, SeqCst);
    writer.join().unwrap();
    let ms: Vec<String> = heal.iter().map(|d| format!("{}", d.as_millis())).collect();
    heal.sort();
    println!(
        "heal after the exporter's server is killed, {faults} faults: median {} ms, max {} ms; each (ms): {}",
        heal[heal.len() / 2].as_millis(),
        heal[heal.len() - 1].as_millis(),
        ms.join(", ")
    );
}
