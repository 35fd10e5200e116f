//! `shmstate::dynamic::encode` inverts `decode`: the value decoded from
//! arbitrary bytes encodes again without panicking, and (for the fixed
//! schema) to bytes that validate and decode to the same value.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::encode_case(data);
});
