//! `shmstate::dynamic::validate` accepts a mutated real snapshot exactly when
//! bytecheck (`rkyv::access`) does, and `dynamic::decode` agrees with it.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::dynamic_differential_case(data);
});
