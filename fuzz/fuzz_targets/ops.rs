//! Random publish / read / reopen / grow / drop-reader sequences against an
//! in-memory oracle.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::ops_case(data);
});
