//! A three-server JetStream cluster with replicated (R3) buckets: the server
//! the exporter is connected to is killed mid-stream, and mirroring goes on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shmstate::Writer;

#[test]
fn mirroring_survives_killing_a_server_of_an_r3_cluster() {
    let mut servers = NatsServer::cluster();
    let urls: Vec<String> = servers.iter().map(NatsServer::url).collect();
    let (names, bucket) = (Names::new("cluster"), bucket("cluster"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 100)).unwrap();
    let export = Bridge::spawn(&urls, &bucket, "host-a", &["export", &names.source]);
    let import_urls = [urls[1].clone(), urls[2].clone(), urls[0].clone()];
    let import = Bridge::spawn(&import_urls, &bucket, "host-b", &["import", "--prefix", &names.prefix]);
    let logs = || format!("export:\n{}\nimport:\n{}", export.log(), import.log());
    eventually(Duration::from_secs(60), logs, || mirror_value(&names.mirror()));
    // The buckets the bridge created are replicated on all three servers.
    assert_eq!(replicas(&urls[0], &bucket), (3, 3));

    // The client picks a server of the list at random: kill the exporter's.
    let port = export
        .log()
        .split("connected to server ")
        .nth(1)
        .and_then(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse::<u16>().ok());
    let victim = servers.iter().position(|s| Some(s.port) == port).expect("the exporter logs its server");
    // Publish continuously while it dies.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(1));
    let publisher = {
        let (stop, published) = (stop.clone(), published.clone());
        std::thread::spawn(move || {
            let mut v = 1;
            while !stop.load(Relaxed) {
                v += 1;
                writer.publish(&Routes::new(v, 100)).unwrap();
                published.store(v, Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            writer
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    servers[victim].kill();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Relaxed);
    let _writer = publisher.join().unwrap();
    let last = published.load(Relaxed);
    eventually(Duration::from_secs(60), logs, || (mirror_value(&names.mirror())?.version == last).then_some(()));
    assert_eq!(mirror_value(&names.mirror()), Some(Routes::new(last, 100)));
    assert!(export.log().contains("nats: disconnected"), "{}", logs());
}

/// The replica count of the bucket's streams, asked while all servers are up
/// (after a kill, a stream whose leader died answers only once re-elected).
fn replicas(url: &str, bucket: &str) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let mut kv = js.get_stream(format!("KV_{bucket}")).await.unwrap();
        let mut objects = js.get_stream(format!("OBJ_{bucket}-large")).await.unwrap();
        (kv.info().await.unwrap().config.num_replicas, objects.info().await.unwrap().config.num_replicas)
    })
}
