//! `SchemaDoc::fingerprint` on random valid docs: relabeling keeps it, a
//! layout-changing edit to a reachable type changes it.
#![no_main]

#[path = "../fingerprint_case.rs"]
mod fingerprint_case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fingerprint_case::fingerprint_case(data);
});
