//! End to end through a real `nats-server`: a typed writer on "host A", the
//! bridge's export and import processes, a typed reader on "host B". Both
//! hosts share this machine's /dev/shm, so host B's objects carry a name
//! prefix (tests/two_hosts.rs runs host B in a mount namespace of its own).

mod common;

use std::time::Duration;

use common::*;
use shmstate::Writer;

const HOST_A: &str = "host-a";

fn export(server: &NatsServer, bucket: &str, name: &str) -> Bridge {
    Bridge::spawn(&[server.url()], bucket, HOST_A, &["export", name])
}

fn import(server: &NatsServer, bucket: &str, prefix: &str) -> Bridge {
    Bridge::spawn(&[server.url()], bucket, "host-b", &["import", "--prefix", prefix])
}

#[test]
fn mirrors_to_the_latest_generation_and_inspect_shows_the_origin() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("latest"), bucket("latest"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 100)).unwrap();
    let _export = export(&server, &bucket, &names.source);
    let import = import(&server, &bucket, &names.prefix);
    let first = eventually(DEADLINE, || import.log(), || mirror_value(&names.mirror()));
    assert_eq!(first, Routes::new(1, 100));
    // A fast writer: intermediate generations may be skipped, the last is not.
    let mut last = shmstate::Generation::NONE;
    for v in 2..=200 {
        last = writer.publish(&Routes::new(v, 100)).unwrap();
    }
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(200, 100)).then_some(()));
    let info = shmstate::inspect(&names.mirror()).unwrap();
    let origin = info.origin.expect("a mirrored object records its origin");
    assert_eq!((origin.host.as_str(), origin.generation), (HOST_A, last.get()));
    assert_eq!(info.fingerprint, shmstate::schema::fingerprint_of::<Routes>());
    assert!(shmstate::inspect(&names.source).unwrap().origin.is_none());
}

#[test]
fn snapshots_above_the_max_payload_go_through_the_object_store() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("large"), bucket("large"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    // 3 MiB of weights: three times the server's default 1 MiB max payload.
    for v in 1..=3 {
        writer.publish(&Routes::new(v, 3 << 18)).unwrap();
    }
    let _export = export(&server, &bucket, &names.source);
    let import = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(3, 3 << 18)).then_some(()));
    writer.publish(&Routes::new(4, 3 << 18)).unwrap();
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(4, 3 << 18)).then_some(()));
}

#[test]
fn a_second_live_exporter_is_refused_and_a_dead_ones_key_is_taken_over() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("owner"), bucket("owner"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let mut first = export(&server, &bucket, &names.source);
    let import = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || import.log(), || mirror_value(&names.mirror()));
    let mut second = Bridge::spawn(&[server.url()], &bucket, "host-c", &["export", &names.source]);
    assert_eq!(second.wait_exit(DEADLINE), Some(3), "log: {}", second.log());
    assert!(second.log().contains("already exported by a live exporter on host host-a"), "log: {}", second.log());
    // kill -9 of the owner: a new exporter (another host) takes the key over.
    first.kill();
    let _third = Bridge::spawn(&[server.url()], &bucket, "host-c", &["export", &names.source]);
    writer.publish(&Routes::new(2, 10)).unwrap();
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(2, 10)).then_some(()));
    assert_eq!(shmstate::inspect(&names.mirror()).unwrap().origin.unwrap().host, "host-c");
}

#[test]
fn an_importer_does_not_publish_over_a_local_writer() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("localw"), bucket("localw"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let mut local = Writer::<Routes>::create(&names.mirror()).unwrap();
    local.publish(&Routes::new(999, 1)).unwrap();
    let _export = export(&server, &bucket, &names.source);
    let import = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || import.log(), || import.log().contains("a local writer owns").then_some(()));
    assert_eq!(mirror_value(&names.mirror()), Some(Routes::new(999, 1)));
}

#[test]
fn exporter_and_importer_wait_for_a_server_that_is_down_at_start() {
    let port = free_port();
    let (names, bucket) = (Names::new("down"), bucket("down"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(7, 10)).unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let export = Bridge::spawn(std::slice::from_ref(&url), &bucket, HOST_A, &["export", &names.source]);
    let import = Bridge::spawn(&[url], &bucket, "host-b", &["import", "--prefix", &names.prefix]);
    eventually(DEADLINE, || export.log(), || export.log().contains("cannot connect").then_some(()));
    eventually(DEADLINE, || import.log(), || import.log().contains("retrying").then_some(()));
    let _server = NatsServer::on_port(port);
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(7, 10)).then_some(()));
}

#[test]
fn after_a_server_restart_the_mirror_holds_the_sources_latest_generation() {
    let mut server = NatsServer::start();
    let (names, bucket) = (Names::new("restart"), bucket("restart"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let export = export(&server, &bucket, &names.source);
    let import = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || import.log(), || mirror_value(&names.mirror()));
    server.kill();
    // Published while the server is down: must arrive after it is back.
    for v in 2..=20 {
        writer.publish(&Routes::new(v, 10)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    server.restart();
    eventually(
        DEADLINE,
        || format!("export:\n{}\nimport:\n{}", export.log(), import.log()),
        || (mirror_value(&names.mirror())? == Routes::new(20, 10)).then_some(()),
    );
    writer.publish(&Routes::new(21, 10)).unwrap();
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())? == Routes::new(21, 10)).then_some(()));
}

#[test]
fn a_restarted_importer_starts_from_the_latest_and_a_killed_exporter_leaves_the_last() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("restarts"), bucket("restarts"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let mut export = export(&server, &bucket, &names.source);
    let mut first = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || first.log(), || mirror_value(&names.mirror()));
    first.kill();
    let mut last = shmstate::Generation::NONE;
    for v in 2..=30 {
        last = writer.publish(&Routes::new(v, 10)).unwrap();
    }
    eventually(
        DEADLINE,
        || export.log(),
        || (bucket_generation(&server.url(), &bucket, &names.source)? == last.get()).then_some(()),
    );
    let second = import(&server, &bucket, &names.prefix);
    eventually(DEADLINE, || second.log(), || (mirror_value(&names.mirror())? == Routes::new(30, 10)).then_some(()));
    // The restarted importer published once per value it received: history
    // is not replayed (the bucket keeps one value per key).
    export.kill();
    writer.publish(&Routes::new(31, 10)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mirror_value(&names.mirror()), Some(Routes::new(30, 10)));
    let info = shmstate::inspect(&names.mirror()).unwrap();
    assert_eq!(info.origin.unwrap().generation, last.get());
    assert!(info.generation <= 2, "the restarted importer replayed history: generation {}", info.generation);
}

#[test]
fn a_glob_exports_local_objects_only_and_a_refused_one_does_not_stop_the_others() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("glob"), bucket("glob"));
    let other = Names::new("globb");
    let (a, b) = (format!("{}.a", names.source), format!("{}.b", names.source));
    let mut wa = Writer::<Routes>::create(&a).unwrap();
    wa.publish(&Routes::new(1, 5)).unwrap();
    let mut wb = Writer::<Routes>::create(&b).unwrap();
    wb.publish(&Routes::new(2, 5)).unwrap();
    // Object b is already exported by a live exporter on another host.
    let _owner_of_b = Bridge::spawn(&[server.url()], &bucket, "host-c", &["export", &b]);
    let import = Bridge::spawn(&[server.url()], &bucket, "host-b", &["import", "--prefix", &other.prefix]);
    eventually(DEADLINE, || import.log(), || mirror_value(&format!("{}{b}", other.prefix)));
    let glob = Bridge::spawn(&[server.url()], &bucket, HOST_A, &["export", &format!("{}.*", names.source)]);
    eventually(DEADLINE, || glob.log(), || glob.log().contains("already exported").then_some(()));
    // a is exported all the same, and goes on being exported.
    wa.publish(&Routes::new(3, 5)).unwrap();
    eventually(
        DEADLINE,
        || glob.log(),
        || (mirror_value(&format!("{}{a}", other.prefix))? == Routes::new(3, 5)).then_some(()),
    );
    // The mirrors the importer made (with an origin) match no exporter's glob.
    let mirrored = Bridge::spawn(&[server.url()], &bucket, "host-b", &["export", &format!("{}*", other.prefix)]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!mirrored.log().contains("claimed"), "{}", mirrored.log());
    for n in [&a, &b] {
        let _ = shmstate::remove(n);
        let _ = shmstate::remove(&format!("{}{n}", other.prefix));
    }
}
