//! The importer writes only what it owns: objects it created (mirrors, with
//! an origin), under a prefix or the keys named. A key put by anyone with
//! write access to the bucket does not take over a local program's object,
//! a lane cannot be injected, and an importer without a scope does not start.

mod common;

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate::Writer;
use shmstate_bridge::envelope::{Body, Envelope};
use shmstate_bridge::{connect, Config};

fn envelope(generation: u64, value: &Routes) -> Vec<u8> {
    let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(value).unwrap().to_vec();
    let schema = schema_of::<Routes>().encode();
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint: fingerprint_of::<Routes>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation,
        exporter: 9,
        incarnation: 1,
        digest: Some(shmstate_bridge::verify::digest(&bytes)),
        host: "evil",
        schema: &schema,
        len: bytes.len() as u64,
        lanes: Vec::new(),
        body: Body::Inline(&bytes),
        seal: None,
    }
    .encode()
}

/// Puts values as anyone with write access to the bucket could.
struct Putter {
    rt: tokio::runtime::Runtime,
    nats: shmstate_bridge::Nats,
    bucket: String,
}

impl Putter {
    fn new(url: &str, bucket: &str) -> Putter {
        let mut config = Config::new(url.to_string());
        config.bucket = bucket.to_string();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let nats = rt.block_on(connect(&config)).unwrap();
        Putter { rt, nats, bucket: bucket.to_string() }
    }

    fn put(&self, key: &str, value: Vec<u8>) {
        self.rt.block_on(self.nats.kv.put(key, value.into())).unwrap();
    }

    /// A raw JetStream publish on the key's subject (the key-value client
    /// refuses keys with `@`; the server does not).
    fn publish_raw(&self, key: &str, value: Vec<u8>) {
        let js = async_nats::jetstream::new(self.nats.client.clone());
        let subject = format!("$KV.{}.{key}", self.bucket);
        self.rt.block_on(async { js.publish(subject, value.into()).await.unwrap().await.unwrap() });
    }
}

#[test]
fn a_local_object_whose_writer_exited_is_not_taken_over() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("takeover"), bucket("takeover"));
    let local = names.source.clone();
    let mut writer = Writer::<Routes>::create(&local).unwrap();
    writer.publish(&Routes::new(1, 3)).unwrap();
    drop(writer);
    let putter = Putter::new(&server.url(), &bucket);
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", &local]);
    putter.put(&local, envelope(5, &Routes::new(666, 3)));
    eventually(
        DEADLINE,
        || importer.log(),
        || importer.log().contains("is a local object, not a mirror").then_some(()),
    );
    assert_eq!(mirror_value(&local), Some(Routes::new(1, 3)));
    assert!(shmstate::inspect(&local).unwrap().origin.is_none());
    // The local program starts its writer again.
    let mut writer = Writer::<Routes>::open_or_create(&local).unwrap();
    writer.publish(&Routes::new(2, 3)).unwrap();
    drop(writer);
    drop(importer);

    // Asked for explicitly, the importer publishes into it.
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--into-local-objects", &local]);
    eventually(DEADLINE, || importer.log(), || (mirror_value(&local)? == Routes::new(666, 3)).then_some(()));
    assert_eq!(shmstate::inspect(&local).unwrap().origin.unwrap().host, "evil");
}

#[test]
fn an_importer_keeps_publishing_into_its_own_mirrors_after_a_restart() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("own"), bucket("own"));
    let putter = Putter::new(&server.url(), &bucket);
    putter.put(&names.source, envelope(1, &Routes::new(1, 3)));
    let args = ["import", "--prefix", &names.prefix, &names.source];
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &args);
    eventually(DEADLINE, || importer.log(), || (mirror_value(&names.mirror())? == Routes::new(1, 3)).then_some(()));
    drop(importer);
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &args);
    putter.put(&names.source, envelope(2, &Routes::new(2, 3)));
    eventually(DEADLINE, || importer.log(), || (mirror_value(&names.mirror())? == Routes::new(2, 3)).then_some(()));
}

#[test]
fn a_key_naming_a_lane_is_refused() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("lane"), bucket("lane"));
    let putter = Putter::new(&server.url(), &bucket);
    let importer = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &names.prefix, "*"]);
    let lane = format!("{}@7a09a27ff69361b4", names.source);
    putter.publish_raw(&lane, envelope(1, &Routes::new(1, 3)));
    eventually(DEADLINE, || importer.log(), || importer.log().contains("a key with '@'").then_some(()));
    assert!(shmstate::inspect(&format!("{}{lane}", names.prefix)).is_err(), "no lane was created");
    // Other keys still import.
    putter.put(&names.source, envelope(1, &Routes::new(1, 3)));
    eventually(DEADLINE, || importer.log(), || (mirror_value(&names.mirror())? == Routes::new(1, 3)).then_some(()));
}

#[test]
fn an_importer_without_a_prefix_or_keys_does_not_start() {
    let server = NatsServer::start();
    let mut importer = Bridge::spawn(&[server.url()], &bucket("scope"), "host-b", &["import"]);
    assert_eq!(importer.wait_exit(DEADLINE), Some(2), "{}", importer.log());
    assert!(importer.log().contains("--prefix"), "{}", importer.log());
}
