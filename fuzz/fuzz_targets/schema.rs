//! `shmstate::schema::SchemaDoc::decode` on arbitrary bytes never panics.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::schema_case(data);
});
