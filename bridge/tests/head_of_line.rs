//! One key's object-store snapshot does not hold up the other keys: with the
//! fetch of key A stalled (its object's chunks withheld: purged from the
//! stream, its metadata left), a value put on key B afterwards is mirrored;
//! the stalled fetch is refused after the fetch timeout.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate_bridge::envelope::{Body, Envelope};
use shmstate_bridge::{connect, import, Config, ImportLimits, ImportOptions, Stats};

fn envelope(bytes: &[u8], len: u64, body: Body<'_>) -> Vec<u8> {
    let schema = schema_of::<Routes>().encode();
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint: fingerprint_of::<Routes>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation: 1,
        exporter: 11,
        incarnation: 1,
        digest: Some(shmstate_bridge::verify::digest(bytes)),
        host: "host-a",
        schema: &schema,
        len,
        lanes: Vec::new(),
        body,
        seal: None,
    }
    .encode()
}

#[test]
fn a_stalled_fetch_does_not_delay_another_key() {
    let server = NatsServer::start();
    let (stalled, other, bucket) = (Names::new("stalled"), Names::new("other"), bucket("hol"));
    let mut config = Config::new(server.url());
    config.bucket = bucket.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nats = rt.block_on(connect(&config)).unwrap();
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &other.prefix, "*"]);

    let big = vec![7u8; 300 << 10];
    rt.block_on(async {
        nats.objects.put("withheld", &mut &big[..]).await.unwrap();
        let js = async_nats::jetstream::new(nats.client.clone());
        let stream = js.get_stream(format!("OBJ_{bucket}-large")).await.unwrap();
        stream.purge().filter(format!("$O.{bucket}-large.C.>")).await.unwrap();
        nats.kv.put(&stalled.source, envelope(&big, big.len() as u64, Body::Object("withheld")).into()).await.unwrap();
    });
    let value = Routes::new(3, 10);
    let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&value).unwrap().to_vec();
    rt.block_on(nats.kv.put(&other.source, envelope(&bytes, bytes.len() as u64, Body::Inline(&bytes)).into())).unwrap();
    let mirror = format!("{}{}", other.prefix, other.source);
    eventually(DEADLINE, || importer.log(), || (mirror_value(&mirror)? == value).then_some(()));
    assert!(shmstate::inspect(&format!("{}{}", other.prefix, stalled.source)).is_err(), "{}", importer.log());
}

#[test]
fn a_stalled_fetch_is_refused_after_the_fetch_timeout_and_the_key_imports_again() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("timeout"), bucket("timeout"));
    let mut config = Config::new(server.url());
    config.bucket = bucket.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nats = rt.block_on(connect(&config)).unwrap();
    let stats = Arc::new(Stats::default());
    let limits = ImportLimits { fetch_timeout: Duration::from_millis(300), ..Default::default() };
    let options =
        ImportOptions { patterns: vec!["*".into()], prefix: names.prefix.clone(), limits, ..Default::default() };
    rt.spawn(import(nats.clone(), options, stats.clone()));

    let big = vec![7u8; 300 << 10];
    rt.block_on(async {
        nats.objects.put("withheld", &mut &big[..]).await.unwrap();
        let js = async_nats::jetstream::new(nats.client.clone());
        let stream = js.get_stream(format!("OBJ_{bucket}-large")).await.unwrap();
        stream.purge().filter(format!("$O.{bucket}-large.C.>")).await.unwrap();
        nats.kv.put(&names.source, envelope(&big, big.len() as u64, Body::Object("withheld")).into()).await.unwrap();
    });
    eventually(DEADLINE, || "the stalled fetch refused".into(), || (stats.refused.load(Relaxed) == 1).then_some(()));
    let value = Routes::new(4, 10);
    let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&value).unwrap().to_vec();
    let mut next = Envelope::decode(&envelope(&bytes, bytes.len() as u64, Body::Inline(&bytes))).unwrap().encode();
    next[32] = 2; // source generation 2
    rt.block_on(nats.kv.put(&names.source, next.into())).unwrap();
    eventually(DEADLINE, || "the next value".into(), || (mirror_value(&names.mirror())? == value).then_some(()));
    assert_eq!(stats.imported.load(Relaxed), 1);
}
