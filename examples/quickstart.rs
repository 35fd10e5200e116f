//! One command, several processes: a writer publishes a realistic config
//! snapshot 1,000 times; three reader processes (this program re-executed)
//! follow it with `wait_newer` + `read` and check every snapshot they see.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use shmstate::{Generation, Reader, WaitError, Writer};

const PUBLISHES: u64 = 1_000;
const READERS: usize = 3;

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Upstream {
    host: String,
    port: u16,
    weight: u32,
}

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Limits {
    max_connections: u32,
    timeout_ms: u64,
}

/// The published snapshot: every field derives from `generation`, so a reader
/// can tell a consistent snapshot from a torn one.
#[shmstate::shared]
#[derive(Debug, Clone)]
struct Config {
    generation: u64,
    service: String,
    upstreams: Vec<Upstream>,
    limits: Limits,
    /// 1,000 numbers: `generation + i`.
    weights: Vec<u64>,
    flags: HashMap<String, bool>,
    /// Sum of `weights`.
    checksum: u64,
}

impl Config {
    fn new(generation: u64) -> Self {
        let weights: Vec<u64> = (0..1_000).map(|i| generation + i).collect();
        let upstreams = (0..8)
            .map(|i| Upstream { host: format!("10.0.{i}.{}", generation % 250), port: 8000 + i, weight: i as u32 })
            .collect();
        let flags = [("canary", generation % 2 == 0), ("gzip", true), ("tracing", generation % 10 == 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Config {
            generation,
            service: format!("checkout@{generation}"),
            upstreams,
            limits: Limits { max_connections: 1024, timeout_ms: 250 + generation % 100 },
            checksum: weights.iter().sum(),
            weights,
            flags,
        }
    }
}

/// Checks the cross-field invariants of a snapshot.
fn consistent(c: &ArchivedConfig) -> bool {
    let g = c.generation.to_native();
    c.service.as_str() == format!("checkout@{g}")
        && c.weights.len() == 1_000
        && c.weights.iter().enumerate().all(|(i, w)| *w == g + i as u64)
        && c.weights.iter().map(|w| w.to_native()).sum::<u64>() == c.checksum
        && c.upstreams.iter().all(|u| u.host.as_str().ends_with(&format!(".{}", g % 250)))
        && c.limits.timeout_ms == 250 + g % 100
        && c.flags.get("canary").copied() == Some(g % 2 == 0)
}

fn reader(name: &str, id: &str) -> ExitCode {
    // The writer's exit is the end of the run: no grace period for a restart.
    let mut r = match Reader::<Config>::options().writer_grace(Duration::ZERO).open(name) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reader {id}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut seen, mut bad, mut last) = (0u64, 0u64, Generation::NONE);
    loop {
        match r.wait_newer(last, Duration::from_secs(5)) {
            Ok(_) => {}
            Err(WaitError::WriterDead { .. }) => break,
            Err(e) => {
                eprintln!("reader {id}: {e}");
                return ExitCode::FAILURE;
            }
        }
        let snap = match r.read() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("reader {id}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if snap.generation() <= last || !consistent(&snap) {
            bad += 1;
        }
        last = snap.generation();
        seen += 1;
        if last.get() == PUBLISHES {
            break;
        }
    }
    let verdict = if bad == 0 { "every one internally consistent" } else { "INCONSISTENT SNAPSHOTS" };
    println!("reader {id} (pid {}): saw {seen} generations, last {last}; {verdict} ({bad} bad)", std::process::id());
    if bad == 0 && last.get() == PUBLISHES {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "reader" {
        return reader(&args[2], &args[3]);
    }

    let name = format!("quickstart-{}", std::process::id());
    // remove_on_drop: the objects disappear when the writer goes.
    let mut writer = Writer::<Config>::options().remove_on_drop(true).create(&name).expect("create the object");
    writer.publish(&Config::new(1)).expect("first publish");
    println!("writer (pid {}): created {name:?}, starting {READERS} reader processes", std::process::id());

    let exe = std::env::current_exe().expect("path of this program");
    let mut children: Vec<_> = (0..READERS)
        .map(|i| Command::new(&exe).args(["reader", &name, &i.to_string()]).spawn().expect("start a reader"))
        .collect();

    let start = Instant::now();
    for g in 2..=PUBLISHES {
        writer.publish(&Config::new(g)).expect("publish");
        // A config service publishes now and then; give the readers time to look.
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = start.elapsed();
    println!("writer: published {PUBLISHES} generations in {:.1} ms", elapsed.as_secs_f64() * 1e3);

    let ok = children.iter_mut().all(|c| c.wait().map(|s| s.success()).unwrap_or(false));
    drop(writer);
    if ok {
        println!("ok: {READERS} readers, no torn or stale snapshot; objects removed");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: a reader reported a problem");
        ExitCode::FAILURE
    }
}
