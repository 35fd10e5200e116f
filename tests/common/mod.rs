//! Shared test support: unique object names cleaned up on drop, child processes
//! re-executed from the test binary, and a snapshot type whose fields
//! cross-check each other so a torn view is detectable.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique object name (pid + counter + test), removed when dropped.
pub struct TestName(pub String);

impl TestName {
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}-{n}-{test}", std::process::id());
        let _ = shmstate::remove(&name);
        TestName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Drop for TestName {
    fn drop(&mut self) {
        let _ = shmstate::remove(&self.0);
    }
}

/// The environment variable that carries a child's role.
pub const ROLE_VAR: &str = "SHMSTATE_TEST_ROLE";

/// Runs the ignored test `entry` of this same test binary as a child process,
/// with `role` in its environment. The child's stdout is piped.
pub fn spawn_child(entry: &str, role: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process")
}

/// A child's role, if this process is one.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Lines a child printed that start with `prefix`.
pub fn child_lines(out: &std::process::Output, prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_prefix(prefix).map(str::to_string)).collect()
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Inner {
    pub gen_copy: u64,
    pub label: String,
}

/// A value whose every field derives from one generation number.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub gen: u64,
    pub payload: Vec<u64>,
    pub text: String,
    pub inner: Inner,
    pub map: HashMap<String, u64>,
    pub tail: u64,
}

impl Checked {
    /// The value for generation `g`, with a payload of `len` words.
    pub fn new(g: u64, len: usize) -> Self {
        let mut map = HashMap::new();
        map.insert(format!("k{}", g % 7), g);
        map.insert("fixed".to_string(), g + 1);
        Checked {
            gen: g,
            payload: vec![g; len],
            text: format!("generation {g}"),
            inner: Inner { gen_copy: g, label: format!("inner-{g}") },
            map,
            tail: g,
        }
    }
}

/// Checks that every field of an archived `Checked` agrees with its `gen`.
pub fn consistent(a: &ArchivedChecked) -> Result<u64, String> {
    let g = a.gen.to_native();
    let bad = |what: &str| Err(format!("torn view at generation {g}: {what}"));
    if a.tail != g || a.inner.gen_copy != g {
        return bad("scalar copies differ");
    }
    if a.payload.iter().any(|x| *x != g) {
        return bad("payload differs");
    }
    if a.text.as_str() != format!("generation {g}") || a.inner.label.as_str() != format!("inner-{g}") {
        return bad("strings differ");
    }
    if a.map.get("fixed").map(|v| v.to_native()) != Some(g + 1) {
        return bad("map differs");
    }
    if a.map.get(format!("k{}", g % 7).as_str()).map(|v| v.to_native()) != Some(g) {
        return bad("map key differs");
    }
    Ok(g)
}
