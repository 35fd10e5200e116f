//! Fuzzer bytes as the current slot's payload behind a valid header: `read`
//! returns Ok (the view is then walked) or ReadError::Invalid.
#![no_main]

use std::cell::RefCell;

#[path = "../harness.rs"]
mod harness;

thread_local! {
    static RIG: RefCell<Option<harness::PayloadRig>> = const { RefCell::new(None) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    RIG.with(|rig| {
        let mut rig = rig.borrow_mut();
        rig.get_or_insert_with(harness::PayloadRig::new).run(data);
    });
});
