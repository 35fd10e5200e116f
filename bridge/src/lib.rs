//! Mirror shmstate objects across hosts through NATS JetStream.
//!
//! `export` puts every new generation of local objects into a JetStream
//! key-value bucket, one key per object (the JetStream object store carries
//! snapshots above the server's max payload); `import` watches the bucket on
//! other hosts and publishes each value into a local object through the
//! type-agnostic [`shmstate::RawWriter`]. Readers there use the ordinary
//! `Reader<T>`, zero-copy. The engine replicates and persists; this crate adds
//! the envelope (`envelope`), one exporter per key fleet-wide (`owner`), and
//! the checks that keep bad input away from readers.
//! [docs/ACROSS_HOSTS.md](https://github.com/shmstate/shmstate/blob/main/docs/ACROSS_HOSTS.md) has
//! the architecture, the guarantees and the limits.

pub mod connect;
mod credentials;
pub mod envelope;
pub mod export;
mod glob;
pub mod import;
pub mod limits;
pub mod map_body;
mod map_export;
mod map_import;
mod maps;
pub mod metrics;
mod owner;
mod source;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub use connect::{connect, Auth, ClientCert, Config, ConnectError, Nats, Tls};
pub use export::{export, ExportError, ExportOptions};
pub use import::{import, ImportOptions};
pub use limits::ImportLimits;

/// Counters of one bridge process. SYNC(stats): every update and load is
/// `Relaxed`: statistics only, no decision depends on them.
#[derive(Debug, Default)]
pub struct Stats {
    /// Generations written to the bucket.
    pub exported: AtomicU64,
    /// Generations published into local objects.
    pub imported: AtomicU64,
    /// Received values refused (bad envelope, schema, fingerprint or bytes).
    pub refused: AtomicU64,
    /// Writes retried after a NATS error.
    pub retries: AtomicU64,
    /// Watches started again after a failure.
    pub rewatches: AtomicU64,
    /// Objects matched by an export glob that this exporter does not export
    /// now (another live exporter owns the key); retried with back-off.
    pub not_exported: AtomicU64,
    /// Keys this exporter took back after someone else wrote them (a stray
    /// write whose "exporter" does not answer).
    pub reclaimed: AtomicU64,
    /// `refused` by reason (`metrics::refusal_reason`).
    pub refused_by: Mutex<BTreeMap<&'static str, u64>>,
    /// Objects exported, or keys mirrored into local objects (a gauge).
    pub objects: AtomicU64,
    /// Propagation lag of imported values (bucket write to local publish),
    /// nanoseconds: the sum, the count and the latest.
    pub lag_ns_sum: AtomicU64,
    pub lag_count: AtomicU64,
    pub last_lag_ns: AtomicU64,
}

impl Stats {
    /// Counts a refused value.
    pub fn refuse(&self, why: &str) {
        self.refused.fetch_add(1, Relaxed);
        if let Ok(mut by) = self.refused_by.lock() {
            *by.entry(metrics::refusal_reason(why)).or_default() += 1;
        }
    }

    /// Records the propagation lag of one imported value.
    pub fn record_lag(&self, lag: std::time::Duration) {
        let ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.lag_ns_sum.fetch_add(ns, Relaxed);
        self.lag_count.fetch_add(1, Relaxed);
        self.last_lag_ns.store(ns, Relaxed);
    }
}

/// One line on stderr, prefixed with the program's name.
#[macro_export]
#[doc(hidden)]
macro_rules! log {
    ($($arg:tt)*) => { eprintln!("shmstate-bridge: {}", format_args!($($arg)*)) };
}
