//! The Rust side of the Python package's tests (python/tests, pytest): a
//! writer of a type with every kind of field the schema describes, driven
//! line by line on stdin so that the tests need no sleeps, and a typed
//! `Reader<T>` that prints what a Python writer published.
//!
//! ```text
//! python_fixture serve NAME     # publishes generation 1, then one line per command:
//!     pub                       #   the next value          -> "published G"
//!     big N                     #   weights of N elements    -> "published G"
//!     v2                        #   removes NAME, creates it holding `ConfigV2` -> "published G"
//!     lane                      #   a ConfigV2 writer with a Config lane takes NAME over -> "published G"
//!     retire                    #   the ConfigV2 writer again, without the lane (Config retired) -> "published G"
//!     quit                      #   removes NAME and exits
//! python_fixture check NAME     # a Reader<Config> of NAME prints its fields
//! python_fixture schema [v2]    # Config's (ConfigV2's) schema file (schema_of::<T>().to_json())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use shmstate::{Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: String,
    pub verify: bool,
}

#[shmstate::shared]
#[derive(Debug, Clone)]
pub enum Mode {
    Primary,
    Replica { of: String },
    Weighted(u32, f32),
}

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Numbers {
    pub u8_: u8,
    pub u16_: u16,
    pub u32_: u32,
    pub u64_: u64,
    pub u128_: u128,
    pub i8_: i8,
    pub i16_: i16,
    pub i32_: i32,
    pub i64_: i64,
    pub i128_: i128,
    pub f32_: f32,
    pub f64_: f64,
    pub bool_: bool,
    pub char_: char,
    pub usize_: usize,
    pub isize_: isize,
}

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Config {
    pub seq: u64,
    pub port: u16,
    pub hosts: Vec<String>,
    pub limits: HashMap<String, u32>,
    pub ordered: BTreeMap<u32, String>,
    pub tags: BTreeSet<String>,
    pub tls: Option<Tls>,
    pub maybe: Option<Option<u32>>,
    pub mode: Mode,
    pub modes: Vec<Mode>,
    pub weights: Vec<f64>,
    pub ids: Vec<u32>,
    pub deltas: Vec<i16>,
    pub blob: Vec<u8>,
    pub flags: Vec<bool>,
    pub matrix: [f32; 4],
    pub pair: (u8, String),
    pub boxed: Box<String>,
    pub numbers: Numbers,
    pub timeout: Duration,
    pub addr: SocketAddr,
    pub ip: IpAddr,
    pub unit: (),
}

/// The object after the type change: another type under the same name.
#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct ConfigV2 {
    pub port: u32,
    pub label: String,
}

/// What the ConfigV2 writer publishes for Config readers (its lane).
fn to_v1(c: &ConfigV2) -> Config {
    Config { port: c.port as u16, ..config(u64::from(c.port), 8) }
}

fn config(seq: u64, weights: usize) -> Config {
    Config {
        seq,
        port: 8000 + (seq % 1000) as u16,
        hosts: vec!["alpha.internal".into(), "a host name longer than eight bytes".into()],
        limits: HashMap::from([("max_conns".into(), 100), ("max_rps".into(), 2500)]),
        ordered: BTreeMap::from([(1, "one".into()), (2, "two".into())]),
        tags: BTreeSet::from(["blue".into(), "green".into()]),
        tls: (seq % 2 == 0).then(|| Tls { cert: "/etc/cert.pem".into(), verify: true }),
        maybe: Some(None),
        mode: Mode::Replica { of: "primary-1".into() },
        modes: vec![Mode::Primary, Mode::Weighted(7, 0.5)],
        weights: (0..weights).map(|i| seq as f64 + i as f64).collect(),
        ids: vec![1, 2, 3, u32::MAX],
        deltas: vec![-1, 0, 1, i16::MIN],
        blob: b"hello\x00world".to_vec(),
        flags: vec![true, false, true],
        matrix: [1.0, 2.0, 3.0, 4.5],
        pair: (9, "nine".into()),
        boxed: Box::new("in a box".into()),
        numbers: Numbers {
            u8_: u8::MAX,
            u16_: u16::MAX,
            u32_: u32::MAX,
            u64_: u64::MAX,
            u128_: u128::MAX,
            i8_: i8::MIN,
            i16_: i16::MIN,
            i32_: i32::MIN,
            i64_: i64::MIN,
            i128_: i128::MIN,
            f32_: 1.5,
            f64_: -2.25,
            bool_: true,
            char_: 'é',
            usize_: 123,
            isize_: -123,
        },
        timeout: Duration::new(3, 500),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        ip: "::1".parse().unwrap(),
        unit: (),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn serve(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = Some(Writer::<Config>::options().capacity(1 << 20).open_or_create(name)?);
    let mut v2: Option<Writer<ConfigV2>> = None;
    let mut seq = 1;
    say(&format!("published {}", w.as_mut().unwrap().publish(&config(seq, 8))?));
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let g = match words.as_slice() {
            ["pub"] if v2.is_some() => {
                seq += 1;
                v2.as_mut().unwrap().publish(&ConfigV2 { port: 9000 + seq as u32, label: format!("v2 #{seq}") })?
            }
            ["pub"] => {
                seq += 1;
                w.as_mut().ok_or("no Config writer")?.publish(&config(seq, 8))?
            }
            ["big", n] => {
                seq += 1;
                w.as_mut().ok_or("no Config writer")?.publish(&config(seq, n.parse()?))?
            }
            ["lane"] => {
                w = None;
                let mut next = Writer::<ConfigV2>::options().lane(to_v1).open_or_create(name)?;
                seq += 1;
                let g = next.publish(&ConfigV2 { port: 9000 + seq as u32, label: format!("v2 #{seq}") })?;
                v2 = Some(next);
                g
            }
            ["retire"] => {
                drop(v2.take());
                let mut next = Writer::<ConfigV2>::open_or_create(name)?;
                seq += 1;
                let g = next.publish(&ConfigV2 { port: 9000 + seq as u32, label: format!("v2 #{seq}") })?;
                v2 = Some(next);
                g
            }
            ["v2"] => {
                shmstate::remove(name)?;
                let mut next = Writer::<ConfigV2>::create(name)?;
                seq += 1;
                let g = next.publish(&ConfigV2 { port: 9000 + seq as u32, label: format!("v2 #{seq}") })?;
                v2 = Some(next);
                g
            }
            ["quit"] => break,
            other => return Err(format!("unknown command {other:?}").into()),
        };
        say(&format!("published {g}"));
    }
    let _ = shmstate::remove(name);
    Ok(())
}

fn check(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut r = Reader::<Config>::open(name)?;
    let snap = r.read()?;
    let c = &*snap;
    let hosts: Vec<&str> = c.hosts.iter().map(|h| h.as_str()).collect();
    let weights: f64 = c.weights.iter().map(|w| w.to_native()).sum();
    let mode = match &c.mode {
        ArchivedMode::Primary => "Primary".to_string(),
        ArchivedMode::Replica { of } => format!("Replica({of})"),
        ArchivedMode::Weighted(a, b) => format!("Weighted({a},{b})"),
    };
    say(&format!("generation={}", snap.generation()));
    say(&format!("seq={} port={} hosts={}", c.seq, c.port, hosts.join(",")));
    say(&format!("weights_len={} weights_sum={weights}", c.weights.len()));
    say(&format!("mode={mode} tls={}", c.tls.as_ref().map_or("none".into(), |t| t.cert.to_string())));
    say(&format!("max_conns={}", c.limits.get("max_conns").map_or(0, |v| v.to_native())));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", name] => serve(name),
        ["check", name] => check(name),
        ["schema"] => {
            say(&shmstate::schema::schema_of::<Config>().to_json());
            Ok(())
        }
        ["schema", "v2"] => {
            say(&shmstate::schema::schema_of::<ConfigV2>().to_json());
            Ok(())
        }
        other => Err(format!("usage: python_fixture serve NAME | check NAME | schema [v2] (got {other:?})").into()),
    }
}
