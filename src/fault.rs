//! Deterministic crash points for tests (feature `fault-injection` only).
//!
//! `point(name)` aborts the process (SIGABRT: no unwinding, no destructors, like
//! a kill at that instruction) when the environment variable `SHMSTATE_FAULT`
//! equals `name`. Points: `after-grow` (in `Writer::allocate`, after the object
//! grew and before `segment_len` records it) and `after-seal` (in
//! `Writer::publish`, after the slot is sealed and before it is published).
//! `tests/crash_campaign.rs` (`fault_*`) kills writers there.

/// Aborts if `SHMSTATE_FAULT` names this point.
pub(crate) fn point(name: &str) {
    if std::env::var_os("SHMSTATE_FAULT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}
