//! Values in the bucket may be garbage, truncated, from another version or of
//! another type: the importer refuses each one, logs and counts it, and the
//! last good snapshot stays current. An in-process importer (the library API)
//! so the test can read its counters; the values are put by a plain client.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate_bridge::envelope::{Body, Envelope};
use shmstate_bridge::{connect, import, Config, ImportOptions, Stats};

/// Another type: its fingerprint differs from `Routes`'s.
#[shmstate::shared]
#[derive(Debug)]
struct Flags {
    on: bool,
}

fn envelope(generation: u64, fingerprint: u64, schema: &[u8], bytes: &[u8]) -> Vec<u8> {
    envelope_of(1, generation, fingerprint, schema, bytes)
}

/// An envelope from exporter 5, source incarnation `incarnation`.
fn envelope_of(incarnation: u64, generation: u64, fingerprint: u64, schema: &[u8], bytes: &[u8]) -> Vec<u8> {
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint,
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation,
        exporter: 5,
        incarnation,
        digest: Some(shmstate_bridge::verify::digest(bytes)),
        host: "host-a",
        schema,
        len: bytes.len() as u64,
        lanes: Vec::new(),
        body: Body::Inline(bytes),
        seal: None,
    }
    .encode()
}

fn archived(v: &Routes) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec()
}

/// A server, an in-process importer into `names.prefix`, and a plain client
/// (the same connection) to put values with.
struct Rig {
    _server: NatsServer,
    rt: tokio::runtime::Runtime,
    nats: shmstate_bridge::Nats,
    stats: Arc<Stats>,
}

impl Rig {
    fn start(names: &Names, test: &str) -> Rig {
        let server = NatsServer::start();
        let mut config = Config::new(server.url());
        config.bucket = bucket(test);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let nats = rt.block_on(connect(&config)).unwrap();
        let stats = Arc::new(Stats::default());
        let options =
            ImportOptions { patterns: vec![names.source.clone()], prefix: names.prefix.clone(), ..Default::default() };
        rt.spawn(import(nats.clone(), options, stats.clone()));
        Rig { _server: server, rt, nats, stats }
    }

    fn put(&self, key: &str, value: Vec<u8>) {
        self.rt.block_on(self.nats.kv.put(key, value.into())).unwrap();
    }
}

#[test]
fn every_kind_of_bad_value_is_refused_counted_and_the_last_good_stays() {
    let names = Names::new("bad");
    let rig = Rig::start(&names, "bad");
    let stats = &rig.stats;
    let put = |value: Vec<u8>| rig.put(&names.source, value);
    let schema = schema_of::<Routes>().encode();
    let fp = fingerprint_of::<Routes>();
    let good = Routes::new(1, 50);
    put(envelope(1, fp, &schema, &archived(&good)));
    eventually(DEADLINE, || "the good value".into(), || (mirror_value(&names.mirror())? == good).then_some(()));

    let good_bytes = archived(&Routes::new(2, 50));
    let mut wrong_magic = envelope(2, fp, &schema, &good_bytes);
    wrong_magic[0] ^= 0xff;
    let mut newer_version = envelope(2, fp, &schema, &good_bytes);
    newer_version[8] = 9;
    let mut other_format = envelope(2, fp, &schema, &good_bytes);
    other_format[24] ^= 1;
    let truncated = envelope(2, fp, &schema, &good_bytes)[..100].to_vec();
    let other_type = envelope(2, fingerprint_of::<Flags>(), &schema_of::<Flags>().encode(), &[1, 0, 0, 0]);
    let lying_fingerprint = envelope(2, fp ^ 1, &schema, &good_bytes);
    // The root survives, its relative pointers now point outside the buffer.
    let bad_bytes = envelope(2, fp, &schema, &good_bytes[16..]);
    let bad_schema = envelope(2, fp, b"not a schema", &good_bytes);
    let cases = [
        ("garbage", b"hello".to_vec()),
        ("wrong magic", wrong_magic),
        ("unknown version", newer_version),
        ("other rkyv format", other_format),
        ("truncated", truncated),
        ("fingerprint of another type than the local object", other_type),
        ("fingerprint that is not its schema's", lying_fingerprint),
        ("bytes the decoder rejects", bad_bytes),
        ("schema that does not decode", bad_schema),
    ];
    for (i, (what, value)) in cases.into_iter().enumerate() {
        put(value);
        eventually(
            DEADLINE,
            || format!("{what} refused"),
            || (stats.refused.load(Relaxed) == i as u64 + 1).then_some(()),
        );
        assert_eq!(mirror_value(&names.mirror()), Some(good.clone()), "after {what}");
    }
    assert_eq!(stats.imported.load(Relaxed), 1);
    // And the importer still takes good values.
    put(envelope(3, fp, &schema, &good_bytes));
    eventually(
        DEADLINE,
        || "the next good value".into(),
        || (mirror_value(&names.mirror())? == Routes::new(2, 50)).then_some(()),
    );
}

#[test]
fn a_source_created_again_is_imported_from_its_first_generation() {
    // The same exporter, the same source generation, new bytes, a new
    // incarnation: the source object was removed and created again
    // (generations start at 1 again).
    let names = Names::new("again");
    let rig = Rig::start(&names, "again");
    let (schema, fp) = (schema_of::<Routes>().encode(), fingerprint_of::<Routes>());
    for version in [1, 2] {
        let value = envelope_of(version, 1, fp, &schema, &archived(&Routes::new(version, 8)));
        rig.put(&names.source, value);
        eventually(
            DEADLINE,
            || format!("version {version}"),
            || (mirror_value(&names.mirror())? == Routes::new(version, 8)).then_some(()),
        );
    }
    assert_eq!(rig.stats.imported.load(Relaxed), 2);
}

#[test]
fn rollbacks_replays_and_rewritten_generations_are_refused() {
    let names = Names::new("rollback");
    let rig = Rig::start(&names, "rollback");
    let (schema, fp) = (schema_of::<Routes>().encode(), fingerprint_of::<Routes>());
    let value = |generation, version| envelope(generation, fp, &schema, &archived(&Routes::new(version, 8)));
    let old = value(4, 4);
    rig.put(&names.source, old.clone());
    eventually(
        DEADLINE,
        || "generation 4".into(),
        || (mirror_value(&names.mirror())? == Routes::new(4, 8)).then_some(()),
    );
    rig.put(&names.source, value(5, 5));
    eventually(
        DEADLINE,
        || "generation 5".into(),
        || (mirror_value(&names.mirror())? == Routes::new(5, 8)).then_some(()),
    );
    // An old generation put again, and generation 5 with other bytes.
    for (i, bad) in [old, value(3, 3), value(5, 6)].into_iter().enumerate() {
        rig.put(&names.source, bad);
        eventually(
            DEADLINE,
            || format!("refusal {i}"),
            || (rig.stats.refused.load(Relaxed) == i as u64 + 1).then_some(()),
        );
        assert_eq!(mirror_value(&names.mirror()), Some(Routes::new(5, 8)));
    }
    // A replay of the current value is not published again; the next is.
    rig.put(&names.source, value(5, 5));
    rig.put(&names.source, value(6, 6));
    eventually(
        DEADLINE,
        || "generation 6".into(),
        || (mirror_value(&names.mirror())? == Routes::new(6, 8)).then_some(()),
    );
    assert_eq!(rig.stats.imported.load(Relaxed), 3, "generations 4, 5 and 6");
    assert_eq!(rig.stats.refused.load(Relaxed), 3);
}

#[test]
fn a_restarted_importer_with_a_state_file_still_refuses_a_rollback() {
    let names = Names::new("state");
    let server = NatsServer::start();
    let mut config = Config::new(server.url());
    config.bucket = bucket("state");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nats = rt.block_on(connect(&config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("importer.state");
    let options = ImportOptions {
        patterns: vec![names.source.clone()],
        prefix: names.prefix.clone(),
        state_file: Some(state_file.clone()),
        ..Default::default()
    };
    let (schema, fp) = (schema_of::<Routes>().encode(), fingerprint_of::<Routes>());
    let value = |generation, version| envelope(generation, fp, &schema, &archived(&Routes::new(version, 8)));
    let put = |v: Vec<u8>| rt.block_on(nats.kv.put(&names.source, v.into())).unwrap();
    let first = rt.spawn(import(nats.clone(), options.clone(), Arc::new(Stats::default())));
    put(value(5, 5));
    eventually(
        DEADLINE,
        || "generation 5".into(),
        || (mirror_value(&names.mirror())? == Routes::new(5, 8)).then_some(()),
    );
    eventually(
        DEADLINE,
        || "the state file".into(),
        || std::fs::read_to_string(&state_file).ok().filter(|t| t.contains(&names.source)),
    );
    // The importer stops; meanwhile an old generation is put.
    first.abort();
    let _ = rt.block_on(first);
    put(value(3, 3));
    let stats = Arc::new(Stats::default());
    rt.spawn(import(nats.clone(), options, stats.clone()));
    eventually(DEADLINE, || "the refusal".into(), || (stats.refused.load(Relaxed) == 1).then_some(()));
    assert_eq!(mirror_value(&names.mirror()), Some(Routes::new(5, 8)));
    assert_eq!(stats.imported.load(Relaxed), 0);
    // A corrupt state file is refused with a clear error.
    std::fs::write(&state_file, "key zz\n").unwrap();
    let mut verifier = shmstate_bridge::verify::Verifier::new(None);
    let refused = shmstate_bridge::import::load_state(&state_file, &mut verifier).unwrap_err();
    assert!(refused.contains("line 1"), "{refused}");
}
