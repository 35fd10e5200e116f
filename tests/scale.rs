//! Readers are not a scarce resource: an object created with default options
//! serves 1024 reader handles (a host with hundreds of worker processes), in
//! both pin modes, and refuses the next one with `ReaderTableFull`.

mod common;

use common::{consistent, Checked, TestName};
use shmstate::{OpenError, Reader, Writer};

const DEFAULT_READERS: usize = 1024;

/// Each lock-pin reader keeps two descriptors open (table pins: two as well):
/// make sure the soft limit allows them (the hard limit is not raised).
fn allow_descriptors(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < n {
        lim.rlim_cur = n.min(lim.rlim_max);
        // SAFETY: as above; the call only reads `lim`.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
}

fn serves_default_reader_count(lock_pins: bool) {
    allow_descriptors(3 * DEFAULT_READERS as u64 + 256);
    let name = TestName::new(if lock_pins { "scale-locks" } else { "scale-table" });
    let mut w = Writer::<Checked>::options().lock_pins(lock_pins).create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 8)).unwrap();
    let mut readers: Vec<_> = (0..DEFAULT_READERS)
        .map(|i| Reader::<Checked>::open(name.as_str()).unwrap_or_else(|e| panic!("reader {i}: {e}")))
        .collect();
    for r in &mut readers {
        assert_eq!(consistent(&r.read().unwrap()), Ok(1));
    }
    match Reader::<Checked>::open(name.as_str()) {
        Err(OpenError::ReaderTableFull { capacity, .. }) => assert_eq!(capacity as usize, DEFAULT_READERS),
        other => panic!("reader {} of a {DEFAULT_READERS}-reader object: {other:?}", DEFAULT_READERS + 1),
    }
    // Every reader holds generation 1 (one slot); publishing goes on.
    for g in 2..=5 {
        w.publish(&Checked::new(g, 8)).unwrap();
    }
    for r in readers.iter_mut().step_by(97) {
        assert_eq!(consistent(&r.read().unwrap()), Ok(5));
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.live_readers(), DEFAULT_READERS);
    assert!(info.slot_count <= 4, "{} slots for readers holding two generations", info.slot_count);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn default_object_serves_1024_table_pin_readers() {
    serves_default_reader_count(false);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn default_object_serves_1024_lock_pin_readers() {
    serves_default_reader_count(true);
}
