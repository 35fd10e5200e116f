//! Least privilege: readers map the data read-only and cannot write it, take
//! the writer's locks or stall publishing; file modes are owner-only by default
//! and configurable; names cannot escape /dev/shm.
//!
//! Privilege tests spawn this test binary again as a child that drops to
//! `nobody` (uid/gid 65534) before touching anything (the tests run as root).
#![cfg(not(miri))]

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{consistent, Checked, TestName, ROLE_VAR};
use shmstate::{OpenError, Reader, Writer};

const ENTRY: &str = "child_entry";
const NOBODY: u32 = 65534;

fn data_path(name: &str) -> String {
    format!("/dev/shm/shmstate.{name}")
}
fn readers_path(name: &str) -> String {
    format!("/dev/shm/shmstate.{name}.readers")
}
fn lock_path(name: &str) -> String {
    format!("/dev/shm/shmstate.{name}.lock")
}
fn mode_of(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// `mmap(PROT_READ | PROT_WRITE, MAP_SHARED)` of `f`: the errno on failure.
fn map_writable(f: &File) -> Result<(), std::io::Error> {
    // SAFETY: a fresh mapping at a kernel-chosen address; unmapped at once and
    // never dereferenced.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0)
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `p` is the 4096-byte mapping created above.
    unsafe { libc::munmap(p, 4096) };
    Ok(())
}

/// An OFD lock (`F_WRLCK`/`F_RDLCK`) on `[start, start+1)` of `f`, held until `f` closes.
fn ofd_lock(f: &File, kind: libc::c_int, start: u64) -> Result<(), std::io::Error> {
    // SAFETY: all-zero is a valid `struct flock`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `f` is open for the duration of the call; `fl` is initialised.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn flock_ex(f: &File) -> Result<(), std::io::Error> {
    // SAFETY: `f` is open for the duration of the call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn variant<T>(r: &Result<T, OpenError>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        // `Debug` ends with the variant: "... (OpenError::PermissionDenied)".
        Err(e) => format!("{e:?}").rsplit("(OpenError::").next().unwrap().trim_end_matches(')').to_string(),
    }
}

fn io_kind<T>(r: &Result<T, std::io::Error>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "PermissionDenied".into(),
        Err(e) => format!("errno{}", e.raw_os_error().unwrap_or(0)),
    }
}

// ---------------------------------------------------------------- child side

#[test]
#[ignore = "child process entry point (runs only with a role)"]
fn child_entry() {
    let Some(role) = common::role() else { return };
    let parts: Vec<&str> = role.split_whitespace().collect();
    if parts.first() == Some(&"nobody") {
        // SAFETY: plain syscalls on no memory of ours; the test process is
        // single-threaded here (--test-threads=1, before anything else runs).
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(NOBODY) == 0 && libc::setuid(NOBODY) == 0
        };
        // SAFETY: getuid/geteuid have no preconditions.
        if !dropped || unsafe { libc::geteuid() } != NOBODY {
            println!("SKIP cannot drop privileges");
            return;
        }
    }
    let say = |k: &str, v: String| {
        println!("RESULT {k}={v}");
        let _ = std::io::stdout().flush();
    };
    match parts.as_slice() {
        ["nobody", "probe", name] => {
            let r = Reader::<Checked>::open(name);
            say("reader_open", variant(&r));
            if let Ok(mut r) = r {
                let got = r.read().map(|s| consistent(&s));
                say("read", format!("{got:?}"));
            }
            say("inspect", variant(&shmstate::inspect(name)));
            say("writer_open", variant(&Writer::<Checked>::open_or_create(name)));
            say("writer_create", variant(&Writer::<Checked>::create(name)));
            say("data_rw", io_kind(&OpenOptions::new().read(true).write(true).open(data_path(name))));
            if let Ok(f) = File::open(data_path(name)) {
                say("data_map_writable", io_kind(&map_writable(&f)));
                say("data_write_lock", io_kind(&ofd_lock(&f, libc::F_WRLCK, 0)));
            }
            say("lock_ro", io_kind(&File::open(lock_path(name))));
            say("lock_rw", io_kind(&OpenOptions::new().read(true).write(true).open(lock_path(name))));
            say("remove", format!("{:?}", shmstate::remove(name).map_err(|e| e.to_string())));
        }
        ["nobody", "stall", name] => {
            // Everything a reader-privileged process can grab, held until killed.
            let mut r = Reader::<Checked>::open(name).expect("reader");
            let snap_gen = r.read().expect("read").generation();
            let data = File::open(data_path(name)).unwrap();
            say("read_lock_writer_byte", io_kind(&ofd_lock(&data, libc::F_RDLCK, 0)));
            say("flock_data", io_kind(&flock_ex(&data)));
            // With lock pins (the default for a 0644 object) the table is not
            // writable by other users; with table pins, grab every entry.
            let mut grabbed = 0;
            if let Ok(table) = OpenOptions::new().read(true).write(true).open(readers_path(name)) {
                for i in 0..64u64 {
                    if ofd_lock(&table, libc::F_WRLCK, (1 << 40) + i).is_ok() {
                        grabbed += 1;
                    }
                }
            }
            say("reader_entries_grabbed", grabbed.to_string());
            say("holding", snap_gen.to_string());
            std::thread::sleep(Duration::from_secs(60));
        }
        ["nobody", "truncate-readers", name] => {
            let t = OpenOptions::new().read(true).write(true).open(readers_path(name));
            say("readers_rw", io_kind(&t));
            if let Ok(t) = t {
                say("truncate", io_kind(&t.set_len(0)));
            }
        }
        ["nobody", "unpin-others", name] => {
            let t = OpenOptions::new().read(true).write(true).open(readers_path(name));
            say("readers_rw", io_kind(&t));
            if let Ok(t) = t {
                use std::os::unix::fs::FileExt;
                for i in 0..8u64 {
                    t.write_all_at(&0u64.to_le_bytes(), 64 + i * 64).unwrap();
                }
                say("unpinned", "8".into());
            }
            // With lock pins the pins are locks: try to release the honest
            // reader's by unlocking every slot byte through our own descriptor
            // (an OFD unlock only ever affects the caller's own locks).
            let data = File::open(data_path(name)).unwrap();
            for k in 0..8u64 {
                let _ = ofd_lock(&data, libc::F_UNLCK, (1 << 41) + k);
            }
        }
        ["nobody", "lock-slots", name, n] => {
            // A hostile reader of a lock-pin object: read-lock the lock bytes
            // of slots 0..n, existing and future, through a read-only fd.
            let data = File::open(data_path(name)).unwrap();
            let n: u64 = n.parse().unwrap();
            let locked = (0..n).filter(|k| ofd_lock(&data, libc::F_RDLCK, (1 << 41) + k).is_ok()).count();
            say("locked", locked.to_string());
            std::thread::sleep(Duration::from_secs(60));
        }
        ["publish-loop", name, millis] => {
            let mut w = Writer::<Checked>::options().mode(0o644).open_or_create(name).expect("writer");
            let end = Instant::now() + Duration::from_millis(millis.parse().unwrap());
            let mut n = 0;
            while Instant::now() < end {
                w.publish(&Checked::new(w.next_generation().get(), 16)).expect("publish");
                n += 1;
            }
            say("published", n.to_string());
        }
        _ => panic!("unknown role {role:?}"),
    }
}

struct Kid {
    child: std::process::Child,
}

impl Kid {
    fn spawn(role: &str) -> Kid {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([ENTRY, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_VAR, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Kid { child }
    }

    /// Waits for exit (deadline 20 s); returns the status and RESULT lines.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<(String, String)>) {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("child hung");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("SKIP ") {
            println!("note: {text}");
        }
        let res = text
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (out.status, res)
    }
}

fn results(role: &str) -> Option<std::collections::HashMap<String, String>> {
    let (status, res) = Kid::spawn(role).finish();
    assert!(status.success(), "{role}: {status}");
    if res.is_empty() {
        return None; // privileges could not be dropped here
    }
    Some(res.into_iter().collect())
}

fn assert_results(got: &std::collections::HashMap<String, String>, want: &[(&str, &str)]) {
    let bad: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: got {:?}, want {v:?}", got.get(*k)))
        .collect();
    assert!(bad.is_empty(), "{}\nall: {got:#?}", bad.join("\n"));
}

// ---------------------------------------------------------------- tests

#[test]
fn default_modes_are_owner_only() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("modes");
    let _w = Writer::<Checked>::create(name.as_str()).unwrap();
    assert_eq!(mode_of(&data_path(name.as_str())), 0o600);
    assert_eq!(mode_of(&readers_path(name.as_str())), 0o600);
    assert_eq!(mode_of(&lock_path(name.as_str())), 0o600);
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.mode, 0o600);
}

#[test]
fn modes_are_configurable_and_the_lock_stays_owner_only() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("mode640");
    let _w = Writer::<Checked>::options().mode(0o640).create(name.as_str()).unwrap();
    assert_eq!(mode_of(&data_path(name.as_str())), 0o640);
    // Others may read, so readers pin with locks: no reader table at all, so
    // nothing in the object is writable by anyone but the owner.
    assert!(!std::path::Path::new(&readers_path(name.as_str())).exists(), "lock pins need no reader table");
    assert_eq!(mode_of(&lock_path(name.as_str())), 0o600);
    let name2 = TestName::new("mode644");
    let _w2 = Writer::<Checked>::options().mode(0o644).create(name2.as_str()).unwrap();
    assert_eq!(mode_of(&data_path(name2.as_str())), 0o644);
    assert!(!std::path::Path::new(&readers_path(name2.as_str())).exists(), "lock pins need no reader table");
    assert_eq!(mode_of(&lock_path(name2.as_str())), 0o600);
    // Reader-table pins chosen explicitly: readers need write access to pin.
    let name3 = TestName::new("mode640t");
    let _w3 = Writer::<Checked>::options().mode(0o640).lock_pins(false).create(name3.as_str()).unwrap();
    assert_eq!(mode_of(&readers_path(name3.as_str())), 0o660, "table pins: readers write their pins");
    for bad in [0o400, 0o1644, 0o7777, 0o200] {
        assert!(
            matches!(
                Writer::<Checked>::options().mode(bad).create(TestName::new("badmode").as_str()),
                Err(OpenError::InvalidOption { .. })
            ),
            "{bad:o}"
        );
    }
}

/// What readers open (O_RDONLY) cannot be mapped writable or write-locked,
/// even by root: the data segment is safe from reader handles.
#[test]
fn read_only_descriptor_cannot_map_writable_or_write_lock() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("rofd");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 4)).unwrap();
    let f = File::open(data_path(name.as_str())).unwrap();
    let e = map_writable(&f).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    let e = ofd_lock(&f, libc::F_WRLCK, 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    assert!(std::fs::metadata(data_path(name.as_str())).unwrap().uid() == 0);
}

#[test]
fn nobody_is_denied_by_owner_only_mode() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("deny");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 4)).unwrap();
    let Some(got) = results(&format!("nobody probe {}", name.as_str())) else { return };
    assert_results(
        &got,
        &[
            ("reader_open", "PermissionDenied"),
            ("inspect", "PermissionDenied"),
            ("writer_open", "PermissionDenied"),
            ("writer_create", "PermissionDenied"),
            ("data_rw", "PermissionDenied"),
            ("lock_ro", "PermissionDenied"),
            ("lock_rw", "PermissionDenied"),
        ],
    );
    assert!(got["remove"].starts_with("Err"), "{}", got["remove"]);
}

#[test]
fn nobody_reads_a_0644_object_but_cannot_write_or_lock_it() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("ro644");
    let mut w = Writer::<Checked>::options().mode(0o644).create(name.as_str()).unwrap();
    w.publish(&Checked::new(7, 4)).unwrap();
    let Some(got) = results(&format!("nobody probe {}", name.as_str())) else { return };
    assert_results(
        &got,
        &[
            ("reader_open", "Ok"),
            ("read", "Ok(Ok(7))"),
            ("inspect", "Ok"),
            ("writer_open", "PermissionDenied"),
            ("writer_create", "PermissionDenied"),
            ("data_rw", "PermissionDenied"),
            ("data_map_writable", "PermissionDenied"),
            ("data_write_lock", "errno9"), /* EBADF */
            ("lock_ro", "PermissionDenied"),
            ("lock_rw", "PermissionDenied"),
        ],
    );
    assert!(got["remove"].starts_with("Err"), "{}", got["remove"]);
    // Still intact for everyone.
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(consistent(&r.read().unwrap()), Ok(7));
}

/// A reader-privileged process that grabs every lock it can (a read lock on
/// the writer's liveness byte, flock on the data segment, every reader entry)
/// and holds a pin cannot stop publishing or a writer takeover.
#[test]
fn nobody_cannot_stall_publishing() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("stall");
    let mut w = Writer::<Checked>::options().mode(0o644).max_readers(8).create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 4)).unwrap();
    let mut kid = Kid::spawn(&format!("nobody stall {}", name.as_str()));
    let stdout = kid.child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut got = std::collections::HashMap::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l.starts_with("SKIP") {
            let _ = kid.child.kill();
            let _ = kid.child.wait();
            return;
        }
        if let Some((k, v)) = l.strip_prefix("RESULT ").and_then(|l| l.split_once('=')) {
            got.insert(k.to_string(), v.to_string());
            if k == "holding" {
                break;
            }
        }
    }
    assert_eq!(got["holding"], "1");
    // EAGAIN while the writer holds its liveness lock; a reader that gets it in
    // first (between writers) only blurs liveness reports (RELIABILITY.md).
    assert!(["Ok", "errno11"].contains(&got["read_lock_writer_byte"].as_str()), "{got:?}");
    assert_eq!(got["flock_data"], "Ok", "a read-only fd can flock: so the writer lock lives elsewhere");
    let start = Instant::now();
    for g in 2..=500 {
        assert_eq!(w.publish(&Checked::new(g, 4)).unwrap().get(), g);
    }
    drop(w);
    let mut w = Writer::<Checked>::options().max_readers(8).open_or_create(name.as_str()).expect("takeover");
    assert_eq!(w.publish(&Checked::new(501, 4)).unwrap().get(), 501);
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.slot_count <= 4, "{} slots", info.slot_count);
    println!("500 publishes + takeover in {:?} while nobody held every lock it could", start.elapsed());
    let _ = kid.child.kill();
    let _ = kid.child.wait();
    drop(lines);
}

/// Reads `RESULT` lines from a running child until `last_key`; `None` if the
/// child could not drop privileges.
fn results_until(kid: &mut Kid, last_key: &str) -> Option<std::collections::HashMap<String, String>> {
    let stdout = kid.child.stdout.take().unwrap();
    let mut got = std::collections::HashMap::new();
    for l in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let l = l.unwrap();
        if l.starts_with("SKIP") {
            return None;
        }
        if let Some((k, v)) = l.strip_prefix("RESULT ").and_then(|l| l.split_once('=')) {
            got.insert(k.to_string(), v.to_string());
            if k == last_key {
                return Some(got);
            }
        }
    }
    panic!("child ended before {last_key}: {got:?}");
}

/// What a hostile reader of a lock-pin object *can* do: read-lock the lock
/// bytes of every slot, including slots that do not exist yet. The writer then
/// grows to `max_slots` and publishing returns `AllSlotsPinned`: a bounded,
/// reported denial of service. It never writes a slot a reader holds, and
/// once the hostile reader is gone publishing works again.
#[test]
fn nobody_can_only_exhaust_slots_by_read_locking_them() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("lockall");
    let mut w = Writer::<Checked>::options().mode(0o644).slots(2).max_readers(4).create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 4)).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!((info.pin_mode, info.max_slots), ("locks", 6));
    // An honest reader holds generation 1 throughout.
    let mut honest = Reader::<Checked>::open(name.as_str()).unwrap();
    let held = honest.read().unwrap();
    assert_eq!(consistent(&held), Ok(1));
    let mut kid = Kid::spawn(&format!("nobody lock-slots {} 16", name.as_str()));
    let Some(got) = results_until(&mut kid, "locked") else {
        let _ = kid.child.kill();
        let _ = kid.child.wait();
        return;
    };
    assert_eq!(got["locked"], "16", "read locks on a read-only fd are allowed");
    let mut refused = 0;
    for g in 2..=20u64 {
        match w.publish(&Checked::new(g, 4)) {
            Err(shmstate::PublishError::AllSlotsPinned { slots, .. }) => {
                assert_eq!(slots, 6);
                refused += 1;
            }
            other => panic!("publish {g} while every slot byte is read-locked: {other:?}"),
        }
        assert_eq!(consistent(&held), Ok(1), "the held snapshot changed");
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.generation, 1, "nothing was published");
    assert_eq!(info.slot_count, 6, "grew to max_slots, no further");
    assert!(info.slots.iter().all(|s| s.lock_pinned), "{:#?}", info.slots);
    println!("{refused} publishes refused with AllSlotsPinned at {} slots, {} bytes", info.slot_count, info.size);
    let _ = kid.child.kill();
    let _ = kid.child.wait();
    // The kernel dropped the hostile locks: publishing works again, and the
    // honest reader's slot is still skipped.
    for g in 2..=10u64 {
        assert_eq!(w.publish(&Checked::new(g, 4)).unwrap().get(), g);
        assert_eq!(consistent(&held), Ok(1));
    }
    drop(held);
    assert_eq!(consistent(&honest.read().unwrap()), Ok(10));
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().slot_count, 6);
}

#[test]
fn names_cannot_escape_dev_shm() {
    if common::role().is_some() {
        return;
    }
    let long = "x".repeat(shmstate::MAX_NAME_LEN + 1);
    for bad in [
        "",
        "/",
        "a/b",
        "../etc/passwd",
        "..",
        ".",
        ".hidden",
        "a\0b",
        "x.readers",
        "x.lock",
        "sp ace",
        "tab\t",
        "é",
        &long,
    ] {
        assert!(matches!(Writer::<Checked>::create(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
        assert!(matches!(Reader::<Checked>::open(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
        assert!(matches!(shmstate::inspect(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
        assert!(matches!(shmstate::remove(bad), Err(shmstate::RemoveError::InvalidName { .. })), "{bad:?}");
    }
    // A symlink planted under the data segment's name: the target file is never written.
    let name = TestName::new("symlink");
    let target = std::env::temp_dir().join(format!("shmstate-symlink-target-{}", std::process::id()));
    std::fs::write(&target, [0xabu8; 8192]).unwrap();
    std::os::unix::fs::symlink(&target, data_path(name.as_str())).unwrap();
    let r = Reader::<Checked>::options().init_timeout(Duration::ZERO).open(name.as_str());
    assert!(r.is_err(), "a non-object must not open");
    let w = Writer::<Checked>::open_or_create(name.as_str());
    assert_eq!(std::fs::read(&target).unwrap(), vec![0xab; 8192], "symlink target modified");
    println!("symlinked data segment: reader {:?}, writer {:?}", variant(&r), variant(&w));
    drop(w);
    let _ = std::fs::remove_file(&target);
}

// ---------------------------------------------------------------- known bugs

/// BUG: the reader table is writable by every reader (it must be, to pin), so a
/// reader-privileged process can `ftruncate` it; the writer's next pin scan then
/// touches unmapped pages and dies of SIGBUS (and so do readers).
#[test]
fn nobody_cannot_crash_the_writer_by_truncating_the_reader_table() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("trunc");
    drop(Writer::<Checked>::options().mode(0o644).create(name.as_str()).unwrap());
    let writer = Kid::spawn(&format!("publish-loop {} 1500", name.as_str()));
    std::thread::sleep(Duration::from_millis(300));
    let Some(got) = results(&format!("nobody truncate-readers {}", name.as_str())) else { return };
    // A 0644 object uses lock pins (the default when others may read), so it
    // has no reader table to open, let alone truncate.
    assert_ne!(got["readers_rw"], "Ok", "another user opened the reader table for writing");
    assert!(!got.contains_key("truncate"), "{got:?}");
    let (status, _) = writer.finish();
    assert!(status.success(), "the writer died: {status}");
}

/// BUG: a reader-privileged process can clear other readers' pins, after which
/// the writer reuses a slot that an honest reader still holds as a `Snapshot`.
#[test]
fn nobody_cannot_unpin_another_readers_snapshot() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("unpin");
    let mut w = Writer::<Checked>::options().mode(0o644).slots(2).create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 4)).unwrap();
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    let pinned_slot = {
        let _snap = r.read().unwrap(); // the honest reader pins generation 1
        shmstate::inspect(name.as_str()).unwrap().current_slot.unwrap()
    };
    let Some(_) = results(&format!("nobody unpin-others {}", name.as_str())) else { return };
    w.publish(&Checked::new(2, 4)).unwrap();
    w.publish(&Checked::new(3, 4)).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(
        info.slots[pinned_slot as usize].generation, 1,
        "the slot the honest reader pins was overwritten: {:#?}",
        info.slots
    );
}

/// Regression: with lock pins, readers claim no reader-table entry, so `max_readers`
/// must be enforced (readers take lock seats; the next `Reader::open` fails
/// with `ReaderTableFull`), because `max_slots = max(slots, max_readers + 2)`
/// assumes at most `max_readers` readers: more honest readers than that, each
/// holding a different snapshot, would make `publish` return `AllSlotsPinned`.
#[test]
fn lock_pins_keep_the_reader_bound_that_max_slots_assumes() {
    if common::role().is_some() {
        return;
    }
    let name = TestName::new("maxreaders");
    let mut w = Writer::<Checked>::options().mode(0o644).slots(2).max_readers(1).create(name.as_str()).unwrap();
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().max_slots, 3);
    let mut readers = Vec::new();
    let mut snaps = 0;
    for g in 1..=4u64 {
        w.publish(&Checked::new(g, 4)).unwrap_or_else(|e| {
            panic!("publish {g} with {snaps} honest readers (max_readers 1) holding snapshots: {e}")
        });
        // Either the reader bound is enforced at open, or there is room.
        match Reader::<Checked>::open(name.as_str()) {
            Ok(r) => readers.push(r),
            Err(OpenError::ReaderTableFull { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
        let r = readers.last_mut().unwrap();
        assert_eq!(consistent(&r.read().unwrap()), Ok(g));
        snaps += 1;
        // `read` returns a borrow; keep the pin by not reading again.
    }
}
