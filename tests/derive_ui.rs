//! Compile-time behaviour of `#[shared]` and `#[derive(Schema)]`: errors carry
//! spans and clear messages (checked-in `.stderr`), and the supported shapes
//! compile. Regenerate with `TRYBUILD=overwrite` after an intended change.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
