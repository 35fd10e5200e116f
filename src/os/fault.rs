//! Deterministic crash points for tests (feature `fault-injection` only).
//!
//! `point(name)` acts when the environment variable `SHMSTATE_FAULT` names it:
//! `SHMSTATE_FAULT=<point>` aborts the process there (SIGABRT: no unwinding,
//! no destructors, like a kill at that instruction); `SHMSTATE_FAULT=<point>:stop`
//! stops it there with SIGSTOP (a writer descheduled or stopped at that
//! instruction; the test sends SIGCONT or SIGKILL). Points: `after-grow` (in
//! `Writer::allocate`, after the object grew and before `segment_len` records
//! it), `after-seal` (in `Writer::publish`, after the slot is sealed and before
//! it is published), `after-publish` (right after the publish store) and
//! `map-before-publish` (in `MapWriter::commit`, after the tree's new blocks
//! are written and before the root record is published).
//! `tests/crash_campaign.rs` (`fault_*`) and `tests/map.rs` use them.

/// Aborts or stops the process if `SHMSTATE_FAULT` names this point.
pub(crate) fn point(name: &str) {
    let Some(v) = std::env::var_os("SHMSTATE_FAULT") else { return };
    let Some(v) = v.to_str() else { return };
    match v.strip_suffix(":stop") {
        Some(p) if p == name => crate::os::stop_self(),
        None if v == name => std::process::abort(),
        _ => {}
    }
}
