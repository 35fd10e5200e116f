//! A rolling upgrade of a shared type, V1 → V2, with readers of both
//! versions reading throughout (docs/DEPLOYING.md "Lanes").
//!
//! `cargo run --example rolling_upgrade`. Threads stand in for processes
//! (tests/lanes.rs does it with processes):
//! 1. a V1 writer publishes; a V1 reader reads it; two V2 readers start
//!    before any V2 writer: one reads V1 through a conversion (a copy), one
//!    waits for the V2 layout;
//! 2. the V2 writer, declaring a V1 lane, takes the name over: the V1 reader
//!    reads on, the V2 readers read V2 zero-copy;
//! 3. the V1 reader exits and the writer is redeployed without the V1 lane:
//!    V1 is retired, V2 moves to the plain name, the V2 readers follow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use shmstate::{Generation, Reader, WaitError, Writer};

mod v1 {
    #[shmstate::shared]
    #[derive(Debug, Clone)]
    pub struct Config {
        pub port: u16,
        pub hosts: Vec<String>,
    }
}

mod v2 {
    /// V2 renames nothing but retypes `port` and adds `weights`.
    #[shmstate::shared]
    #[derive(Debug, Clone)]
    pub struct Config {
        pub port: u32,
        pub hosts: Vec<String>,
        pub weights: Vec<u8>,
    }
}

/// What the V2 writer publishes for V1 readers (its lane).
fn to_v1(c: &v2::Config) -> v1::Config {
    v1::Config { port: c.port as u16, hosts: c.hosts.clone() }
}

/// How a V2 reader reads V1 before a V2 writer exists.
fn from_v1(c: &v1::ArchivedConfig) -> v2::Config {
    let hosts: Vec<String> = c.hosts.iter().map(|h| h.to_string()).collect();
    v2::Config { port: c.port.to_native() as u32, weights: vec![1; hosts.len()], hosts }
}

fn v2_value(i: u32) -> v2::Config {
    v2::Config { port: 9000 + i, hosts: vec!["a".into(), "b".into()], weights: vec![3, 1] }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("rolling-upgrade.{}", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));

    // 1. V1 runs.
    let mut w1 = Writer::<v1::Config>::create(&name)?;
    w1.publish(&v1::Config { port: 8000, hosts: vec!["a".into()] })?;
    let v1_reader = {
        let name = name.clone();
        thread::spawn(move || -> Result<String, WaitError> {
            let mut r = Reader::<v1::Config>::options().follow(true).open(&name).expect("V1 reader");
            let (mut g, mut reads) = (Generation::NONE, 0);
            // Until it has read 50 values of the V2 writer (ports ≥ 9000).
            let mut from_v2 = 0;
            while from_v2 < 50 {
                g = match r.wait_newer(g, Duration::from_secs(5)) {
                    Ok(g) => g,
                    Err(WaitError::Timeout { .. }) => g,
                    Err(e) => return Err(e),
                };
                let s = r.read().expect("V1 read");
                reads += 1;
                from_v2 += u32::from(s.port >= 9000);
            }
            Ok(format!("V1 reader: {reads} reads, the last {from_v2} from the V2 writer, never reopened"))
        })
    };
    let v2_reader = |how: &'static str| {
        let (name, stop) = (name.clone(), stop.clone());
        thread::spawn(move || -> String {
            let opts = Reader::<v2::Config>::options().follow(true);
            let opts = match how {
                "converts" => opts.convert_from::<v1::Config>(from_v1),
                _ => opts.wait_for_layout(Duration::from_secs(10)),
            };
            let mut r = opts.open(&name).expect("V2 reader");
            let (mut reads, mut converted, mut g) = (0, 0, Generation::NONE);
            while !stop.load(Ordering::Relaxed) {
                g = r.wait_newer(g, Duration::from_millis(50)).unwrap_or(g);
                converted += u32::from(r.is_converting());
                let s = r.read().expect("V2 read");
                assert_eq!(s.weights.len(), s.hosts.len());
                reads += 1;
            }
            format!(
                "V2 reader ({how}): {reads} reads, {converted} through the conversion, ends on {:?}",
                r.object_name()
            )
        })
    };
    let v2_converting = v2_reader("converts");
    let v2_waiting = v2_reader("waits");
    for i in 1..50 {
        w1.publish(&v1::Config { port: 8000 + i, hosts: vec!["a".into()] })?;
        thread::sleep(Duration::from_millis(2));
    }

    // 2. Deploy V2, which also publishes V1: the V1 writer goes, V2 takes over.
    drop(w1);
    let mut w2 = Writer::<v2::Config>::options().lane(to_v1).open_or_create(&name)?;
    println!("V2 writer publishes layouts {:x?}", w2.fingerprints());
    for i in 0..150 {
        w2.publish(&v2_value(i))?;
        thread::sleep(Duration::from_millis(2));
        if i == 20 {
            print_versions(&name);
        }
    }
    println!("{}", v1_reader.join().expect("V1 reader thread")?);

    // 3. The V1 reader is gone: redeploy without the V1 lane; V1 is retired.
    drop(w2);
    let mut w3 = Writer::<v2::Config>::open_or_create(&name)?;
    for i in 150..300 {
        w3.publish(&v2_value(i))?;
        thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    println!("{}", v2_converting.join().expect("V2 reader thread"));
    println!("{}", v2_waiting.join().expect("V2 reader thread"));
    print_versions(&name);
    shmstate::remove(&name)?;
    println!("ok: no failed read; V1 retired; objects removed");
    Ok(())
}

/// The layouts the name carries, with the live readers of each (what
/// `shmstate inspect NAME` shows as "versions").
fn print_versions(name: &str) {
    let Ok(info) = shmstate::inspect(name) else { return };
    println!(
        "{name}: {} (generation {}, {} live readers)",
        info.type_name.as_deref().unwrap_or("?"),
        info.generation,
        info.live_readers()
    );
    for lane in &info.lanes {
        if let Ok(l) = &lane.info {
            println!(
                "  lane {}: {} (generation {}, {} live readers)",
                lane.name,
                l.type_name.as_deref().unwrap_or("?"),
                l.generation,
                l.live_readers()
            );
        }
    }
}
