// `compare` cannot compare a HashMap whose key archives to another type
// (here `String`): rkyv looks the archived keys up in the owned map, which
// needs `String: Borrow<ArchivedString>`. Use a BTreeMap, or `to_value()`.

use std::collections::HashMap;

#[shmstate::shared(compare)]
struct Limits {
    by_name: HashMap<String, u32>,
}

fn main() {}
