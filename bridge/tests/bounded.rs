//! The importer is bounded by construction, whatever the bucket holds: an
//! envelope declaring a huge length, an object larger than its envelope says
//! and a flood of keys are refused, under an address-space limit that leaves
//! no room for what they ask, and the importer lives on (also when it starts
//! again with the poisoned key still the latest value).

mod common;

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate_bridge::envelope::{Body, Envelope};
use shmstate_bridge::{connect, Config};

/// Address space of the importer (`ulimit -v`, KiB): the bridge needs about
/// 220 MiB (threads, allocator arenas); 1 GiB reserved or 256 MiB read does
/// not fit.
const VM_LIMIT_KIB: u64 = 420_000;

fn envelope(generation: u64, bytes: &[u8], len: u64, body: Body<'_>) -> Vec<u8> {
    let schema = schema_of::<Routes>().encode();
    Envelope {
        version: shmstate_bridge::envelope::VERSION_ONE_LAYOUT,
        fingerprint: fingerprint_of::<Routes>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation,
        exporter: 7,
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

fn archived(v: &Routes) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec()
}

/// A plain client on the test's bucket (created here), to put values and
/// objects as anyone with write access could.
struct Putter {
    rt: tokio::runtime::Runtime,
    nats: shmstate_bridge::Nats,
}

impl Putter {
    fn new(url: &str, bucket: &str) -> Putter {
        let mut config = Config::new(url.to_string());
        config.bucket = bucket.to_string();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let nats = rt.block_on(connect(&config)).unwrap();
        Putter { rt, nats }
    }

    fn put(&self, key: &str, value: Vec<u8>) {
        self.rt.block_on(self.nats.kv.put(key, value.into())).unwrap();
    }

    fn put_object(&self, name: &str, bytes: &[u8]) {
        self.rt.block_on(self.nats.objects.put(name, &mut &bytes[..])).unwrap();
    }
}

/// An importer under `ulimit -v VM_LIMIT_KIB`.
fn limited_importer(url: &str, bucket: &str, args: &[&str]) -> Bridge {
    let limit = format!("ulimit -v {VM_LIMIT_KIB} && exec \"$0\" \"$@\"");
    Bridge::spawn_wrapped(&["sh", "-c", &limit], &[url.to_string()], bucket, "host-b", args)
}

fn assert_alive(bridge: &mut Bridge) {
    assert_eq!(bridge.try_exit(), None, "the importer died; log:\n{}", bridge.log());
}

#[test]
fn a_reference_declaring_2_to_the_60_bytes_is_refused_also_after_a_restart() {
    let server = NatsServer::start();
    let (poisoned, good, bucket) = (Names::new("huge"), Names::new("huge-good"), bucket("huge"));
    let putter = Putter::new(&server.url(), &bucket);
    let real = archived(&Routes::new(1, 4));
    putter.put_object("poison", &real);
    putter.put(&poisoned.source, envelope(1, &real, 1 << 60, Body::Object("poison")));
    let value = Routes::new(1, 20);
    putter.put(
        &good.source,
        envelope(1, &archived(&value), archived(&value).len() as u64, Body::Inline(&archived(&value))),
    );
    let import = || limited_importer(&server.url(), &bucket, &["import", "--prefix", &good.prefix, "*"]);
    let good_mirror = format!("{}{}", good.prefix, good.source);
    for round in ["first start", "restart"] {
        let _ = shmstate::remove(&good_mirror);
        let mut importer = import();
        eventually(
            DEADLINE,
            || format!("{round}: {}", importer.log()),
            || (mirror_value(&good_mirror)? == value).then_some(()),
        );
        eventually(
            DEADLINE,
            || format!("{round}: {}", importer.log()),
            || importer.log().contains("above --max-value-bytes").then_some(()),
        );
        assert_alive(&mut importer);
        assert!(
            shmstate::inspect(&format!("{}{}", good.prefix, poisoned.source)).is_err(),
            "{round}: no object for it"
        );
    }
}

#[test]
fn an_object_larger_than_its_envelope_says_is_refused_before_it_is_read() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("liar"), bucket("liar"));
    let putter = Putter::new(&server.url(), &bucket);
    let mut importer = limited_importer(&server.url(), &bucket, &["import", "--prefix", &names.prefix, "*"]);
    // 256 MiB in the store, 16 bytes in the envelope.
    let big = vec![0x5a_u8; 256 << 20];
    putter.put_object("big", &big);
    putter.put(&names.source, envelope(1, &big[..16], 16, Body::Object("big")));
    eventually(
        DEADLINE,
        || importer.log(),
        || importer.log().contains("has 268435456 bytes, its envelope says 16").then_some(()),
    );
    assert_alive(&mut importer);
    // And it still imports.
    let value = Routes::new(2, 20);
    let bytes = archived(&value);
    putter.put(&names.source, envelope(2, &bytes, bytes.len() as u64, Body::Inline(&bytes)));
    eventually(DEADLINE, || importer.log(), || (mirror_value(&names.mirror())? == value).then_some(()));
    assert_alive(&mut importer);
}

#[test]
fn a_flood_of_keys_stops_at_max_objects_and_max_shm_bytes() {
    let server = NatsServer::start();
    let bucket = bucket("flood");
    let names: Vec<Names> = (0..6).map(|i| Names::new(&format!("flood{i}"))).collect();
    let prefix = names[0].prefix.clone();
    let mirror = |n: &Names| format!("{prefix}{}", n.source);
    let putter = Putter::new(&server.url(), &bucket);
    let mut importer =
        limited_importer(&server.url(), &bucket, &["import", "--prefix", &prefix, "--max-objects", "4", "*"]);
    let value = Routes::new(1, 8);
    let bytes = archived(&value);
    for n in &names {
        putter.put(&n.source, envelope(1, &bytes, bytes.len() as u64, Body::Inline(&bytes)));
    }
    eventually(
        DEADLINE,
        || importer.log(),
        || (importer.log().matches("--max-objects 4: not creating another").count() == 2).then_some(()),
    );
    let made = names.iter().filter(|n| shmstate::inspect(&mirror(n)).is_ok()).count();
    assert_eq!(made, 4, "{}", importer.log());
    assert_alive(&mut importer);
    drop(importer);
    for n in &names {
        let _ = shmstate::remove(&mirror(n));
    }

    // Shared memory: one object holds a few pages; a limit of 40 KiB
    // leaves room for none beyond the first few.
    let mut importer =
        limited_importer(&server.url(), &bucket, &["import", "--prefix", &prefix, "--max-shm-bytes", "40K", "*"]);
    eventually(
        DEADLINE,
        || importer.log(),
        || importer.log().contains("could pass --max-shm-bytes 40960").then_some(()),
    );
    let made = names.iter().filter(|n| shmstate::inspect(&mirror(n)).is_ok()).count();
    assert!((1..names.len()).contains(&made), "{made} objects; log:\n{}", importer.log());
    assert_alive(&mut importer);
    for n in &names {
        let _ = shmstate::remove(&mirror(n));
    }
}
