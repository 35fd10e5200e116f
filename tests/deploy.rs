//! Deployments: another version of the type, writer restarts, replaced
//! objects, readers started before their writer. Behaviour about processes is
//! tested with real processes (this test binary re-executed with a role).
#![cfg(not(miri))]

mod common;

use common::TestName;
use shmstate::{OpenError, Reader, Writer};

/// The type as the running writer was built.
mod v1 {
    #[shmstate::shared]
    pub struct Db {
        pub host: String,
        pub port: u16,
    }

    #[shmstate::shared]
    pub enum Mode {
        Primary,
        Standby { lag_ms: u32 },
    }

    #[shmstate::shared]
    pub struct Config {
        pub db: Vec<Db>,
        pub mode: Mode,
        pub name: String,
    }
}

/// The type as the new reader was built: one field retyped, a variant added.
mod v2 {
    #[shmstate::shared]
    pub struct Db {
        pub host: String,
        pub port: u32,
    }

    #[shmstate::shared]
    pub enum Mode {
        Primary,
        Standby { lag_ms: u32 },
        Replica { of: String },
    }

    #[shmstate::shared]
    pub struct Config {
        pub db: Vec<Db>,
        pub mode: Mode,
        pub name: String,
    }
}

#[test]
fn type_mismatch_shows_the_field_diff_and_what_to_do_not_both_schemas() {
    let name = TestName::new("diffmsg");
    let _w = Writer::<v1::Config>::create(name.as_str()).unwrap();
    let err = Reader::<v2::Config>::open(name.as_str()).unwrap_err();
    let OpenError::TypeMismatch { diff, .. } = &err else { panic!("expected TypeMismatch, got {err:?}") };
    let lines: Vec<String> = diff.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["Config.db[].port: u16 → u32", "Config.mode: variant Mode::Replica added", "Config: 24 → 28 bytes, align 4"]
    );

    let text = err.to_string();
    println!("{text}");
    for want in [
        "Config.db[].port: u16 → u32",
        "Config.mode: variant Mode::Replica added",
        &format!("{:#018x}", <v1::Config as shmstate::Schema>::FINGERPRINT),
        &format!("{:#018x}", <v2::Config as shmstate::Schema>::FINGERPRINT),
        "roll readers and writer together",
        "publish both versions",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The diff, not the two schemas (the old message printed every type twice).
    assert!(!text.contains("struct Db"), "{text}");
    assert!(text.lines().count() <= 8, "{text}");
    let debug = format!("{err:?}");
    assert!(debug.contains("Config.db[].port: u16 → u32") && !debug.contains("struct Db"), "{debug}");
}
