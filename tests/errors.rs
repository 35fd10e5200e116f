//! Errors read well and name their object: `Debug` is the `Display` text (what
//! `?` in `main` prints), every read/wait/publish error carries the name, and a
//! full `/dev/shm` says how full it is and how to enlarge it.
#![cfg(not(miri))]

mod common;

use std::time::Duration;

use common::{Checked, TestName};
use shmstate::{Generation, OpenError, ReadError, Reader, WaitError, Writer};

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Other {
    port: u16,
}

#[test]
fn debug_is_the_display_text_with_its_newlines() {
    let name = TestName::new("err-debug");
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    let e = Reader::<Other>::open(name.as_str()).unwrap_err();
    assert!(matches!(e, OpenError::TypeMismatch { .. }), "{e}");
    let debug = format!("{e:?}");
    assert_eq!(debug, format!("{e} (OpenError::TypeMismatch)"));
    // Both schemas, one per line: real newlines, no escaped ones.
    assert!(debug.lines().count() > 4 && !debug.contains("\\n"), "{debug}");
    assert!(debug.contains(name.as_str()), "{debug}");
}

#[test]
fn read_and_wait_errors_name_the_object() {
    let name = TestName::new("err-names");
    let w = Writer::<Checked>::create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();

    let e = r.read().unwrap_err();
    assert!(matches!(&e, ReadError::Empty { name: n } if n == name.as_str()), "{e:?}");
    assert!(e.to_string().contains(name.as_str()), "{e}");
    assert_eq!(format!("{e:?}"), format!("{e} (ReadError::Empty)"));

    let e = r.wait_newer(Generation::NONE, Duration::from_millis(10)).unwrap_err();
    assert_eq!(e, WaitError::Timeout { name: name.as_str().into() });
    assert!(e.to_string().contains(name.as_str()), "{e}");

    drop(w);
    let e = r.wait_newer(Generation::NONE, Duration::from_secs(10)).unwrap_err();
    assert_eq!(e, WaitError::WriterDead { name: name.as_str().into() });
}

#[test]
fn publish_errors_name_the_object() {
    let name = TestName::new("err-publish");
    let mut w = Writer::<Checked>::options().capacity(4096).max_size(512 * 1024).create(name.as_str()).unwrap();
    let e = w.publish(&Checked::new(1, 100_000)).unwrap_err();
    assert!(matches!(&e, shmstate::PublishError::TooLarge { name: n, .. } if n == name.as_str()), "{e:?}");
    assert!(e.to_string().contains(name.as_str()), "{e}");
}

/// A data segment larger than all of `/dev/shm`: tmpfs refuses the fallocate
/// at once (ENOSPC, nothing allocated), which is the error a full `/dev/shm`
/// gives. (Filling `/dev/shm` for real would starve the machine, and a small
/// tmpfs of our own needs mount rights CI may not have; the publish-path
/// message is checked in src/error.rs from a constructed error.)
#[test]
fn creating_beyond_dev_shm_says_how_full_it_is_and_how_to_enlarge_it() {
    let st = rustix::fs::statvfs("/dev/shm").unwrap();
    let total = st.f_blocks * st.f_frsize;
    if total == 0 {
        eprintln!("SKIP: /dev/shm has no size limit");
        return;
    }
    let name = TestName::new("err-nospace");
    let capacity = total.next_multiple_of(1 << 20);
    let e = Writer::<Checked>::options()
        .slots(2)
        .capacity(capacity)
        .max_size(u64::MAX / 2)
        .create(name.as_str())
        .unwrap_err();
    let OpenError::NoSpace { name: n, needed, shm } = &e else { panic!("expected NoSpace, got {e:?}") };
    assert_eq!(n, name.as_str());
    assert!(*needed >= 2 * capacity, "needed {needed}");
    let shm = shm.expect("statvfs of /dev/shm");
    assert_eq!(shm.total, total);
    assert!(shm.free <= shm.total);
    let text = e.to_string();
    for part in [name.as_str(), "free of", "mount -o remount,size=", "--shm-size="] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[test]
fn open_errors_found_below_the_name_still_name_the_object() {
    let name = TestName::new("err-open");
    let e = Writer::<Checked>::options().slots(1).create(name.as_str()).unwrap_err();
    assert!(matches!(&e, OpenError::InvalidOption { name: n, .. } if n == name.as_str()), "{e:?}");

    // Not a shmstate object: its header check is where this is found.
    std::fs::write(format!("/dev/shm/shmstate.{}", name.as_str()), [0xab; 8192]).unwrap();
    let e = Reader::<Checked>::open(name.as_str()).unwrap_err();
    assert!(matches!(&e, OpenError::Corrupt { name: n, .. } if n == name.as_str()), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!("corrupt object {:?}: not a shmstate data segment", name.as_str())),
        "{e}"
    );
}
