//! `Writer::stats`: what a writer handle counts, checked against what it did.

mod common;

use common::TestName;
use shmstate::{PublishError, Writer};

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Blob {
    bytes: Vec<u8>,
}

fn blob(n: usize) -> Blob {
    Blob { bytes: vec![7; n] }
}

#[test]
fn stats_count_publishes_bytes_failures_and_growth() {
    let name = TestName::new("wstats");
    let mut w = Writer::<Blob>::options().max_size(1 << 20).create(name.as_str()).unwrap();
    assert_eq!(w.stats().publishes, 0);
    let sizes = [10usize, 1000, 100_000];
    for n in sizes {
        w.publish(&blob(n)).unwrap();
    }
    // Over `max_size`: refused, counted, nothing published.
    assert!(matches!(w.publish(&blob(2 << 20)), Err(PublishError::TooLarge { .. })));
    let s = w.stats();
    assert_eq!(s.publishes, 3);
    assert_eq!(s.failed_publishes, 1);
    // Each archive holds its bytes and a little more (length, root).
    assert!(s.bytes_published >= sizes.iter().sum::<usize>() as u64, "{s:?}");
    assert!(s.bytes_published < sizes.iter().sum::<usize>() as u64 + 3 * 64, "{s:?}");
    assert!(s.largest_snapshot >= 100_000 && s.largest_snapshot < 100_064, "{s:?}");
    assert_eq!(s.object_publishes, 3);
    assert!(s.object_growths >= 1, "100 kB does not fit the first segment: {s:?}");
    assert_eq!((s.busy, s.caught_up), (0, 0), "an exclusive writer never waits for another");
    // The object's counters agree with `inspect`.
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!((info.publishes, info.growths), (s.object_publishes, s.object_growths));
}

#[test]
fn shared_writers_count_busy_and_catching_up() {
    let name = TestName::new("wstats-shared");
    let shared = || Writer::<Blob>::options().shared(true).open_or_create(name.as_str()).unwrap();
    let (mut a, mut b) = (shared(), shared());
    a.publish(&blob(1)).unwrap();
    a.publish(&blob(2)).unwrap();
    a.update(|_| {
        assert!(matches!(b.try_publish(&blob(3)), Err(PublishError::Busy { .. })));
        blob(3)
    })
    .unwrap();
    b.publish(&blob(4)).unwrap();
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.publishes, sb.publishes), (3, 1));
    assert_eq!(sb.busy, 1);
    // a came after b's open (which took a turn), then published twice in a
    // row: it caught up once; b caught up with a's three publishes once.
    assert_eq!((sa.caught_up, sb.caught_up), (1, 1), "{sa:?} {sb:?}");
    // The object's counters, read when `stats` is called: every writer's.
    assert_eq!((sa.object_publishes, sb.object_publishes), (4, 4));
}
