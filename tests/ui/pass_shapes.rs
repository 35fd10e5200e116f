//! Every supported shape, with user derives and `#[rkyv(..)]` kept, and the
//! runtime crate renamed.

use std::collections::{BTreeMap, HashMap};

use shmstate as renamed;
use shmstate::schema::fingerprint_of;

#[shmstate::shared]
#[rkyv(derive(Debug), compare(PartialEq))]
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub a: u32,
    pub r#type: String,
}

#[derive(Debug)]
#[shmstate::shared]
struct Tuple(u8, Vec<Named>);

#[shmstate::shared]
struct Unit;

#[shmstate::shared]
#[repr(u16)]
enum Data {
    A = 3,
    B { x: Option<Box<Named>>, y: [u8; 4] },
    C(HashMap<String, BTreeMap<u32, (u8, i64)>>),
}

#[shmstate::shared(crate = renamed)]
struct Generic<T, const N: usize>
where
    T: Clone,
{
    items: [T; N],
    more: Vec<T>,
}

#[shmstate::shared(crate = ::shmstate)]
enum Plain {
    On,
    Off,
}

#[derive(shmstate::rkyv::Archive, shmstate::Schema)]
#[rkyv(crate = shmstate::rkyv)]
struct Manual {
    a: Vec<u8>,
}

fn main() {
    let fps = [
        fingerprint_of::<Named>(),
        fingerprint_of::<Tuple>(),
        fingerprint_of::<Unit>(),
        fingerprint_of::<Data>(),
        fingerprint_of::<Generic<u8, 2>>(),
        fingerprint_of::<Plain>(),
        fingerprint_of::<Manual>(),
    ];
    assert!(fps.iter().all(|&f| f != 0));
    let _ = shmstate::schema::schema_of::<Generic<String, 3>>().to_string();
}
