//! Exporters that recover and values that can be trusted, through a real
//! `nats-server`: a stray write on an exported key is taken back, a key owned
//! by a live exporter is retried, not dropped, and with pinned keys only
//! signed values are imported.

mod common;

use std::process::Command;

use common::*;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate::Writer;
use shmstate_bridge::envelope::{Body, Envelope, VERSION_ONE_LAYOUT};

/// A valid envelope of `v` from an "exporter" that does not exist.
fn stray(v: &Routes) -> Vec<u8> {
    let bytes = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec();
    let schema = schema_of::<Routes>().encode();
    Envelope {
        version: VERSION_ONE_LAYOUT,
        fingerprint: fingerprint_of::<Routes>(),
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation: 1_000,
        exporter: 0xe411,
        incarnation: 0xe411,
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

/// `nats kv put`, as a plain client.
fn put(url: &str, bucket: &str, key: &str, value: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let kv = async_nats::jetstream::new(client).get_key_value(bucket).await.unwrap();
        kv.put(key, value.into()).await.unwrap();
    });
}

#[test]
fn a_stray_write_is_taken_back_and_the_mirror_returns_to_the_source() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("stray"), bucket("stray"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    // A glob: before, the process stayed up and never exported the key again.
    let export = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", &format!("{}*", names.source)]);
    let import = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &names.prefix]);
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(1, 10)).then_some(()));
    put(&server.url(), &bucket, &names.source, stray(&Routes::new(999, 1)));
    // Without a new publish on the source: the exporter sees the write and
    // writes its current snapshot again.
    let logs = || format!("export:\n{}\nimport:\n{}", export.log(), import.log());
    eventually(DEADLINE, logs, || export.log().contains("reclaiming the key").then_some(()));
    eventually(DEADLINE, logs, || (mirror_value(&names.mirror())? == Routes::new(1, 10)).then_some(()));
    assert_eq!(shmstate::inspect(&names.mirror()).unwrap().origin.unwrap().host, "host-a");
    // And it goes on exporting.
    writer.publish(&Routes::new(2, 10)).unwrap();
    eventually(DEADLINE, logs, || (mirror_value(&names.mirror())? == Routes::new(2, 10)).then_some(()));
}

#[test]
fn a_glob_matched_key_owned_by_a_live_exporter_is_retried_and_taken_once_it_is_free() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("retry"), bucket("retry"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let mut owner = Bridge::spawn(&[server.url()], &bucket, "host-c", &["export", &names.source]);
    let import = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &names.prefix]);
    eventually(DEADLINE, || import.log(), || mirror_value(&names.mirror()));
    let glob = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", &format!("{}*", names.source)]);
    eventually(DEADLINE, || glob.log(), || glob.log().contains("NOT EXPORTED, trying again").then_some(()));
    owner.kill();
    writer.publish(&Routes::new(2, 10)).unwrap();
    eventually(
        DEADLINE,
        || glob.log(),
        || {
            let origin = shmstate::inspect(&names.mirror()).ok()?.origin?;
            (mirror_value(&names.mirror())? == Routes::new(2, 10) && origin.host == "host-a").then_some(())
        },
    );
}

#[test]
fn with_pinned_keys_only_values_signed_by_them_are_imported() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("signed"), bucket("signed"));
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("host-a.key");
    let out =
        Command::new(env!("CARGO_BIN_EXE_shmstate-bridge")).args(["keygen", "--out"]).arg(&secret).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trusted = dir.path().join("trusted");
    std::fs::write(&trusted, &out.stdout).unwrap();
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let secret = secret.to_str().unwrap();
    let export = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", "--signing-key", secret, &names.source]);
    let import = Bridge::spawn(
        &[server.url()],
        &bucket,
        "host-b",
        &["import", "--trusted-keys", trusted.to_str().unwrap(), "--prefix", &names.prefix],
    );
    let logs = || format!("export:\n{}\nimport:\n{}", export.log(), import.log());
    eventually(DEADLINE, logs, || (mirror_value(&names.mirror())? == Routes::new(1, 10)).then_some(()));
    // An unsigned value: refused; the exporter then takes its key back.
    put(&server.url(), &bucket, &names.source, stray(&Routes::new(999, 1)));
    eventually(DEADLINE, logs, || import.log().contains("unsigned").then_some(()));
    eventually(DEADLINE, logs, || export.log().contains("reclaiming the key").then_some(()));
    writer.publish(&Routes::new(2, 10)).unwrap();
    eventually(DEADLINE, logs, || (mirror_value(&names.mirror())? == Routes::new(2, 10)).then_some(()));
    // Never the stray value in between: two local publishes, the source's
    // generations 1 and 2 (the exporter's second write of 1 is a duplicate).
    assert_eq!(shmstate::inspect(&names.mirror()).unwrap().generation, 2, "{}", logs());
}

#[test]
fn a_signing_key_readable_by_others_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("k");
    let keygen = Command::new(env!("CARGO_BIN_EXE_shmstate-bridge")).args(["keygen", "--out"]).arg(&secret).output();
    assert!(keygen.unwrap().status.success());
    let mut perms = std::fs::metadata(&secret).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&secret, perms).unwrap();
    let mut export = Bridge::spawn(
        &["nats://127.0.0.1:1".to_string()],
        "b",
        "host-a",
        &["export", "--signing-key", secret.to_str().unwrap(), "x"],
    );
    assert_eq!(export.wait_exit(DEADLINE), Some(2), "{}", export.log());
    assert!(export.log().contains("chmod 600"), "{}", export.log());
}
