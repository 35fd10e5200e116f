//! Memory is bounded by what readers hold: the writer adds a slot only when
//! every slot is pinned, so an object keeps at most (distinct generations
//! pinned + 2) slots beyond its initial ones, and a reader that reads with
//! `read_releasing` holds nothing once its snapshot is gone.

mod common;

use common::{consistent, Checked, TestName};
use shmstate::{inspect, ObjectInfo, Reader, SharedReader, Writer};

const PAYLOAD_WORDS: usize = 512;

fn writer(name: &TestName, lock_pins: bool) -> Writer<Checked> {
    Writer::<Checked>::options().slots(2).lock_pins(lock_pins).create(name.as_str()).unwrap()
}

/// Readers pinning something, by the object's own account.
fn pinned_slots(info: &ObjectInfo) -> usize {
    info.slots.iter().filter(|s| !s.pinned_by.is_empty() || s.lock_pinned).count()
}

/// `n` readers, reader k pinning generation k + 1 (each read, then one more publish).
fn readers_on_distinct_generations(
    w: &mut Writer<Checked>,
    name: &TestName,
    n: u64,
    release: bool,
) -> Vec<Reader<Checked>> {
    let mut readers = Vec::new();
    for g in 1..=n {
        w.publish(&Checked::new(g, PAYLOAD_WORDS)).unwrap();
        let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
        if release {
            assert_eq!(consistent(&r.read_releasing().unwrap()), Ok(g));
        } else {
            assert_eq!(consistent(&r.read().unwrap()), Ok(g));
        }
        readers.push(r);
    }
    readers
}

fn idle_readers_keep_at_most_their_generations_plus_two(lock_pins: bool) {
    let name = TestName::new(if lock_pins { "memory-keep-locks" } else { "memory-keep" });
    let mut w = writer(&name, lock_pins);
    let readers = readers_on_distinct_generations(&mut w, &name, 6, false);
    for g in 7..200 {
        w.publish(&Checked::new(g, PAYLOAD_WORDS)).unwrap();
    }
    let info = inspect(name.as_str()).unwrap();
    assert_eq!(pinned_slots(&info), 6, "each idle reader keeps its generation: {:?}", info.slots);
    assert!(info.slot_count <= 6 + 2, "{} slots for 6 held generations", info.slot_count);
    drop(readers);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn idle_table_pin_readers_keep_at_most_their_generations_plus_two_slots() {
    idle_readers_keep_at_most_their_generations_plus_two(false);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn idle_lock_pin_readers_keep_at_most_their_generations_plus_two_slots() {
    idle_readers_keep_at_most_their_generations_plus_two(true);
}

fn read_releasing_holds_nothing_once_the_snapshot_is_gone(lock_pins: bool) {
    let name = TestName::new(if lock_pins { "memory-release-locks" } else { "memory-release" });
    let mut w = writer(&name, lock_pins);
    let mut readers = readers_on_distinct_generations(&mut w, &name, 6, true);
    let info = inspect(name.as_str()).unwrap();
    assert_eq!(pinned_slots(&info), 0, "dropped snapshots still pin: {:?}", info.slots);
    for g in 7..200 {
        w.publish(&Checked::new(g, PAYLOAD_WORDS)).unwrap();
    }
    // Two slots were enough for 200 publishes: nobody held an old one.
    assert_eq!(inspect(name.as_str()).unwrap().slot_count, 2);

    // A live snapshot does pin: the writer works around it, and its bytes stay.
    let held = readers[0].read_releasing().unwrap();
    assert_eq!(consistent(&held), Ok(199));
    for g in 200..300 {
        w.publish(&Checked::new(g, PAYLOAD_WORDS)).unwrap();
    }
    assert_eq!(consistent(&held), Ok(199));
    let info = inspect(name.as_str()).unwrap();
    assert_eq!(pinned_slots(&info), 1);
    if !lock_pins {
        assert!(info.readers.iter().any(|r| r.pinned.map(|(g, _)| g) == Some(199)), "{:?}", info.readers);
    }
    drop(held);
    assert_eq!(pinned_slots(&inspect(name.as_str()).unwrap()), 0);
    // Every read pins, the newest generation and an unchanged one alike
    // (no view is served from a cache without its pin).
    for _ in 0..2 {
        let again = readers[0].read_releasing().unwrap();
        assert_eq!(consistent(&again), Ok(299));
        assert_eq!(pinned_slots(&inspect(name.as_str()).unwrap()), 1);
    }
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn table_pin_reader_with_read_releasing_holds_nothing_once_the_snapshot_is_gone() {
    read_releasing_holds_nothing_once_the_snapshot_is_gone(false);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn lock_pin_reader_with_read_releasing_holds_nothing_once_the_snapshot_is_gone() {
    read_releasing_holds_nothing_once_the_snapshot_is_gone(true);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn shared_reader_load_releasing_unpins_when_the_last_guard_drops() {
    let name = TestName::new("memory-shared");
    let mut w = writer(&name, false);
    w.publish(&Checked::new(1, PAYLOAD_WORDS)).unwrap();
    let shared = SharedReader::<Checked>::open(name.as_str()).unwrap();
    let first = shared.load_releasing().unwrap();
    let second = shared.load_releasing().unwrap();
    for g in 2..50 {
        w.publish(&Checked::new(g, PAYLOAD_WORDS)).unwrap();
    }
    assert_eq!((consistent(&first), consistent(&second)), (Ok(1), Ok(1)));
    drop(first);
    assert_eq!(pinned_slots(&inspect(name.as_str()).unwrap()), 1, "one guard is still alive");
    drop(second);
    assert_eq!(pinned_slots(&inspect(name.as_str()).unwrap()), 0);
    assert_eq!(consistent(&shared.load_releasing().unwrap()), Ok(49));
    // A plain `load` keeps its pin, as before.
    drop(shared.load().unwrap());
    assert_eq!(pinned_slots(&inspect(name.as_str()).unwrap()), 1);
}
