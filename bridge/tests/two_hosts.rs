//! Two hosts on one machine: host B's importer runs in a mount namespace of
//! its own, with its own /dev/shm, so its object has the source's very name
//! and nothing is shared with host A but the NATS server. A reader process on
//! host B (this test binary, re-run inside the namespace with `nsenter`)
//! reads the mirror through the ordinary `Reader<T>`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use shmstate::Writer;

const ROLE: &str = "SHMSTATE_BRIDGE_TEST_READ";

/// Run on host B by the test below: exits 0 if the object holds the
/// expected value and says it came from host A.
#[test]
#[ignore = "run inside host B's namespace by importer_on_its_own_host_serves_ordinary_readers"]
fn read_on_host_b() {
    let Ok(spec) = std::env::var(ROLE) else { return };
    let (name, version) = spec.split_once('=').unwrap();
    let want = Routes::new(version.parse().unwrap(), 64);
    let got = mirror_value(name);
    let origin = shmstate::inspect(name).ok().and_then(|i| i.origin).map(|o| o.host);
    assert_eq!((got.as_ref(), origin.as_deref()), (Some(&want), Some("host-a")));
}

fn read_via_nsenter(pid: u32, name: &str, version: u64) -> bool {
    Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["read_on_host_b", "--exact", "--ignored", "--quiet", "--test-threads=1"])
        .env(ROLE, format!("{name}={version}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn importer_on_its_own_host_serves_ordinary_readers() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("twohosts"), bucket("twohosts"));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 64)).unwrap();
    let _export = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", &names.source]);
    let import = Bridge::spawn_on_own_host(&[server.url()], &bucket, "host-b", &["import", "*"]);
    let pid = import.pid();
    eventually(DEADLINE, || import.log(), || read_via_nsenter(pid, &names.source, 1).then_some(()));
    for v in 2..=10 {
        writer.publish(&Routes::new(v, 64)).unwrap();
    }
    eventually(DEADLINE, || import.log(), || read_via_nsenter(pid, &names.source, 10).then_some(()));
    // Host A's object is the source itself, untouched by the import.
    std::thread::sleep(Duration::from_millis(100));
    assert!(shmstate::inspect(&names.source).unwrap().origin.is_none());
    assert_eq!(shmstate::list().unwrap().iter().filter(|(n, _)| n.contains("twohosts")).count(), 1);
}
