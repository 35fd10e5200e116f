//! Fuzzer edits over a map's pages segment (nodes, values, the schema block,
//! the header): the typed and type-erased readers and a takeover give
//! errors or values, never a crash (fuzz/harness.rs `MapRig`).
#![no_main]

use std::cell::RefCell;

#[path = "../harness.rs"]
mod harness;

thread_local! {
    static RIG: RefCell<Option<harness::MapRig>> = const { RefCell::new(None) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    RIG.with(|rig| {
        let mut rig = rig.borrow_mut();
        rig.get_or_insert_with(harness::MapRig::new).run(data);
    });
});
