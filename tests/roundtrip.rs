//! proptest: arbitrary values of several derived types round-trip through
//! publish / read on real shared memory (deserialize and compare).
#![cfg(not(miri))]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::TestName;
use proptest::prelude::*;
use shmstate::{Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Stop,
    Go(u32, String),
    Route { host: String, weight: Option<u16> },
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Table {
    version: u64,
    actions: Vec<Action>,
    limits: [i32; 4],
    pair: (u8, bool, char),
    by_name: HashMap<String, u64>,
    ordered: BTreeMap<u32, Vec<f64>>,
    boxed: Box<Option<i128>>,
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Wrapper<T>(T, u16);

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Stop),
        (any::<u32>(), ".{0,40}").prop_map(|(n, s)| Action::Go(n, s)),
        (".{0,20}", any::<Option<u16>>()).prop_map(|(host, weight)| Action::Route { host, weight }),
    ]
}

fn table() -> impl Strategy<Value = Table> {
    (
        any::<u64>(),
        prop::collection::vec(action(), 0..20),
        any::<[i32; 4]>(),
        any::<(u8, bool, char)>(),
        prop::collection::hash_map(".{0,12}", any::<u64>(), 0..16),
        prop::collection::btree_map(any::<u32>(), prop::collection::vec(-1e9f64..1e9, 0..5), 0..8),
        any::<Option<i128>>(),
    )
        .prop_map(|(version, actions, limits, pair, by_name, ordered, boxed)| Table {
            version,
            actions,
            limits,
            pair,
            by_name,
            ordered,
            boxed: Box::new(boxed),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tables_round_trip(values in prop::collection::vec(table(), 1..6)) {
        let name = TestName::new("prop-table");
        let mut w = Writer::<Table>::options().capacity(256).create(name.as_str()).unwrap();
        let mut r = Reader::<Table>::open(name.as_str()).unwrap();
        for v in &values {
            let g = w.publish(v).unwrap();
            let snap = r.read().unwrap();
            prop_assert_eq!(snap.generation(), g);
            prop_assert_eq!(&snap.to_value().unwrap(), v);
        }
    }

    #[test]
    fn generic_wrappers_round_trip(a in any::<Vec<u64>>(), b in any::<u16>(), s in ".{0,64}") {
        let name = TestName::new("prop-generic");
        let mut w = Writer::<Wrapper<Vec<u64>>>::create(name.as_str()).unwrap();
        let mut r = Reader::<Wrapper<Vec<u64>>>::open(name.as_str()).unwrap();
        let v = Wrapper(a, b);
        w.publish(&v).unwrap();
        prop_assert_eq!(r.read().unwrap().to_value().unwrap(), v);

        let name = TestName::new("prop-generic-s");
        let mut w = Writer::<Wrapper<String>>::create(name.as_str()).unwrap();
        let mut r = Reader::<Wrapper<String>>::open(name.as_str()).unwrap();
        let v = Wrapper(s, b);
        w.publish(&v).unwrap();
        prop_assert_eq!(r.read().unwrap().to_value().unwrap(), v);
        // The same name with another instantiation is a different type.
        let mismatch = matches!(
            Reader::<Wrapper<Vec<u64>>>::open(name.as_str()),
            Err(shmstate::OpenError::TypeMismatch { .. })
        );
        prop_assert!(mismatch, "Wrapper<Vec<u64>> opened a Wrapper<String> object");
    }
}
