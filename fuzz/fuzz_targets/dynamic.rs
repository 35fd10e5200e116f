//! `shmstate::dynamic::decode` on arbitrary snapshot (and schema) bytes never panics,
//! and `dynamic::validate` agrees with it.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::dynamic_case(data);
});
