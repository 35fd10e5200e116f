//! Layouts that differ must not share a fingerprint, even where a field's type
//! mentions the type's own name (a recursive `Node`, or a `Config` holding a
//! `db::Config`): a reader of the new layout must not open an object written
//! with the old one, or its validated read returns garbage (and
//! `read_unchecked` would be unsound for bool, char and enum fields).

mod common;

use common::TestName;
use shmstate::schema::fingerprint_of;
use shmstate::{OpenError, Reader, Writer};

mod v1 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Meta {
        pub a: u32,
        pub b: u64,
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
    #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
    #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
    pub struct Node {
        pub id: u32,
        #[rkyv(omit_bounds)]
        pub kids: Vec<(Node, Meta)>,
    }

    pub mod db {
        #[shmstate::shared]
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            pub a: u32,
            pub b: u64,
        }
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Config {
        pub db: Vec<db::Config>,
        pub port: u16,
    }
}

/// `v1` with the field types of `Meta` and `db::Config` swapped; `Node` and
/// `Config` are spelled exactly as in `v1`.
mod v2 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Meta {
        pub a: u64,
        pub b: u32,
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
    #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
    #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
    pub struct Node {
        pub id: u32,
        #[rkyv(omit_bounds)]
        pub kids: Vec<(Node, Meta)>,
    }

    pub mod db {
        #[shmstate::shared]
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            pub a: u64,
            pub b: u32,
        }
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Config {
        pub db: Vec<db::Config>,
        pub port: u16,
    }
}

#[test]
fn changed_components_change_every_fingerprint_above_them() {
    assert_ne!(fingerprint_of::<v1::Meta>(), fingerprint_of::<v2::Meta>(), "Meta");
    assert_ne!(fingerprint_of::<v1::db::Config>(), fingerprint_of::<v2::db::Config>(), "db::Config");
    assert_ne!(fingerprint_of::<v1::Node>(), fingerprint_of::<v2::Node>(), "Node (recursive, holds Meta)");
    assert_ne!(fingerprint_of::<v1::Config>(), fingerprint_of::<v2::Config>(), "Config (holds db::Config)");
}

#[test]
fn reader_of_the_new_layout_refuses_an_old_object() {
    let name = TestName::new("fp-collide");
    let mut w = Writer::<v1::Config>::create(name.as_str()).unwrap();
    w.publish(&v1::Config { db: vec![v1::db::Config { a: 7, b: 0x1_0000_0002 }], port: 80 }).unwrap();
    match Reader::<v2::Config>::open(name.as_str()) {
        Err(OpenError::TypeMismatch { .. }) => {}
        Err(e) => panic!("expected TypeMismatch, got {e:?}"),
        Ok(mut r) => {
            let s = r.read().unwrap();
            panic!("a v2 reader opened a v1 object and read db[0].a = {:#x}", s.db[0].a.to_native());
        }
    }
    // The unchanged layout still opens.
    Reader::<v1::Config>::open(name.as_str()).unwrap();
}
