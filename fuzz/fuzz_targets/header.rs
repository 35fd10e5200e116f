//! Arbitrary bytes as (or patched over) a data segment / reader table, then
//! Reader::open + read, inspect, Writer::open_or_create + publish: errors only.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::header_case(data);
});
