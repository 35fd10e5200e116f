//! Map objects across hosts (bridge/src/map_export.rs, map_import.rs),
//! through a real `nats-server`: every commit of the source map reaches the
//! mirror whole, each as a delta of the changed entries only (its size is
//! measured, against the full state's), and a restarted importer re-syncs
//! from a full state.

mod common;

use common::*;
use shmstate::map::{MapReader, MapWriter};
use shmstate_bridge::envelope::{Body, Envelope};
use shmstate_bridge::map_body::{Kind, MapBody};

const ENTRIES: u64 = 100_000;
const CHANGED: u64 = 100;
/// `map_export::FULL_EVERY`: a full state comes at least this often.
const FULL_EVERY: u64 = 32;

fn value(key: u64, round: u64) -> String {
    format!("value {key} of round {round}")
}

/// The latest value of `key` in the bucket.
fn bucket_value(url: &str, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.ok()?;
        let kv = async_nats::jetstream::new(client).get_key_value(bucket).await.ok()?;
        kv.get(key).await.ok()?.map(|v| v.to_vec())
    })
}

/// Whether the map `mirror` exists and holds exactly the source's latest entries.
fn same(source: &mut MapReader<u64, String>, mirror: &str) -> bool {
    let Ok(mut m) = MapReader::<u64, String>::open(mirror) else { return false };
    let (a, Ok(b)) = (source.read().unwrap(), m.read()) else { return false };
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|(x, y)| {
            let (x, y) = (x.unwrap(), y.unwrap());
            x.0 == y.0 && x.1.as_str() == y.1.as_str()
        })
}

/// Changes `CHANGED` keys (spread over the map) and commits; the generation.
fn commit_round(w: &mut MapWriter<u64, String>, round: u64) -> u64 {
    for i in 0..CHANGED {
        let k = (round * 7919 + i * 997) % ENTRIES;
        w.insert(k, value(k, round));
    }
    w.commit().unwrap().get()
}

#[test]
fn a_map_is_mirrored_by_deltas_and_a_restarted_importer_resyncs() {
    let server = NatsServer::start();
    let (map, bucket) = (Names::new("maps-delta"), bucket("maps-delta"));
    let url = server.url();
    let mut w = MapWriter::<u64, String>::create(&map.source).unwrap();
    w.extend((0..ENTRIES).map(|k| (k, value(k, 0))));
    w.commit().unwrap();
    let mut source = MapReader::<u64, String>::open(&map.source).unwrap();

    let export = Bridge::spawn(std::slice::from_ref(&url), &bucket, "host-a", &["export", &map.source]);
    let mut import = Bridge::spawn(std::slice::from_ref(&url), &bucket, "host-b", &["import", "--prefix", &map.prefix]);
    let logs = || format!("export: {}\nimport: {}", export.log(), import.log());
    eventually(DEADLINE, logs, || same(&mut source, &map.mirror()).then_some(()));
    // The first body is a full state (through the object store: above a message).
    let first = bucket_value(&url, &bucket, &map.source).unwrap();
    let full = Envelope::decode(&first).unwrap();
    assert!(matches!(full.body, Body::Object(_)), "a full state of {} bytes", full.len);
    let full_len = full.len;

    let mut delta_lens = Vec::new();
    for round in 1..=5 {
        let g = commit_round(&mut w, round);
        eventually(DEADLINE, logs, || (bucket_generation(&url, &bucket, &map.source)? == g).then_some(()));
        let shipped = bucket_value(&url, &bucket, &map.source).unwrap();
        let env = Envelope::decode(&shipped).unwrap();
        let Body::Inline(bytes) = env.body else { panic!("a delta through the object store") };
        let body = MapBody::decode(bytes, u64::MAX).unwrap();
        assert_eq!(body.kind, Kind::Delta { base: g - 1 });
        assert_eq!(body.entries.len() as u64, CHANGED);
        delta_lens.push(shipped.len() as u64);
        eventually(DEADLINE, logs, || same(&mut source, &map.mirror()).then_some(()));
    }
    let largest = *delta_lens.iter().max().unwrap();
    println!("full state body {full_len} bytes; delta envelopes {delta_lens:?} bytes");
    // 100 entries of ~50 bytes plus the envelope (schema, host, digest).
    assert!(largest < CHANGED * 64 + 2048, "a delta of {largest} bytes for {CHANGED} entries");
    assert!(largest * 200 < full_len, "a delta of {largest} bytes against a full state of {full_len}");

    // A restarted importer holds no base: it re-syncs at the next full state.
    import.kill();
    let mut round = 10;
    for _ in 0..3 {
        commit_round(&mut w, round);
        round += 1;
    }
    import = Bridge::spawn(std::slice::from_ref(&url), &bucket, "host-b", &["import", "--prefix", &map.prefix]);
    let logs = || format!("export: {}\nimport: {}", export.log(), import.log());
    assert!(!same(&mut source, &map.mirror()), "the mirror missed the commits while its importer was down");
    for _ in 0..=FULL_EVERY {
        let g = commit_round(&mut w, round);
        round += 1;
        // One body per generation (none coalesced).
        eventually(DEADLINE, logs, || (bucket_generation(&url, &bucket, &map.source)? == g).then_some(()));
    }
    eventually(DEADLINE, logs, || same(&mut source, &map.mirror()).then_some(()));
    assert!(import.log().contains("waiting for a full state"), "log: {}", import.log());
}

/// A plain client's put of `value` on `key`, once the importer has
/// created the bucket.
fn put(url: &str, bucket: &str, key: &str, value: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let js = rt.block_on(async { async_nats::jetstream::new(async_nats::connect(url).await.unwrap()) });
    let kv = eventually(DEADLINE, || format!("bucket {bucket}"), || rt.block_on(js.get_key_value(bucket)).ok());
    rt.block_on(kv.put(key, value.into())).unwrap();
}

/// An envelope of a map of u64 to String carrying `body`.
fn map_envelope(generation: u64, kind: Kind, entries: &[(u64, Option<&[u8]>)]) -> Vec<u8> {
    map_envelope_of(1, generation, kind, entries)
}

/// `map_envelope` of a source map of this incarnation.
fn map_envelope_of(incarnation: u64, generation: u64, kind: Kind, entries: &[(u64, Option<&[u8]>)]) -> Vec<u8> {
    let keys: Vec<[u8; 8]> = entries.iter().map(|(k, _)| k.to_be_bytes()).collect();
    let entries = keys
        .iter()
        .zip(entries)
        .map(|(key, (_, value))| shmstate_bridge::map_body::Entry { key, value: *value })
        .collect();
    let bytes = MapBody { kind, key_kind: "u64", entries }.encode().unwrap();
    let schema = shmstate::schema::schema_of::<String>().encode();
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint: shmstate::schema::fingerprint_of::<shmstate::map::MapRoot>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation,
        exporter: 5,
        incarnation,
        digest: Some(shmstate_bridge::verify::digest(&bytes)),
        host: "host-a",
        schema: &schema,
        len: bytes.len() as u64,
        lanes: Vec::new(),
        body: Body::Inline(&bytes),
        seal: None,
    }
    .encode()
}

#[test]
fn an_importer_applies_only_checked_entries_on_their_base() {
    let server = NatsServer::start();
    let (map, bucket) = (Names::new("maps-import"), bucket("maps-import"));
    let import = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &map.prefix]);
    let archive = |s: &str| shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&s.to_string()).unwrap().to_vec();
    let (one, two) = (archive("one, a text stored out of line"), archive("two"));
    put(&server.url(), &bucket, &map.source, map_envelope(3, Kind::Full, &[(1, Some(&one)), (2, Some(&two))]));
    let read = || {
        let mut r = MapReader::<u64, String>::open(&map.mirror()).ok()?;
        let snap = r.read().ok()?;
        Some(snap.iter().map(|e| e.map(|(k, v)| (k, v.to_string())).unwrap()).collect::<Vec<_>>())
    };
    let at_3 = vec![(1, "one, a text stored out of line".to_string()), (2, "two".to_string())];
    eventually(DEADLINE, || import.log(), || (read()? == at_3).then_some(()));

    // A value whose string points outside it: refused, nothing applied.
    let mut bad = one.clone();
    let n = bad.len();
    bad[n - 4..n].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    put(&server.url(), &bucket, &map.source, map_envelope(4, Kind::Delta { base: 3 }, &[(1, None), (2, Some(&bad))]));
    eventually(DEADLINE, || import.log(), || import.log().contains("an entry does not check").then_some(()));
    assert_eq!(read().unwrap(), at_3);
    // A delta from a generation the mirror does not hold: kept, not applied.
    put(&server.url(), &bucket, &map.source, map_envelope(6, Kind::Delta { base: 5 }, &[(1, None)]));
    eventually(DEADLINE, || import.log(), || import.log().contains("waiting for a full state").then_some(()));
    assert_eq!(read().unwrap(), at_3);
    // The full state it follows: both applied, in order.
    put(&server.url(), &bucket, &map.source, map_envelope(5, Kind::Full, &[(1, Some(&two)), (9, Some(&one))]));
    let at_6 = vec![(9, "one, a text stored out of line".to_string())];
    eventually(DEADLINE, || import.log(), || (read()? == at_6).then_some(()));
    let info = shmstate::inspect(&map.mirror()).unwrap();
    assert_eq!(info.origin.as_ref().map(|o| o.generation), Some(6), "{info:?}");
    // A delta on the right generation of a map created again at the source: waits.
    put(&server.url(), &bucket, &map.source, map_envelope_of(2, 7, Kind::Delta { base: 6 }, &[(9, None)]));
    let waits = || import.log().matches("waiting for a full state").count();
    eventually(DEADLINE, || import.log(), || (waits() == 2).then_some(()));
    assert_eq!(read().unwrap(), at_6);
}
