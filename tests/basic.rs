//! Single-process behaviour of writers and readers on real shared memory.
#![cfg(not(miri))]

mod common;

use std::time::Duration;

use common::{consistent, Checked, TestName};
use shmstate::{Generation, OpenError, ReadError, Reader, WaitError, Writer};

#[test]
fn publish_then_read_round_trips() {
    let name = TestName::new("roundtrip");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert!(matches!(r.read(), Err(ReadError::Empty { name: n }) if n == name.as_str()));
    for g in 1..=20u64 {
        let v = Checked::new(g, (g * 13 % 200) as usize);
        assert_eq!(w.publish(&v).unwrap(), Generation::new(g));
        let snap = r.read().unwrap();
        assert_eq!(snap.generation().get(), g);
        assert_eq!(consistent(&snap), Ok(g));
        assert_eq!(snap.to_value().unwrap(), v);
    }
}

#[test]
fn unchanged_generation_returns_the_same_view() {
    let name = TestName::new("cached");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 10)).unwrap();
    let p1 = &*r.read().unwrap() as *const _;
    let p2 = &*r.read().unwrap() as *const _;
    assert_eq!(p1, p2);
    w.publish(&Checked::new(2, 10)).unwrap();
    let s = r.read().unwrap();
    assert_eq!(s.generation().get(), 2);
}

#[test]
fn reader_before_writer_is_not_found() {
    let name = TestName::new("notfound");
    match Reader::<Checked>::open(name.as_str()) {
        Err(OpenError::NotFound { name: n }) => assert_eq!(n, name.as_str()),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn second_writer_is_busy() {
    let name = TestName::new("busy");
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    match Writer::<Checked>::open_or_create(name.as_str()) {
        Err(OpenError::WriterBusy { .. }) => {}
        other => panic!("expected WriterBusy, got {other:?}"),
    }
    match Writer::<Checked>::create(name.as_str()) {
        Err(OpenError::WriterBusy { .. }) => {}
        other => panic!("expected WriterBusy, got {other:?}"),
    }
}

#[shmstate::shared]
#[derive(Debug)]
struct Other {
    port: u16,
}

#[test]
fn wrong_type_is_a_type_mismatch_naming_both() {
    let name = TestName::new("mismatch");
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    let err = Reader::<Other>::open(name.as_str()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, OpenError::TypeMismatch { .. }), "{err:?}");
    assert!(text.contains("Checked") && text.contains("Other"), "{text}");
    assert!(text.contains("payload") && text.contains("port"), "{text}");
}

#[test]
fn create_on_existing_object_is_already_exists_and_takeover_continues_generations() {
    let name = TestName::new("takeover");
    {
        let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
        for g in 1..=5 {
            w.publish(&Checked::new(g, 3)).unwrap();
        }
    }
    assert!(matches!(Writer::<Checked>::create(name.as_str()), Err(OpenError::AlreadyExists { .. })));
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().generation().get(), 5, "last snapshot outlives its writer");
    let mut w = Writer::<Checked>::open_or_create(name.as_str()).unwrap();
    assert_eq!(w.publish(&Checked::new(6, 3)).unwrap().get(), 6);
    assert_eq!(consistent(&r.read().unwrap()), Ok(6));
}

#[test]
fn growth_follows_values_of_any_size() {
    let name = TestName::new("growth");
    let mut w = Writer::<Checked>::options().capacity(1024).create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    let sizes = [100usize, 10 << 20 >> 3, 100, 10 << 20 >> 3, 50, 300_000];
    for (i, &n) in sizes.iter().enumerate() {
        let g = i as u64 + 1;
        w.publish(&Checked::new(g, n)).unwrap();
        let s = r.read().unwrap();
        assert_eq!(consistent(&s), Ok(g));
        assert_eq!(s.payload.len(), n);
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.growths >= 1);
    assert!(info.size >= (10 << 20), "segment grew to {}", info.size);
}

#[test]
fn pinned_snapshot_is_never_overwritten() {
    let name = TestName::new("pinned");
    let mut w = Writer::<Checked>::options().slots(2).create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 64)).unwrap();
    let snap = r.read().unwrap();
    for g in 2..200 {
        w.publish(&Checked::new(g, 64)).unwrap();
    }
    // The reader still holds generation 1, intact, although 198 publishes passed.
    assert_eq!(consistent(&snap), Ok(1));
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.slot_count >= 3, "a pinned slot forces a third slot");
    assert!(info.slot_count <= 4, "bounded: {} slots", info.slot_count);
}

#[test]
fn wait_newer_wakes_on_publish_and_times_out() {
    let name = TestName::new("wait");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(
        r.wait_newer(Generation::NONE, Duration::from_millis(20)),
        Err(WaitError::Timeout { name: name.as_str().into() })
    );
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        w.publish(&Checked::new(1, 1)).unwrap();
        w
    });
    assert_eq!(r.wait_newer(Generation::NONE, Duration::from_secs(10)).unwrap().get(), 1);
    let w = t.join().unwrap();
    drop(w);
    // The writer is gone: no hang, a clear answer.
    assert_eq!(
        r.wait_newer(Generation::new(1), Duration::from_secs(10)),
        Err(WaitError::WriterDead { name: name.as_str().into() })
    );
}

#[test]
fn remove_on_drop_and_remove() {
    let name = TestName::new("remove");
    {
        let _w = Writer::<Checked>::options().remove_on_drop(true).create(name.as_str()).unwrap();
        assert!(Reader::<Checked>::open(name.as_str()).is_ok());
    }
    assert!(matches!(Reader::<Checked>::open(name.as_str()), Err(OpenError::NotFound { .. })));
    assert!(matches!(shmstate::remove(name.as_str()), Err(shmstate::RemoveError::NotFound { .. })));
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    shmstate::remove(name.as_str()).unwrap();
    assert!(matches!(Reader::<Checked>::open(name.as_str()), Err(OpenError::NotFound { .. })));
}

#[test]
fn invalid_names_are_rejected() {
    for bad in ["", "a/b", "../etc", ".x", "x.lock"] {
        assert!(matches!(Writer::<Checked>::create(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
        assert!(matches!(Reader::<Checked>::open(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
    }
}

#[test]
fn reader_table_full_is_reported() {
    let name = TestName::new("full");
    let _w = Writer::<Checked>::options().max_readers(2).create(name.as_str()).unwrap();
    let _a = Reader::<Checked>::open(name.as_str()).unwrap();
    let _b = Reader::<Checked>::open(name.as_str()).unwrap();
    assert!(
        matches!(Reader::<Checked>::open(name.as_str()), Err(OpenError::ReaderTableFull { capacity: 2, name: n }) if n == name.as_str())
    );
    drop(_a);
    assert!(Reader::<Checked>::open(name.as_str()).is_ok(), "a closed handle frees its entry");
}

#[test]
fn symlink_under_an_object_name_is_refused() {
    let name = TestName::new("symlink");
    let target = format!("/dev/shm/shmstate-symlink-target-{}", std::process::id());
    std::fs::write(&target, b"not an object").unwrap();
    let link = format!("/dev/shm/shmstate.{}", name.as_str());
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let reader = Reader::<Checked>::open(name.as_str());
    let writer = Writer::<Checked>::open_or_create(name.as_str());
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&target);
    assert!(matches!(reader, Err(OpenError::Corrupt { ref what, .. }) if what.contains("symbolic link")), "{reader:?}");
    assert!(matches!(writer, Err(OpenError::Corrupt { .. }) | Err(OpenError::AlreadyExists { .. })), "{writer:?}");
}

#[test]
fn objects_of_another_user_are_not_taken_over() {
    let name = TestName::new("foreign");
    drop(Writer::<Checked>::create(name.as_str()).unwrap());
    let me = std::fs::metadata(format!("/dev/shm/shmstate.{}", name.as_str())).unwrap();
    let (me_uid, nobody) = (std::os::unix::fs::MetadataExt::uid(&me), 65534);
    // The test runs as root in CI; elsewhere chown is not allowed and the test says so.
    if std::os::unix::fs::chown(format!("/dev/shm/shmstate.{}", name.as_str()), Some(nobody), None).is_err() {
        eprintln!("skipping: cannot chown (not root)");
        return;
    }
    match Writer::<Checked>::open_or_create(name.as_str()) {
        Err(OpenError::NotOwner { owner, .. }) => assert_eq!(owner, nobody),
        other => panic!("expected NotOwner, got {other:?}"),
    }
    let strict = Reader::<Checked>::options().owner(me_uid).open(name.as_str());
    assert!(matches!(strict, Err(OpenError::NotOwner { owner: 65534, .. })), "{strict:?}");
    assert!(Reader::<Checked>::options().owner(nobody).open(name.as_str()).is_ok());
}

#[test]
fn lock_pins_round_trip_and_protect_a_held_snapshot() {
    let name = TestName::new("lockpins");
    let mut w = Writer::<Checked>::options().lock_pins(true).slots(2).capacity(256).create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    let mut other = Reader::<Checked>::open(name.as_str()).unwrap();
    assert!(matches!(r.read(), Err(ReadError::Empty { name: n }) if n == name.as_str()));
    w.publish(&Checked::new(1, 16)).unwrap();
    let held = r.read().unwrap();
    for g in 2..300 {
        w.publish(&Checked::new(g, (g % 50) as usize * 100)).unwrap();
        assert_eq!(consistent(&other.read().unwrap()), Ok(g));
    }
    assert_eq!(consistent(&held), Ok(1), "a lock-pinned snapshot is never rewritten");
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.pin_mode, "locks");
    assert!(info.slots.iter().any(|s| s.lock_pinned && s.generation == 1), "{:#?}", info.slots);
    assert!(info.slot_count <= 4, "bounded: {}", info.slot_count);
    drop(held);
    r.release();
    w.publish(&Checked::new(300, 1)).unwrap();
    w.publish(&Checked::new(301, 1)).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.slots.iter().all(|s| s.generation != 1), "released slot reused: {:#?}", info.slots);
}

#[test]
fn lock_pins_are_the_default_for_objects_others_may_read() {
    let name = TestName::new("lockdefault");
    let mut w = Writer::<Checked>::options().mode(0o644).create(name.as_str()).unwrap();
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().pin_mode, "locks");
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 3)).unwrap();
    assert_eq!(consistent(&r.read().unwrap()), Ok(1));
    // Nobody counts waiters with lock pins: the writer always wakes.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        w.publish(&Checked::new(2, 3)).unwrap();
        w
    });
    assert_eq!(r.wait_newer(Generation::new(1), Duration::from_secs(10)).unwrap().get(), 2);
    drop(t.join().unwrap());
    let name2 = TestName::new("tabledefault");
    let _w = Writer::<Checked>::create(name2.as_str()).unwrap();
    assert_eq!(shmstate::inspect(name2.as_str()).unwrap().pin_mode, "reader table");
}

#[test]
fn wait_newer_with_spin_sees_publishes_and_still_times_out() {
    let name = TestName::new("spin");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let r = Reader::<Checked>::options().wait_spin(Duration::from_millis(5)).open(name.as_str()).unwrap();
    assert_eq!(
        r.wait_newer(Generation::NONE, Duration::from_millis(20)),
        Err(WaitError::Timeout { name: name.as_str().into() })
    );
    // Generation 2 comes only once the reader has seen 1 (on a loaded machine
    // the reader could otherwise wake after both). The sleeps only make the
    // waits likely to spin (2 ms) and then to block past the spin (30 ms).
    let (seen_first, first_seen) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2));
        w.publish(&Checked::new(1, 1)).unwrap();
        first_seen.recv_timeout(Duration::from_secs(10)).expect("the reader saw generation 1");
        std::thread::sleep(Duration::from_millis(30));
        w.publish(&Checked::new(2, 1)).unwrap();
        w
    });
    assert_eq!(r.wait_newer(Generation::NONE, Duration::from_secs(10)).unwrap().get(), 1);
    seen_first.send(()).unwrap();
    assert_eq!(r.wait_newer(Generation::new(1), Duration::from_secs(10)).unwrap().get(), 2);
    drop(t.join().unwrap());
}

#[test]
fn read_validates_a_generation_first_seen_by_read_unchecked() {
    use std::os::unix::fs::FileExt;
    let name = TestName::new("unchecked");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 8)).unwrap();
    // SAFETY: the view is never dereferenced, so its bytes are never used.
    let generation = unsafe { r.read_unchecked() }.unwrap().generation();
    assert_eq!(generation.get(), 1);
    // Spoil the root (rkyv puts it at the end) as a process with write access could.
    let info = shmstate::inspect(name.as_str()).unwrap();
    let slot = &info.slots[info.current_slot.unwrap() as usize];
    let data = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/shmstate.{}", name.as_str())).unwrap();
    data.write_all_at(&[0xff; 32], slot.offset + slot.len - 32).unwrap();
    // The unchecked view is cached, but `read` must not hand it out unvalidated.
    assert!(matches!(r.read(), Err(ReadError::Invalid { generation: 1, .. })));
}

#[test]
fn type_mismatch_names_a_different_rkyv_format() {
    use std::os::unix::fs::FileExt;
    let name = TestName::new("rkyvfmt");
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    let data = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/shmstate.{}", name.as_str())).unwrap();
    // As a build with other rkyv format features would have written it:
    // another fingerprint (the format is part of it) and another format word.
    data.write_all_at(&0x1234u64.to_le_bytes(), 16).unwrap();
    data.write_all_at(&0x5678u64.to_le_bytes(), 24).unwrap();
    let err = Reader::<Checked>::open(name.as_str()).unwrap_err();
    assert!(matches!(err, OpenError::TypeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("another rkyv format"), "{err}");
}

#[test]
fn lock_pin_readers_opening_at_once_all_get_seats() {
    let name = TestName::new("seats");
    let _w = Writer::<Checked>::options().lock_pins(true).max_readers(8).create(name.as_str()).unwrap();
    for _round in 0..300 {
        let barrier = std::sync::Barrier::new(8);
        let opened: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Reader::<Checked>::open(name.as_str())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let failed: Vec<_> = opened.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "8 readers, 8 seats: {failed:?}");
        assert_eq!(shmstate::inspect(name.as_str()).unwrap().live_readers(), 8);
        // A ninth finds every seat taken.
        assert!(
            matches!(Reader::<Checked>::open(name.as_str()), Err(OpenError::ReaderTableFull { capacity: 8, name: n }) if n == name.as_str())
        );
    }
}
