//! `Reader::stats`, `SharedReader::stats`, `RawReader::stats`: what a reader
//! handle counts, checked exactly against what it did in one process.

mod common;

use std::time::Duration;

use common::TestName;
use shmstate::schema::schema_of;
use shmstate::{Generation, RawReader, RawWriter, ReadError, Reader, ReaderStats, SharedReader, WaitError, Writer};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Config {
    port: u16,
    hosts: Vec<String>,
}

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Other {
    id: u64,
}

fn config(port: u16) -> Config {
    Config { port, hosts: vec!["a host name longer than inline".into()] }
}

/// The counts a test expects, with every other field 0.
#[derive(Default)]
struct Expect {
    errors: u64,
    slow_reads: u64,
    validations: u64,
    validation_failures: u64,
    waits: u64,
    wakeups: u64,
    follows: u64,
}

fn check(got: ReaderStats, e: Expect) {
    let want = (e.errors, e.slow_reads, e.validations, e.validation_failures, e.waits, e.wakeups, e.follows);
    let seen =
        (got.errors, got.slow_reads, got.validations, got.validation_failures, got.waits, got.wakeups, got.follows);
    assert_eq!(seen, want, "(errors, slow_reads, validations, failures, waits, wakeups, follows) of {got:?}");
    assert_eq!(got.conversions, 0, "{got:?}");
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn reads_slow_paths_validations_and_waits_are_counted_exactly() {
    let name = TestName::new("rstats");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    let mut g = w.publish(&config(1)).unwrap();
    let mut r = Reader::<Config>::open(name.as_str()).unwrap();
    check(r.stats(), Expect::default());
    for _ in 0..3 {
        drop(r.read().unwrap());
    }
    check(r.stats(), Expect { slow_reads: 1, validations: 1, ..Expect::default() });
    // N publishes, each read M times: one slow path and validation per generation.
    let (n, m) = (5u64, 4u64);
    for i in 0..n {
        g = w.publish(&config(i as u16)).unwrap();
        for _ in 0..m {
            assert_eq!(r.read().unwrap().generation(), g);
        }
    }
    // The n × m reads of an unchanged generation count nothing.
    check(r.stats(), Expect { slow_reads: 1 + n, validations: 1 + n, ..Expect::default() });
    // Released: the next read pins again, without validating the same generation twice.
    r.release();
    drop(r.read().unwrap());
    drop(r.read_releasing().unwrap());
    // SAFETY: the writer is this test's typed `Writer`.
    drop(unsafe { r.read_unchecked() }.unwrap());
    // (`read_releasing` found the generation `read` had just pinned: one load.)
    let slow = 1 + n + 2;
    check(r.stats(), Expect { slow_reads: slow, validations: 1 + n, ..Expect::default() });
    // A wait that times out, then one that returns the next generation.
    assert!(matches!(r.wait_newer(g, Duration::from_millis(20)), Err(WaitError::Timeout { .. })));
    let next = w.publish(&config(9)).unwrap();
    assert_eq!(r.wait_newer(g, Duration::from_secs(60)), Ok(next));
    check(r.stats(), Expect { slow_reads: slow, validations: 1 + n, waits: 2, wakeups: 1, ..Expect::default() });
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn a_snapshot_that_fails_bytecheck_counts_a_validation_failure_and_an_error() {
    let name = TestName::new("rstats-bad");
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    let mut r = Reader::<Config>::open(name.as_str()).unwrap();
    // SAFETY: no reader of this object uses `read_unchecked`.
    unsafe { w.publish_bytes_unchecked(&[0xFF; 16]) }.unwrap();
    for _ in 0..2 {
        assert!(matches!(r.read(), Err(ReadError::Invalid { .. })));
    }
    // Every read of the bad generation validates it again (and fails again).
    check(r.stats(), Expect { errors: 2, slow_reads: 2, validations: 2, validation_failures: 2, ..Expect::default() });
    let good = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&config(3)).unwrap();
    w.publish_bytes(&good).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), config(3));
    check(r.stats(), Expect { errors: 2, slow_reads: 3, validations: 3, validation_failures: 2, ..Expect::default() });
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn following_a_replaced_object_counts_a_follow_and_a_type_change_an_error() {
    let name = TestName::new("rstats-follow");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    let last = w.publish(&config(1)).unwrap();
    let mut r = Reader::<Config>::options().follow(true).open(name.as_str()).unwrap();
    drop(r.read().unwrap());
    drop(w);
    shmstate::remove(name.as_str()).unwrap();
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    let first = w.publish(&config(2)).unwrap();
    // The wait finds the replacement and returns the new object's first generation...
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Ok(first));
    // ...and the next read moves there.
    assert_eq!(r.read().unwrap().to_value().unwrap(), config(2));
    check(r.stats(), Expect { slow_reads: 2, validations: 2, waits: 1, wakeups: 1, follows: 1, ..Expect::default() });
    // Replaced by an object of another type: no follow, `Replaced`.
    drop(w);
    shmstate::remove(name.as_str()).unwrap();
    let mut other = Writer::<Other>::create(name.as_str()).unwrap();
    other.publish(&Other { id: 7 }).unwrap();
    assert!(matches!(r.wait_newer(first, Duration::from_secs(60)), Err(WaitError::Replaced { .. })));
    assert!(matches!(r.read(), Err(ReadError::Replaced { .. })));
    check(
        r.stats(),
        Expect { errors: 1, slow_reads: 3, validations: 2, waits: 2, wakeups: 1, follows: 1, ..Expect::default() },
    );
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn a_shared_reader_adds_up_every_threads_loads_exited_threads_included() {
    let name = TestName::new("rstats-shared");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    let g = w.publish(&config(1)).unwrap();
    let shared = SharedReader::<Config>::open(name.as_str()).unwrap();
    let (threads, loads) = (3u64, 7u64);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..loads {
                    assert_eq!(shared.load().unwrap().generation(), g);
                }
            });
        }
    });
    // Each thread pinned and validated the generation once.
    let per_thread = Expect { slow_reads: threads, validations: threads, ..Expect::default() };
    check(shared.stats(), per_thread);
    // This thread too, then a new generation: one more slow path here.
    drop(shared.load().unwrap());
    let next = w.publish(&config(2)).unwrap();
    assert_eq!(shared.load().unwrap().generation(), next);
    assert!(matches!(shared.wait_newer(next, Duration::from_millis(20)), Err(WaitError::Timeout { .. })));
    assert_eq!(shared.wait_newer(Generation::NONE, Duration::from_secs(60)), Ok(next));
    check(
        shared.stats(),
        Expect { slow_reads: threads + 2, validations: threads + 2, waits: 2, wakeups: 1, ..Expect::default() },
    );
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn a_raw_reader_counts_its_reads_and_waits() {
    let name = TestName::new("rstats-raw");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    let mut r = RawReader::open(name.as_str(), Duration::ZERO).unwrap();
    assert!(matches!(r.read(), Err(ReadError::Empty { .. })));
    let g = w.publish(&config(1)).unwrap();
    for _ in 0..3 {
        assert_eq!(r.read().unwrap().0, g);
    }
    assert_eq!(r.wait_newer(Generation::NONE, Duration::from_secs(60)), Ok(g));
    // Every raw read pins; nothing is validated.
    check(r.stats(), Expect { errors: 1, slow_reads: 4, waits: 1, wakeups: 1, ..Expect::default() });
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn a_dynamic_reader_counts_each_decode_as_a_validation() {
    let name = TestName::new("rstats-dyn");
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    let good = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&config(1)).unwrap();
    w.publish_bytes(&good).unwrap();
    let mut r = shmstate::dynamic::Reader::open(name.as_str()).unwrap();
    r.read().unwrap();
    r.read().unwrap();
    // SAFETY: no reader of this object uses `read_unchecked`.
    unsafe { w.publish_bytes_unchecked(&[0xFF; 16]) }.unwrap();
    assert!(matches!(r.read(), Err(shmstate::dynamic::Error::Decode { .. })));
    check(r.stats(), Expect { errors: 1, slow_reads: 3, validations: 3, validation_failures: 1, ..Expect::default() });
}
