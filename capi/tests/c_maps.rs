//! A C program (capi/tests/c/map.c, under AddressSanitizer and UBSan) reads
//! map objects that a Rust `MapWriter` in this process commits: values
//! through the ordinary value accessors, a generation held while the writer
//! commits on, integer keys, and corrupted pages as error codes.
#![cfg(not(miri))]

// Only `compile` is used here (the other programs are c_readers.rs's).
#[allow(dead_code)]
mod build;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use shmstate_core::map::{MapRoot, MapWriter};
use shmstate_core::Reader;

#[shmstate_core::shared(crate = shmstate_core)]
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
}

fn item(id: u64) -> Item {
    Item { id, name: format!("item {id}"), tags: (0..id % 3).map(|t| format!("t{t}")).collect() }
}

struct TestName(String);

impl TestName {
    fn new(test: &str) -> Self {
        let name = format!("capimap{}-{test}", std::process::id());
        let _ = shmstate_core::remove(&name);
        TestName(name)
    }
}

impl Drop for TestName {
    fn drop(&mut self) {
        let _ = shmstate_core::remove(&self.0);
    }
}

fn program() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| build::compile("cc", "tests/c/map.c", "-std=c11", "c_map", false)).clone()
}

fn spawn(mode: &str, name: &str) -> Child {
    Command::new(program())
        .args([mode, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the C program")
}

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

fn string_map(name: &str) -> MapWriter<String, Item> {
    let mut w = MapWriter::<String, Item>::create(name).unwrap();
    w.extend((0..300).map(|i| (format!("k{i:04}"), item(i))));
    w.commit().unwrap();
    w
}

#[test]
fn c_reads_map_values_and_holds_a_generation_while_the_writer_commits() {
    let name = TestName::new("held");
    let mut w = string_map(&name.0);
    let mut child = spawn("read", &name.0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let held: u64 = expect_line(&mut out, "held ").parse().unwrap();
    w.insert("k0042".into(), item(9999));
    w.remove(&"k0043".to_string());
    let mut last = w.commit().unwrap().get();
    // Commits that rewrite most values: blocks the held generation reaches stay put.
    for round in 0..20 {
        w.extend(
            (0..300)
                .filter(|&i| i != 42 && i != 43 && i % 5 != 0)
                .map(|i| (format!("k{i:04}"), item(i + 1000 * (round + 1)))),
        );
        last = w.commit().unwrap().get();
    }
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let read: u64 = expect_line(&mut out, "read ").parse().unwrap();
    assert!(read > held);
    assert_eq!(read, last);
    child.stdout = Some(out.into_inner());
    finish(child);
}

#[test]
fn c_reads_integer_keys() {
    let name = TestName::new("ints");
    let mut w = MapWriter::<i64, Item>::create(&name.0).unwrap();
    w.extend((-5..5i64).map(|i| (i, item(i.unsigned_abs()))));
    w.commit().unwrap();
    let (stdout, _) = finish(spawn("int", &name.0));
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn corrupted_pages_are_error_codes_in_c() {
    let name = TestName::new("corrupt");
    let _w = string_map(&name.0);
    let root: MapRoot = Reader::<MapRoot>::open(&name.0).unwrap().read().unwrap().to_value().unwrap();
    let path = format!("/dev/shm/shmstate.{}.pages", name.0);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Junk over the root node: every lookup meets it.
    f.seek(SeekFrom::Start(root.root_offset)).unwrap();
    f.write_all(&vec![0x5a; root.root_len as usize]).unwrap();
    let (stdout, _) = finish(spawn("corrupt", &name.0));
    assert!(stdout.contains("errors 300"), "{stdout}");
    assert!(
        stdout.contains("get SHMSTATE_ERR_INVALID_DATA") || stdout.contains("get SHMSTATE_ERR_CORRUPT"),
        "{stdout}"
    );
    // No value schema in the pages header.
    f.seek(SeekFrom::Start(12)).unwrap();
    f.write_all(&[0; 4]).unwrap();
    let (stdout, _) = finish(spawn("corrupt", &name.0));
    assert!(stdout.contains("open SHMSTATE_ERR_CORRUPT"), "{stdout}");
}
