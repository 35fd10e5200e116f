//! What a writer handle has done, as a plain struct a service can export
//! with its own metrics library (`Writer::stats`, `RawWriter::stats`).

/// Counts of one writer handle since it opened, and the object's own counters.
///
/// The handle's counts are plain fields it updates as it publishes (no atomics,
/// nothing shared); `object_*` are the object-wide counters every writer of
/// the object adds to (the ones `shmstate metrics` exports), read when
/// `stats()` is called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Snapshots this handle published.
    pub publishes: u64,
    /// Their bytes, summed (the archived size, what readers map).
    pub bytes_published: u64,
    /// The largest snapshot it published, in bytes.
    pub largest_snapshot: u64,
    /// Publishes that failed (serialization, no room under `max_size`, a
    /// corrupt slot table, generations exhausted): nothing was published then.
    pub failed_publishes: u64,
    /// `try_publish` / `try_update` calls that found another shared writer
    /// publishing (`PublishError::Busy`).
    pub busy: u64,
    /// Publishes for which a shared writer first caught up with what other
    /// writers had published since its last one (`WriterOptions::shared`).
    pub caught_up: u64,
    /// Waiters the publishes woke (one per publish at most: each woken waiter
    /// wakes the next).
    pub woken: u64,
    /// The object's publishes by every writer it ever had.
    pub object_publishes: u64,
    /// Times the object's data segment grew.
    pub object_growths: u64,
    /// Pins of dead readers that writers took back.
    pub object_reclaimed_pins: u64,
}
