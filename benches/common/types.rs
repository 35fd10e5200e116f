//! The three benchmark snapshots, shared by the criterion benches in `benches/`
//! and by the comparison crate in `benches/compare/` (included with `#[path]`).
//!
//! - [`Small`]: ~100 archived bytes.
//! - [`Config`]: the realistic ~10 KB snapshot, shaped like the one of the
//!   mmap-sync measurements in docs/PEERS.md (5 scalars, a String, `Vec<u64>` × 1,000, 16 small
//!   structs with two Strings each, a 16-entry `HashMap<String, u64>`).
//! - [`Large`]: ~1 MiB.
#![allow(dead_code)]

use std::collections::HashMap;

/// A snapshot type both shmstate and plain `rkyv::to_bytes` (the floor) can
/// serialize: what every bench function needs of its type.
pub trait Snapshot:
    shmstate::Shared
    + for<'a> shmstate::rkyv::Serialize<
        shmstate::rkyv::api::high::HighSerializer<
            shmstate::rkyv::util::AlignedVec,
            shmstate::rkyv::ser::allocator::ArenaHandle<'a>,
            shmstate::rkyv::rancor::BoxedError,
        >,
    >
{
}

impl<T> Snapshot for T where
    T: shmstate::Shared
        + for<'a> shmstate::rkyv::Serialize<
            shmstate::rkyv::api::high::HighSerializer<
                shmstate::rkyv::util::AlignedVec,
                shmstate::rkyv::ser::allocator::ArenaHandle<'a>,
                shmstate::rkyv::rancor::BoxedError,
            >,
        >
{
}

/// ~100 archived bytes.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Small {
    pub generation: u64,
    pub port: u16,
    pub flags: u32,
    pub ratio: f64,
    pub name: String,
    pub ids: Vec<u64>,
}

/// One upstream endpoint of [`Config`].
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub address: String,
    pub weight: u32,
    pub enabled: bool,
}

/// The realistic ~10 KB configuration snapshot.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub generation: u64,
    pub created_unix_ns: u64,
    pub max_connections: u32,
    pub sample_rate: f64,
    pub tracing_enabled: bool,
    pub service_name: String,
    pub allowlist_ids: Vec<u64>,
    pub endpoints: Vec<Endpoint>,
    pub limits: HashMap<String, u64>,
}

/// ~1 MiB: a large numeric table plus some strings.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Large {
    pub generation: u64,
    pub weights: Vec<u64>,
    pub labels: Vec<String>,
}

/// Words in [`Large::weights`].
pub const LARGE_WORDS: usize = 128 * 1024;

/// Fixed-layout probe value for torn-read checks: every u64 equals the generation.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub seq: u64,
    pub payload: Vec<u64>,
    pub seq_tail: u64,
}

/// Words in [`Probe::payload`].
pub const PROBE_WORDS: usize = 1000;

pub fn small(g: u64) -> Small {
    Small {
        generation: g,
        port: 8080,
        flags: 0b1011,
        ratio: 0.25,
        name: format!("svc-frontend-{:08}", g % 100_000_000),
        ids: vec![g, g + 1, g + 2, g + 3],
    }
}

pub fn config(g: u64) -> Config {
    let endpoints = (0..16)
        .map(|i| Endpoint {
            name: format!("backend-{i:02}"),
            address: format!("10.0.{i}.{}:8443", 10 + i),
            weight: 100 + i,
            enabled: i % 3 != 0,
        })
        .collect();
    let limits = (0..16).map(|i| (format!("limit.route{i:02}.rps"), 1000 * (i as u64 + 1) + g)).collect();
    Config {
        generation: g,
        created_unix_ns: 1_700_000_000_000_000_000 + g,
        max_connections: 10_000,
        sample_rate: 0.01,
        tracing_enabled: true,
        service_name: "edge-proxy.production.eu-west".to_string(),
        allowlist_ids: (0..1000).map(|i| i * 7 + g).collect(),
        endpoints,
        limits,
    }
}

pub fn large(g: u64) -> Large {
    Large {
        generation: g,
        weights: (0..LARGE_WORDS as u64).map(|i| i ^ g).collect(),
        labels: (0..256).map(|i| format!("feature-label-{i:04}")).collect(),
    }
}

pub fn probe(g: u64) -> Probe {
    Probe { seq: g, payload: vec![g; PROBE_WORDS], seq_tail: g }
}

/// Checks a probe view: `Ok(seq)` when every word agrees, else `(seq, seq_tail, min, max)`.
pub fn probe_check(seq: u64, tail: u64, payload: &[u64]) -> Result<u64, (u64, u64, u64, u64)> {
    let (mut min, mut max) = (u64::MAX, 0);
    for &x in payload {
        min = min.min(x);
        max = max.max(x);
    }
    if seq == tail && min == seq && max == seq && payload.len() == PROBE_WORDS {
        Ok(seq)
    } else {
        Err((seq, tail, min, max))
    }
}

/// A unique object name for this process, removed (best effort) when dropped.
pub struct BenchName(pub String);

impl BenchName {
    pub fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("bench{}-{}-{what}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let _ = shmstate::remove(&name);
        BenchName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Drop for BenchName {
    fn drop(&mut self) {
        let _ = shmstate::remove(&self.0);
    }
}

/// Percentile of a sorted slice (nearest rank).
pub fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// CLOCK_MONOTONIC in ns: comparable across processes (unlike `Instant`).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A generation and a byte payload, the value of the scale and curves
/// benches (its bytes need no validation beyond their bounds).
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub generation: u64,
    pub bytes: Vec<u8>,
}

/// Archived bytes of a `Blob` besides its payload: the `u64` and the
/// vector's relative pointer and length (32-bit pointer width).
pub const BLOB_OVERHEAD: usize = 16;
