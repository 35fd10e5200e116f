//! `RawLaneWriter`: the untyped writer of an object and its lanes
//! (docs/DEPLOYING.md "Lanes"), as `shmstate-bridge` uses it to mirror a
//! writer with lanes: typed readers of each layout read what it published,
//! invalid bytes in any layout publish nothing, and a new set of layouts
//! keeps the layouts still published.
#![cfg(not(miri))]

mod common;

use common::TestName;
use shmstate::schema::{schema_of, SchemaDoc};
use shmstate::{PublishError, RawWriter, Reader};

mod v1 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub port: u16,
    }
}

mod v2 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub port: u32,
        pub zone: String,
    }
}

fn v1_bytes(v: &v1::Conf) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec()
}

fn v2_bytes(v: &v2::Conf) -> Vec<u8> {
    shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(v).unwrap().to_vec()
}

fn layouts() -> Vec<SchemaDoc> {
    vec![schema_of::<v1::Conf>(), schema_of::<v2::Conf>()]
}

#[test]
fn each_layout_is_read_by_its_typed_reader_under_one_generation() {
    let name = TestName::new("rawlanes-read");
    let mut w = RawWriter::options().create_raw_lanes(name.as_str(), &layouts()).unwrap();
    let fps = w.fingerprints();
    assert_eq!(fps, [shmstate::schema::fingerprint_of::<v1::Conf>(), shmstate::schema::fingerprint_of::<v2::Conf>()]);
    let (a, b) = (v1_bytes(&v1::Conf { port: 80 }), v2_bytes(&v2::Conf { port: 80, zone: "eu".into() }));
    let g = w.publish_lanes(&[&a, &b]).unwrap();
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    let mut r2 = Reader::<v2::Conf>::open(name.as_str()).unwrap();
    assert_eq!(r1.object_name(), name.as_str());
    assert_eq!(r2.object_name(), format!("{}@{:016x}", name.as_str(), fps[1]));
    let s1 = r1.read().unwrap();
    assert_eq!((s1.generation(), s1.port.to_native()), (g, 80));
    let s2 = r2.read().unwrap();
    assert_eq!((s2.generation(), s2.zone.as_str()), (g, "eu"));
}

#[test]
fn invalid_bytes_in_one_layout_publish_nothing() {
    let name = TestName::new("rawlanes-invalid");
    let mut w = RawWriter::options().create_raw_lanes(name.as_str(), &layouts()).unwrap();
    let a = v1_bytes(&v1::Conf { port: 1 });
    // V1's bytes given as V2's: no valid V2 archive.
    let refused = w.publish_lanes(&[&a, &a]);
    assert!(matches!(refused, Err(PublishError::Invalid { .. })), "{refused:?}");
    assert!(matches!(w.publish_lanes(&[&a]), Err(PublishError::Invalid { .. })));
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    assert!(r1.read().is_err(), "the V1 layout published although V2's bytes were refused");
}

#[test]
fn a_new_set_of_layouts_keeps_the_plain_object_when_it_still_publishes_it() {
    let name = TestName::new("rawlanes-relayout");
    let a = v1_bytes(&v1::Conf { port: 7 });
    let b = v2_bytes(&v2::Conf { port: 7, zone: "x".into() });
    let mut only_v1 = RawWriter::options().create_raw_lanes(name.as_str(), &layouts()[..1]).unwrap();
    only_v1.publish_lanes(&[&a]).unwrap();
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    drop(only_v1);
    // The V2 layout added: V1 stays under the plain name, its reader reads on.
    let mut both = RawWriter::options().open_or_create_raw_lanes(name.as_str(), &layouts()).unwrap();
    let g = both.publish_lanes(&[&a, &b]).unwrap();
    let snap = r1.read().unwrap();
    assert_eq!((snap.generation(), snap.port.to_native()), (g, 7));
    assert_eq!(Reader::<v2::Conf>::open(name.as_str()).unwrap().read().unwrap().generation(), g);
}
