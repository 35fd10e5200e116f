//! C programs (capi/tests/c/*.c, and a C++ one) compiled with the system
//! `cc`/`c++` under AddressSanitizer and UBSan, reading objects that Rust
//! processes publish: every field kind, a snapshot held while the writer
//! publishes on, garbage and truncated objects, a writer that crashes, a
//! type change (replaced, and followed).
#![cfg(not(miri))]

mod build;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Output, Stdio};

use shmstate_core::{RawWriter, Writer};

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_conns: u64,
    pub ratio: f64,
}

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Off,
    Active { level: i32 },
    Named(String),
}

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub stamp: u64,
    pub name: String,
    pub limits: Limits,
    pub weights: Vec<f64>,
    pub ids: Vec<u32>,
    pub by_name: HashMap<String, u64>,
    pub by_id: BTreeMap<u64, String>,
    pub mode: Mode,
    pub maybe: Option<i64>,
    pub nothing: Option<Limits>,
    pub pair: (u8, bool),
    pub letter: char,
    pub neg: i16,
}

/// The same object's next type (a rolling type change).
#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigV2 {
    pub stamp: u64,
    pub name: String,
    pub extra: u64,
}

/// The value the C programs check (capi/tests/c/reader.c `check_config`);
/// `stamp` is the generation it is published as.
pub fn config(stamp: u64) -> Config {
    Config {
        stamp,
        name: "edge-router".into(),
        limits: Limits { max_conns: 1024, ratio: 0.75 },
        weights: vec![0.5, 1.0, 2.0, 4.0],
        ids: vec![7, 8, 9],
        by_name: HashMap::from([("eu-1".into(), 11), ("us-2".into(), 22)]),
        by_id: BTreeMap::from([(1, "one".into()), (42, "answer".into())]),
        mode: Mode::Active { level: -3 },
        maybe: Some(99),
        nothing: None,
        pair: (200, true),
        letter: 'é',
        neg: -7,
    }
}

/// A unique object name, removed when dropped.
struct TestName(String);

impl TestName {
    fn new(test: &str) -> Self {
        let name = format!("capi{}-{test}", std::process::id());
        let _ = shmstate_core::remove(&name);
        TestName(name)
    }
}

impl Drop for TestName {
    fn drop(&mut self) {
        let _ = shmstate_core::remove(&self.0);
    }
}

fn spawn(program: &std::path::Path, mode: &str, name: &str) -> Child {
    build::command(program)
        .args([mode, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the C program")
}

/// Reads the child's stdout up to a line starting with `prefix`.
fn expect_line(out: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).expect("child stdout") > 0, "the child ended before printing {prefix:?}");
        if let Some(rest) = line.trim_end().strip_prefix(prefix) {
            return rest.to_string();
        }
    }
}

fn finish(child: Child) -> (String, Output) {
    let out = child.wait_with_output().expect("wait for the C program");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "the C program failed ({:?}); stdout:\n{stdout}", out.status);
    (stdout, out)
}

#[test]
fn c_reads_every_field_kind_and_holds_a_snapshot_while_the_writer_publishes() {
    let program = build::c_reader();
    let name = TestName::new("fields");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    let g = w.next_generation().get();
    w.publish(&config(g)).unwrap();
    let mut child = spawn(&program, "fields", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let held: u64 = expect_line(&mut out, "held ").parse().unwrap();
    assert_eq!(held, g);
    // More generations than the object has slots: the held one stays pinned.
    for _ in 0..20 {
        let g = w.next_generation().get();
        w.publish(&config(g)).unwrap();
    }
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let read: u64 = expect_line(&mut out, "read ").parse().unwrap();
    assert_eq!(read, held + 20);
    child.stdout = Some(out.into_inner());
    finish(child);
}

#[test]
fn c_reads_whole_snapshots_while_the_writer_publishes() {
    let name = TestName::new("live");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    let mut child = spawn(&build::c_reader(), "live", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    for _ in 0..500 {
        let g = w.next_generation().get();
        w.publish(&config(g)).unwrap();
    }
    let last = expect_line(&mut out, "last ");
    assert!(last.starts_with("500 reads "), "{last}");
    child.stdout = Some(out.into_inner());
    finish(child);
}

#[test]
fn c_opens_before_the_writer_and_waits_for_its_first_publish() {
    let name = TestName::new("wait-open");
    let probe = probe(&name.0);
    assert!(probe.contains("open SHMSTATE_ERR_NOT_FOUND"), "without the flag: {probe}");
    let mut child = spawn(&build::c_reader(), "wait-open", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    assert_eq!(expect_line(&mut out, "opened "), "1");
    child.stdout = Some(out.into_inner());
    finish(child);
}

/// `config(stamp)` as `shmstate dump --json` prints it, on one line.
fn config_json(stamp: u64) -> String {
    let name = TestName::new("json");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(stamp)).unwrap();
    let snap = shmstate_core::dynamic::Reader::open(&name.0).unwrap().read().unwrap();
    serde_json::to_string(&snap.value).unwrap()
}

/// Runs the C writer with `schema` ("-": the stored one) and the JSON.
fn c_write(name: &str, schema: &str, json: &str) -> u64 {
    let mut child = spawn(&build::c_reader(), "write", name);
    writeln!(child.stdin.as_mut().unwrap(), "{schema}\n{json}").unwrap();
    let (out, _) = finish(child);
    out.lines().find_map(|l| l.strip_prefix("published ")).expect("published").parse().unwrap()
}

#[test]
fn c_publishes_json_that_a_typed_rust_reader_reads() {
    let json = config_json(5);
    // Taking an object over (its Rust writer is gone).
    let name = TestName::new("c-writes");
    {
        let mut w = Writer::<Config>::create(&name.0).unwrap();
        w.publish(&config(1)).unwrap();
    }
    assert_eq!(c_write(&name.0, "-", &json), 2);
    let mut r = shmstate_core::Reader::<Config>::open(&name.0).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), config(5));

    // Creating one under a schema file.
    let name = TestName::new("c-creates");
    let schema: serde_json::Value =
        serde_json::from_str(&shmstate_core::schema::schema_of::<Config>().to_json()).unwrap();
    assert_eq!(c_write(&name.0, &schema.to_string(), &json), 1);
    let mut r = shmstate_core::Reader::<Config>::open(&name.0).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), config(5));
}

#[test]
fn c_event_loop_polls_the_reader_fd() {
    let name = TestName::new("fd");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let mut child = spawn(&build::c_reader(), "fd", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    w.publish(&config(2)).unwrap();
    assert_eq!(expect_line(&mut out, "woke "), "2");
    child.stdout = Some(out.into_inner());
    finish(child);
}

fn probe(name: &str) -> String {
    let child = spawn(&build::c_reader(), "probe", name);
    finish(child).0
}

#[test]
fn c_gets_invalid_data_for_a_garbage_snapshot() {
    let name = TestName::new("garbage");
    let schema = shmstate_core::schema::schema_of::<Config>();
    let mut w = RawWriter::options().create_raw(&name.0, &schema).unwrap();
    let good = rkyv_bytes(&config(1));
    // A relative pointer to nowhere, a truncated archive, nothing at all.
    for bad in [vec![0xFFu8; 64], good[8..].to_vec(), vec![]] {
        // SAFETY: no reader of this object reads without validating (the C
        // API always validates).
        unsafe { w.publish_bytes_unchecked(&bad) }.unwrap();
        let out = probe(&name.0);
        assert!(out.contains("open SHMSTATE_OK"), "{out}");
        assert!(out.contains("read SHMSTATE_ERR_INVALID_DATA"), "{out}");
        assert!(out.contains("is not a valid snapshot"), "the message says why: {out}");
    }
    w.publish_bytes(&good).unwrap();
    assert!(probe(&name.0).contains("read SHMSTATE_OK"), "the next good snapshot reads");
}

fn rkyv_bytes(c: &Config) -> Vec<u8> {
    shmstate_core::rkyv::to_bytes::<shmstate_core::rkyv::rancor::Error>(c).unwrap().to_vec()
}

/// The data segment's file.
fn data_file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new().read(true).write(true).open(format!("/dev/shm/shmstate.{name}")).unwrap()
}

#[test]
fn c_gets_corrupt_for_a_scribbled_or_truncated_segment() {
    let name = TestName::new("scribbled");
    {
        let mut w = Writer::<Config>::create(&name.0).unwrap();
        w.publish(&config(1)).unwrap();
    }
    // The magic number.
    data_file(&name.0).write_all_at(&[0xAB; 8], 0).unwrap();
    let out = probe(&name.0);
    assert!(out.contains("open SHMSTATE_ERR_CORRUPT"), "{out}");

    // Cut below the header: it reads as an object never fully initialised.
    let name = TestName::new("truncated");
    {
        let mut w = Writer::<Config>::create(&name.0).unwrap();
        w.publish(&config(1)).unwrap();
    }
    data_file(&name.0).set_len(100).unwrap();
    let out = probe(&name.0);
    assert!(out.contains("open SHMSTATE_ERR_NOT_INITIALIZED"), "{out}");

    // Cut inside the snapshots: the published one lies beyond the end.
    let name = TestName::new("cut");
    {
        let mut w = Writer::<Config>::create(&name.0).unwrap();
        w.publish(&config(1)).unwrap();
    }
    let f = data_file(&name.0);
    let mut data_start = [0u8; 8];
    f.read_exact_at(&mut data_start, DATA_START).unwrap();
    f.set_len(u64::from_le_bytes(data_start) + 8).unwrap();
    let out = probe(&name.0);
    assert!(out.contains("open SHMSTATE_ERR_CORRUPT") || out.contains("read SHMSTATE_ERR_CORRUPT"), "{out}");
}

/// Where the data segment's header keeps the offset of the first slot
/// (src/protocol/layout.rs).
const DATA_START: u64 = 48;

/// The role of a child writer process (this test binary, re-executed).
const ROLE: &str = "SHMSTATE_CAPI_TEST_ROLE";

#[test]
#[ignore = "a child process of c_reads_the_last_snapshot_of_a_crashed_writer"]
fn crashing_writer() {
    let Ok(name) = std::env::var(ROLE) else { return };
    let mut w = Writer::<Config>::create(&name).unwrap();
    for _ in 0..3 {
        let g = w.next_generation().get();
        w.publish(&config(g)).unwrap();
    }
    println!("published");
    std::process::abort();
}

#[test]
fn c_reads_the_last_snapshot_of_a_crashed_writer() {
    let name = TestName::new("crash");
    let writer = Command::new(std::env::current_exe().unwrap())
        .args(["crashing_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, &name.0)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&writer.stdout).contains("published"));
    assert!(!writer.status.success(), "the writer aborted");
    let (out, _) = finish(spawn(&build::c_reader(), "crash", &name.0));
    assert!(out.contains("wait SHMSTATE_ERR_WRITER_DEAD"), "{out}");
}

#[test]
fn c_sees_a_type_change_as_replaced_or_follows_it() {
    let name = TestName::new("replace");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let mut child = spawn(&build::c_reader(), "replace", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    drop(w);
    shmstate_core::remove(&name.0).unwrap();
    let mut w2 = Writer::<ConfigV2>::create(&name.0).unwrap();
    w2.publish(&ConfigV2 { stamp: 1, name: "v2".into(), extra: 7 }).unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    child.stdout = Some(out.into_inner());
    let (out, _) = finish(child);
    assert!(out.contains("plain wait SHMSTATE_ERR_REPLACED"), "{out}");
    assert!(out.contains("plain read SHMSTATE_ERR_REPLACED"), "no silently stale reader: {out}");
    assert!(out.contains("follow wait SHMSTATE_OK"), "{out}");
    assert!(out.contains("follow extra 7 generation 1"), "{out}");
}

#[test]
fn c_reads_through_the_shared_library() {
    let name = TestName::new("shared-lib");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let mut child = spawn(&build::c_reader_shared(), "fields", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "held 1");
    w.publish(&config(2)).unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(expect_line(&mut out, "read "), "2");
    child.stdout = Some(out.into_inner());
    let (_, output) = finish(child);
    assert!(output.status.success());
}

#[test]
fn c_builds_from_the_installed_library_with_pkg_config() {
    let lib = build::build_lib();
    let prefix = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/capi-install.sh");
    let status = Command::new("bash").arg(script).arg(&prefix).arg(lib.parent().unwrap()).status().unwrap();
    assert!(status.success(), "capi-install.sh");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "shmstate"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config");
    assert!(flags.status.success(), "{}", String::from_utf8_lossy(&flags.stderr));
    let flags = String::from_utf8(flags.stdout).unwrap();
    let exe = prefix.join("reader");
    let built = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/reader.c"))
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(built.success(), "cc with pkg-config's flags ({flags})");
    let name = TestName::new("pkg-config");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let (out, _) = finish(spawn(&exe, "probe", &name.0));
    assert!(out.contains("read SHMSTATE_OK"), "{out}");
}

#[test]
fn cpp_reads_through_the_raii_header() {
    let program = build::cpp_reader();
    let name = TestName::new("cpp");
    {
        let mut w = Writer::<Config>::create(&name.0).unwrap();
        w.publish(&config(1)).unwrap();
    }
    let json = config_json(9);
    let mut child = spawn(&program, "fields", &name.0);
    writeln!(child.stdin.as_mut().unwrap(), "{json}").unwrap();
    let (out, _) = finish(child);
    assert!(out.contains("bad json SHMSTATE_ERR_INVALID_DATA"), "{out}");
    assert!(out.contains("published 2"), "{out}");
    assert!(out.contains("reread 2"), "{out}");
    let mut r = shmstate_core::Reader::<Config>::open(&name.0).unwrap();
    assert_eq!(r.read().unwrap().to_value().unwrap(), config(9));
    assert!(out.contains("max_conns 1024"), "{out}");
    assert!(out.contains("weights 4 sum 7.5"), "{out}");
    assert!(out.contains("missing SHMSTATE_ERR_NO_SUCH_FIELD"), "{out}");
}

#[test]
fn the_readme_c_example_compiles_and_reads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let at = readme.find("## From C and C++").expect("README has a C section");
    let start = at + readme[at..].find("```c\n").unwrap() + "```c\n".len();
    let block = &readme[start..start + readme[start..].find("```\n").unwrap()];
    let name = TestName::new("readme");
    let program = format!(
        "#include <stdio.h>\n#include \"shmstate.h\"\nint main(void) {{\n{}\nreturn 0;\n}}\n",
        block.replace("myapp.config", &name.0)
    );
    let source = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme.c");
    std::fs::write(&source, program).unwrap();
    let exe = build::compile("cc", source.to_str().unwrap(), "-std=c11", "readme_c", false);
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let out = build::command(&exe).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "generation 1: 1024\n");
}
