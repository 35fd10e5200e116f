//! The type-agnostic writer: publishes already-archived bytes under a schema's
//! fingerprint; typed readers cannot tell the difference. `publish_bytes`
//! refuses bytes that are no valid archive of the schema's type; the
//! `unsafe` `publish_bytes_unchecked` does not, and then bad bytes are the
//! validating readers' `ReadError::Invalid`, never undefined behaviour.

mod common;

use common::TestName;
use shmstate::schema::{fingerprint_of, schema_of};
use shmstate::{OpenError, RawWriter, ReadError, Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Config {
    port: u16,
    hosts: Vec<String>,
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Other {
    port: u32,
}

fn archived(c: &Config) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(c).unwrap().to_vec()
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn typed_readers_read_what_the_raw_writer_publishes() {
    let name = TestName::new("raw-pub");
    let schema = schema_of::<Config>();
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema).unwrap();
    assert_eq!(w.fingerprint(), fingerprint_of::<Config>());
    let c1 = Config { port: 80, hosts: vec!["a".into(), "b".into()] };
    assert_eq!(w.publish_bytes(&archived(&c1)).unwrap().get(), 1);
    let mut r = Reader::<Config>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), c1);
    // A snapshot larger than the slots: the writer grows, as for typed publishes.
    let big = Config { port: 81, hosts: (0..2000).map(|i| format!("host-{i}")).collect() };
    assert_eq!(w.publish_bytes(&archived(&big)).unwrap().get(), 2);
    assert_eq!(r.read().unwrap().to_value().unwrap(), big);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn raw_writer_takes_over_only_its_own_type() {
    let name = TestName::new("raw-takeover");
    let mut typed = Writer::<Config>::create(name.as_str()).unwrap();
    typed.publish(&Config { port: 1, hosts: vec![] }).unwrap();
    drop(typed);
    match RawWriter::options().open_or_create_raw(name.as_str(), &schema_of::<Other>()) {
        Err(OpenError::TypeMismatch { .. }) => {}
        other => panic!("a raw writer of another type took over: {other:?}"),
    }
    let mut raw = RawWriter::options().open_or_create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    let c = Config { port: 2, hosts: vec!["x".into()] };
    assert_eq!(raw.publish_bytes(&archived(&c)).unwrap().get(), 2);
    assert_eq!(Reader::<Config>::open(name.as_str()).unwrap().read().unwrap().to_value().unwrap(), c);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn garbage_bytes_are_invalid_for_readers_and_the_next_good_snapshot_reads() {
    let name = TestName::new("raw-garbage");
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    let mut r = Reader::<Config>::open(name.as_str()).unwrap();
    // A relative pointer to nowhere, a truncated archive, nothing at all.
    for bad in
        [vec![0xFFu8; 16], archived(&Config { port: 3, hosts: vec!["long enough".into()] })[4..].to_vec(), vec![]]
    {
        // SAFETY: no reader of this object uses `read_unchecked`.
        let g = unsafe { w.publish_bytes_unchecked(&bad) }.unwrap();
        match r.read() {
            Err(ReadError::Invalid { generation, .. }) => assert_eq!(generation, g.get()),
            other => panic!("garbage read as {other:?}"),
        }
    }
    let good = Config { port: 4, hosts: vec![] };
    w.publish_bytes(&archived(&good)).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), good);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn a_schema_readers_would_refuse_is_refused_at_open() {
    let name = TestName::new("raw-bad-schema");
    let broken = shmstate::schema::SchemaDoc { root: 5, types: Vec::new() };
    match RawWriter::options().create_raw(name.as_str(), &broken) {
        Err(OpenError::InvalidOption { .. }) => {}
        other => panic!("a writer of an invalid schema: {other:?}"),
    }
    assert!(matches!(shmstate::inspect(name.as_str()), Err(OpenError::NotFound { .. })), "nothing is created");
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn inspect_shows_where_a_mirrored_object_comes_from() {
    let name = TestName::new("raw-origin");
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    w.publish_bytes(&archived(&Config { port: 1, hosts: vec![] })).unwrap();
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().origin, None, "published locally");
    // A host name longer than the 24 bytes kept.
    w.set_origin("edge-eu-west-1.fleet.example.com", shmstate::Generation::new(4711));
    w.publish_bytes(&archived(&Config { port: 2, hosts: vec![] })).unwrap();
    let origin = shmstate::inspect(name.as_str()).unwrap().origin.unwrap();
    assert_eq!((origin.host.as_str(), origin.generation), ("edge-eu-west-1.fleet.exa", 4711));
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn after_release_a_new_generation_is_validated_again_whatever_slot_it_reuses() {
    // Two slots: a released reader's slot is reused at once, so the same slot
    // holds first a good snapshot, then garbage under a new generation.
    let name = TestName::new("raw-release");
    let mut w = RawWriter::options().slots(2).create_raw(name.as_str(), &schema_of::<Config>()).unwrap();
    let mut r = Reader::<Config>::open(name.as_str()).unwrap();
    let good = Config { port: 5, hosts: vec!["a".into()] };
    for _ in 0..3 {
        w.publish_bytes(&archived(&good)).unwrap();
        assert_eq!(r.read().unwrap().to_value().unwrap(), good);
        r.release();
        // The same generation again after release: the same bytes.
        assert_eq!(r.read().unwrap().to_value().unwrap(), good);
        r.release();
        // SAFETY: no reader of this object uses `read_unchecked`.
        let g = unsafe { w.publish_bytes_unchecked(&[0xFF; 16]) }.unwrap();
        for _ in 0..2 {
            match r.read() {
                Err(ReadError::Invalid { generation, .. }) => assert_eq!(generation, g.get()),
                other => panic!("garbage after release read as {other:?}"),
            }
            r.release();
        }
    }
}

/// The review's reproducer: an `ArchivedVec` claiming 2^28 elements over a
/// few bytes. `publish_bytes` used to accept it (safe, "readers validate"),
/// and a reader that trusts its writer (`read_unchecked`) then ran off the
/// mapping. Now it is refused and nothing is published.
#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn publish_bytes_refuses_bytes_that_are_no_valid_archive() {
    #[shmstate::shared]
    struct S {
        v: Vec<u32>,
    }
    let name = TestName::new("raw-refuse");
    let mut w = RawWriter::options().create_raw(name.as_str(), &schema_of::<S>()).unwrap();
    // With pointer_width_32: a RelPtr (i32 offset), then the u32 length.
    let mut bytes = 0i32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(1u32 << 28).to_le_bytes());
    match w.publish_bytes(&bytes) {
        Err(shmstate::PublishError::Invalid { reason, .. }) => println!("refused: {reason}"),
        other => panic!("a vector past the end was published: {other:?}"),
    }
    for bad in [vec![0xFFu8; 16], vec![]] {
        assert!(matches!(w.publish_bytes(&bad), Err(shmstate::PublishError::Invalid { .. })));
    }
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().generation, 0, "nothing was published");
    let good = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&S { v: vec![1, 2, 3] }).unwrap();
    assert_eq!(w.publish_bytes(&good).unwrap().get(), 1);
    let mut r = Reader::<S>::open(name.as_str()).unwrap();
    // SAFETY: this object's only writer is `w`, whose `publish_bytes` validates.
    let s = unsafe { r.read_unchecked() }.unwrap();
    assert_eq!(s.v.iter().map(|x| x.to_native()).sum::<u32>(), 6);
}
