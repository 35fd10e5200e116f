//! `Debug` on archived types by default (also for generic types, and without a
//! duplicate impl when the user asks rkyv for it too), `debug = false`, and
//! `#[shared(compare)]` equality with the owned value.

use std::collections::BTreeMap;

use shmstate::rkyv;

fn archive<T>(value: &T) -> rkyv::util::AlignedVec
where
    T: for<'a> rkyv::Serialize<rkyv::api::high::HighSerializer<rkyv::util::AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rkyv::rancor::Error>>,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(value).unwrap()
}

#[shmstate::shared]
struct Plain {
    port: u16,
    r#type: String,
    tls: Option<bool>,
}

#[shmstate::shared]
enum Mode {
    Primary,
    Replica { of: String },
    Weighted(u8),
}

// The user's own request for Debug (plain or through `attr`) is not doubled.
#[shmstate::shared]
#[rkyv(derive(Debug, PartialEq))]
struct AskedToo(u32);

#[shmstate::shared]
#[rkyv(attr(derive(Debug)))]
struct AskedThroughAttr(u32);

#[shmstate::shared]
struct Pair<T> {
    a: T,
    b: Vec<T>,
}

#[shmstate::shared]
#[rkyv(archived = Tagged)]
enum Either<L, R> {
    Left(L),
    Right { value: R },
}

#[shmstate::shared]
struct HoldsGeneric {
    pair: Pair<u16>,
    either: Either<String, i8>,
}

// `debug = false`: no derived impl, so a hand-written one does not collide.
#[shmstate::shared(debug = false)]
struct Secret(String);

impl std::fmt::Debug for ArchivedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchivedSecret(..)")
    }
}

#[shmstate::shared(compare)]
#[derive(Clone)]
struct Compared {
    port: u16,
    hosts: Vec<String>,
    mode: Option<Mode2>,
    limits: BTreeMap<String, u32>,
}

#[shmstate::shared(compare)]
#[derive(Clone)]
enum Mode2 {
    Primary,
    Replica { of: String },
}

// Already asked for: not doubled (rkyv takes one `compare` list).
#[shmstate::shared(compare)]
#[rkyv(compare(PartialEq))]
struct ComparedToo(u32);

fn main() {
    let bytes = archive(&Plain { port: 8080, r#type: "x".into(), tls: None });
    let plain = rkyv::access::<ArchivedPlain, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{plain:?}"), r#"ArchivedPlain { port: 8080, type: "x", tls: None }"#);

    let bytes = archive(&HoldsGeneric {
        pair: Pair { a: 1, b: vec![2, 3] },
        either: Either::Right { value: -4 },
    });
    let held = rkyv::access::<ArchivedHoldsGeneric, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(
        format!("{held:?}"),
        "ArchivedHoldsGeneric { pair: ArchivedPair { a: 1, b: [2, 3] }, either: Right { value: -4 } }"
    );
    let bytes = archive(&Either::<String, i8>::Left("l".into()));
    let left = rkyv::access::<Tagged<String, i8>, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{left:?}"), r#"Left("l")"#);

    let bytes = archive(&Mode::Replica { of: "db-1".into() });
    let mode = rkyv::access::<ArchivedMode, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{mode:?}"), r#"Replica { of: "db-1" }"#);

    let bytes = archive(&AskedToo(7));
    let asked = rkyv::access::<ArchivedAskedToo, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{asked:?}"), "ArchivedAskedToo(7)");
    let bytes = archive(&AskedThroughAttr(8));
    let asked = rkyv::access::<ArchivedAskedThroughAttr, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{asked:?}"), "ArchivedAskedThroughAttr(8)");

    let bytes = archive(&Secret("hunter2".into()));
    let secret = rkyv::access::<ArchivedSecret, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(format!("{secret:?}"), "ArchivedSecret(..)");

    let value = Compared {
        port: 8080,
        hosts: vec!["a".into()],
        mode: Some(Mode2::Replica { of: "a".into() }),
        limits: BTreeMap::from([("conns".into(), 512)]),
    };
    let bytes = archive(&value);
    let archived = rkyv::access::<ArchivedCompared, rkyv::rancor::Error>(&bytes).unwrap();
    assert!(*archived == value);
    let mut other = value.clone();
    other.limits.insert("timeout".into(), 1);
    assert!(*archived != other);

    let bytes = archive(&ComparedToo(3));
    let archived = rkyv::access::<ArchivedComparedToo, rkyv::rancor::Error>(&bytes).unwrap();
    assert!(*archived == ComparedToo(3));
}
