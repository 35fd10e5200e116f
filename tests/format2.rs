//! Two builds of the library on one object: the last build that wrote shm
//! format 2 (`OLD_COMMIT`, built from this repository's history into the
//! target directory) and this one (docs/COMPATIBILITY.md, "Upgrading the
//! library across a fleet"). Every role is a real process running
//! `tests/format2/driver.rs`: the old build as its own program, this build
//! as a child of this test binary.

mod common;

#[path = "format2/driver.rs"]
mod driver;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::TestName;
use shmstate::inspect;

/// The last commit whose library wrote format 2 (CHANGELOG.md, "Shm format
/// versions": format 3 came with the next one, `03c502a`).
const OLD_COMMIT: &str = "3ed98f0";

const FORMAT_VAR: &str = "SHMSTATE_TEST_FORMAT";

/// The old build's driver program, built once per run of this binary (cargo
/// rebuilds nothing when it is up to date).
fn old_driver() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        // This binary is `<target>/<profile>/deps/format2-…`.
        let exe = std::env::current_exe().expect("test binary path");
        let target = exe.ancestors().nth(3).expect("target directory").join("format2-old");
        let src = target.join(format!("src-{OLD_COMMIT}"));
        if !src.join("Cargo.toml").exists() {
            let tmp = target.join("src-partial");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            let archive = Command::new("git")
                .args(["-C", repo.to_str().unwrap(), "archive", "--format=tar", OLD_COMMIT])
                .output()
                .expect("run git (the test builds the old library from this repository's history)");
            assert!(
                archive.status.success(),
                "git archive {OLD_COMMIT} failed (a shallow clone? fetch the history): {}",
                String::from_utf8_lossy(&archive.stderr)
            );
            let mut tar = Command::new("tar").args(["-x", "-C"]).arg(&tmp).stdin(Stdio::piped()).spawn().unwrap();
            tar.stdin.take().unwrap().write_all(&archive.stdout).unwrap();
            assert!(tar.wait().unwrap().success(), "tar -x of {OLD_COMMIT}");
            std::fs::rename(&tmp, &src).unwrap();
        }
        let driver = target.join("driver");
        std::fs::create_dir_all(&driver).unwrap();
        let manifest = format!(
            "[package]\nname = \"format2-driver\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\nshmstate = {{ path = {:?} }}\n\n\
             [[bin]]\nname = \"format2-driver\"\npath = {:?}\n",
            src.to_str().unwrap(),
            repo.join("tests/format2/old_main.rs").to_str().unwrap(),
        );
        std::fs::write(driver.join("Cargo.toml"), manifest).unwrap();
        // The old lock file: the dependency versions that build tested.
        if !driver.join("Cargo.lock").exists() {
            std::fs::copy(src.join("Cargo.lock"), driver.join("Cargo.lock")).unwrap();
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(driver.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target.join("target"))
            // The old library as it was built then, whatever flags this run has.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the format 2 library ({OLD_COMMIT}) failed");
        target.join("target/debug/format2-driver")
    })
}

/// A role process and its stdout lines.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
    /// Set before the child is waited for (its pid may be reused after).
    done: Arc<AtomicBool>,
}

impl Proc {
    /// A role of the old build.
    fn old(args: &str) -> Proc {
        let mut cmd = Command::new(old_driver());
        cmd.args(args.split(' '));
        Proc::spawn(format!("old {args}"), cmd)
    }

    /// A role of this build, whose writers write `format`.
    fn new(args: &str, format: u32) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["role", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(common::ROLE_VAR, args)
            .env(FORMAT_VAR, format.to_string());
        Proc::spawn(format!("new (format {format}) {args}"), cmd)
    }

    fn spawn(what: String, mut cmd: Command) -> Proc {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let (stdin, out) = (child.stdin.take(), BufReader::new(child.stdout.take().unwrap()));
        let done = Arc::new(AtomicBool::new(false));
        // A failure guard only: a role stuck for minutes is killed, so that
        // the test fails (at its next line) instead of hanging.
        let (pid, flag) = (child.id() as i32, done.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::Acquire) {
                if Instant::now() > deadline {
                    // SAFETY: `kill` has no memory preconditions; `pid` is our
                    // child, not yet waited for (`done` is set before `wait`).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Proc { what, child, stdin, out, done }
    }

    /// The next line the role says (the test harness's own lines skipped).
    fn line(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "{} exited without saying anything more", self.what);
            let l = line.trim_end();
            if ["ready", "published", "open", "read", "waiting", "woke", "error"]
                .iter()
                .any(|w| l.split(' ').next() == Some(w))
            {
                return l.to_string();
            }
        }
    }

    /// The numbers after `word` in the next line, which must start with it.
    fn expect(&mut self, word: &str) -> Vec<u64> {
        let line = self.line();
        let rest = line.strip_prefix(word).unwrap_or_else(|| panic!("{}: expected {word}, got {line:?}", self.what));
        rest.split_whitespace().map(|w| w.parse().unwrap()).collect()
    }

    /// A writer: publishes the values `from..=to`; returns the last generation.
    fn publish(&mut self, from: u64, to: u64) -> u64 {
        writeln!(self.stdin.as_mut().unwrap(), "publish {from} {to}").unwrap();
        self.expect("published")[0]
    }

    /// Closes stdin (a writer then exits) and checks the exit status.
    fn finish(mut self) {
        drop(self.stdin.take());
        self.done.store(true, Ordering::Release);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} failed: {status}", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.child.kill();
        }
        self.done.store(true, Ordering::Release);
        let _ = self.child.wait();
    }
}

/// This build's roles, run by `Proc::new`.
#[test]
#[ignore = "a child role of the tests in this file"]
fn role() {
    let Some(role) = common::role() else { return };
    let format: u32 = std::env::var(FORMAT_VAR).unwrap().parse().unwrap();
    let args: Vec<String> = role.split(' ').map(str::to_string).collect();
    driver::run(&args, |opts| opts.format_version(format));
}

fn pins(lock_pins: bool) -> &'static str {
    if lock_pins {
        "locks"
    } else {
        "table"
    }
}

/// Old and new readers read while old and new writers publish one format 2
/// object and take it over from each other (old → new → old), in one pin
/// mode: every snapshot is whole, generations continue across takeovers,
/// and the object stays in format 2.
fn old_and_new_share_a_format2_object(lock_pins: bool) {
    let name = TestName::new(if lock_pins { "format2-share-locks" } else { "format2-share" });
    let (n, p) = (name.as_str(), pins(lock_pins));
    let mut writer = Proc::old(&format!("write {n} {p}"));
    assert_eq!(writer.expect("ready"), [1]);
    assert_eq!(writer.publish(1, 1), 1);
    let until = 30_000;
    let mut readers: Vec<Proc> = (0..2)
        .flat_map(|_| [Proc::old(&format!("read {n} {until}")), Proc::new(&format!("read {n} {until}"), 2)])
        .collect();
    for r in &mut readers {
        r.expect("open");
    }
    assert_eq!(writer.publish(2, 10_000), 10_000);
    writer.finish();
    // This build takes the old build's object over, in its format.
    let mut writer = Proc::new(&format!("write {n} {p}"), 2);
    assert_eq!(writer.expect("ready"), [10_001], "generations continue across the takeover");
    assert_eq!(writer.publish(10_001, 20_000), 20_000);
    assert_eq!(inspect(n).unwrap().format_version, 2);
    writer.finish();
    // And the old build takes it back from this one.
    let mut writer = Proc::old(&format!("write {n} {p}"));
    assert_eq!(writer.expect("ready"), [20_001]);
    assert_eq!(writer.publish(20_001, until), until);
    for mut r in readers {
        let line = r.line();
        let got = line.strip_prefix("read ").unwrap_or_else(|| panic!("{}: {line}", r.what));
        let v: Vec<u64> = got.split(' ').map(|w| w.parse().unwrap()).collect();
        assert_eq!(v[1], until, "{} ended at generation {}", r.what, v[1]);
        assert!(v[0] >= 2, "{} saw {} values", r.what, v[0]);
        println!("{} saw {} of {until} values", r.what, v[0]);
        r.finish();
    }
    writer.finish();
    let info = inspect(n).unwrap();
    assert_eq!((info.format_version, info.generation), (2, until));
}

#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn old_and_new_builds_share_a_format2_object_with_table_pins() {
    if common::role().is_some() {
        return;
    }
    old_and_new_share_a_format2_object(false);
}

#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn old_and_new_builds_share_a_format2_object_with_lock_pins() {
    if common::role().is_some() {
        return;
    }
    old_and_new_share_a_format2_object(true);
}

/// Whether every thread of process `pid` is asleep (state `S`).
fn asleep(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
    })
}

/// Readers of the old build do not pass a wake-up on (this build's readers
/// wake two more each): a publish of this build in a format 2 object must
/// wake every waiter itself, as format 2's writers did.
fn a_format2_publish_wakes_every_old_waiter(lock_pins: bool) {
    const WAITERS: usize = 6;
    let name = TestName::new(if lock_pins { "format2-wake-locks" } else { "format2-wake" });
    let n = name.as_str();
    let mut w =
        shmstate::Writer::<driver::Compat>::options().format_version(2).lock_pins(lock_pins).open_or_create(n).unwrap();
    let first = w.publish(&driver::Compat::new(1)).unwrap();
    let mut waiters: Vec<Proc> = (0..WAITERS).map(|_| Proc::old(&format!("wait {n}"))).collect();
    for p in &mut waiters {
        assert_eq!(p.expect("waiting"), [first.get()]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = lock_pins || inspect(n).unwrap().waiters as usize == WAITERS;
        if counted && waiters.iter().all(|p| asleep(p.child.id())) {
            break;
        }
        assert!(Instant::now() < deadline, "the old waiters never all went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    let next = w.publish(&driver::Compat::new(2)).unwrap();
    // Each waiter is awake for a moment at the end of each 100 ms slice, so
    // one may miss the wake-up; a publish that woke only one would be the
    // wake-one of format 3.
    let woken = w.woken_by_last_publish() as usize;
    assert!((2..=WAITERS).contains(&woken), "the publish woke {woken} of {WAITERS} old waiters");
    for mut p in waiters {
        assert_eq!(p.expect("woke"), [next.get(), 2]);
        p.finish();
    }
}

#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn a_format2_publish_wakes_every_old_waiter_itself() {
    if common::role().is_some() {
        return;
    }
    a_format2_publish_wakes_every_old_waiter(false);
    a_format2_publish_wakes_every_old_waiter(true);
}

/// The last step of a fleet upgrade: a writer of this build that is told to
/// write format 3 replaces the format 2 object; readers of this build that
/// follow move to it and read on (generations continue), while an old
/// reader that opens it gets an error that names format 3.
#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn a_format3_writer_replaces_a_format2_object_and_following_readers_move() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("format2-upgrade");
    let n = name.as_str();
    let mut writer = Proc::old(&format!("write {n} table"));
    writer.expect("ready");
    writer.publish(1, 500);
    let mut new_reader = Proc::new(&format!("read {n} 1000 follow"), 3);
    new_reader.expect("open");
    writer.finish();
    // Without the option, this build refuses to write a format 2 object.
    let Err(refused) = shmstate::Writer::<driver::Compat>::open_or_create(n) else {
        panic!("a format 2 object taken over without format_version")
    };
    assert!(refused.to_string().contains("format_version(2)"), "{refused}");
    let mut writer = Proc::new(&format!("write {n} table"), 3);
    // 501 was the old object's last publish (value 500 again, marked moved).
    assert_eq!(writer.expect("ready"), [502], "generations continue in the new object");
    assert_eq!(inspect(n).unwrap().format_version, 3);
    assert_eq!(writer.publish(501, 1000), 1001);
    let line = new_reader.line();
    assert!(line.starts_with("read ") && line.ends_with(" 1001"), "{line}");
    // An old build cannot read format 3 (so the fleet upgrades its readers
    // first: docs/COMPATIBILITY.md).
    let mut late = Proc::old(&format!("read {n} 1000"));
    let line = late.line();
    assert!(line.starts_with("error") && line.contains("version 3"), "an old reader opening said {line:?}");
    late.finish();
    new_reader.finish();
    writer.finish();
    // And back (a rollback): format 2 again, which the old build reads.
    let mut writer = Proc::new(&format!("write {n} table"), 2);
    assert_eq!(writer.expect("ready"), [1003]);
    assert_eq!(writer.publish(1001, 1100), 1102);
    assert_eq!(inspect(n).unwrap().format_version, 2);
    let mut old_reader = Proc::old(&format!("read {n} 1100"));
    old_reader.expect("open");
    let line = old_reader.line();
    assert!(line.starts_with("read ") && line.ends_with(" 1102"), "{line}");
    old_reader.finish();
    writer.finish();
}
