//! Two "hosts" on one machine, mirrored through a real nats-server: host A's
//! writer publishes a config, an exporter puts it into JetStream, an importer
//! publishes it into host B's object (here a name prefix: both share this
//! machine's /dev/shm; docs/ACROSS_HOSTS.md shows the same with a mount
//! namespace per host), and a plain `Reader<T>` reads it there, zero-copy.
//!
//! ```text
//! NATS_SERVER=/path/to/nats-server cargo run -p shmstate-bridge --example two_hosts
//! ```
//! (`bash scripts/test-all.sh` installs one under target/tools/.)

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmstate::{Reader, Writer};
use shmstate_bridge::{connect, export, import, Config, ExportOptions, ImportOptions, Stats};

#[shmstate::shared]
#[derive(Debug)]
struct FeatureFlags {
    version: u64,
    flags: Vec<(String, bool)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A JetStream server on a free loopback port, in a temporary directory.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = std::env::temp_dir().join(format!("two-hosts-{}", std::process::id()));
    let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let mut server = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin:?} ({e}): set NATS_SERVER"))?;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");

    // Host A: the writer.
    let name = format!("flags-{}", std::process::id());
    let mut writer = Writer::<FeatureFlags>::create(&name)?;
    writer.publish(&FeatureFlags { version: 1, flags: vec![("dark-mode".into(), true)] })?;

    // The bridge, host A's exporter and host B's importer (the library API;
    // the `shmstate-bridge export|import` commands run the same code).
    let rt = tokio::runtime::Runtime::new()?;
    let stats = Arc::new(Stats::default());
    let mut host_a = Config::new(url.clone());
    host_a.host = "host-a".into();
    let nats = rt.block_on(connect(&host_a))?;
    let what = ExportOptions { patterns: vec![name.clone()], ..Default::default() };
    rt.spawn(export(host_a, nats.clone(), what, stats.clone()));
    let options = ImportOptions { patterns: vec![], prefix: "hostb.".into(), ..Default::default() };
    rt.spawn(import(nats, options, stats.clone()));

    // Host B: an ordinary reader of the mirrored object.
    let mirror = format!("hostb.{name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reader = loop {
        match Reader::<FeatureFlags>::open(&mirror) {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.into()),
        }
    };
    for version in 2..=5 {
        writer.publish(&FeatureFlags { version, flags: vec![("dark-mode".into(), version % 2 == 0)] })?;
        loop {
            let g = reader.generation();
            let snap = reader.read()?;
            if snap.version == version {
                println!("host B read version {} (flags {:?})", snap.version, snap.flags);
                break;
            }
            drop(snap);
            assert!(Instant::now() < deadline, "version {version} did not arrive");
            let _ = reader.wait_newer(g, Duration::from_millis(100));
        }
    }
    let origin = shmstate::inspect(&mirror)?.origin.expect("a mirror records its origin");
    println!("inspect {mirror}: mirrored from host {}, source generation {}", origin.host, origin.generation);

    drop(reader);
    rt.shutdown_background();
    shmstate::remove(&name)?;
    shmstate::remove(&mirror)?;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}
