//! Crash campaign: SIGKILL writers and readers at random points and check that
//! nothing committed is lost, no reader ever sees a torn or unvalidated view,
//! takeover continues the generations, dead readers' pins are reclaimed, and the
//! slot count and segment size stay bounded (docs/DESIGN.md, invariants 1, 5, 6).
//!
//! Each campaign runs in both pin modes: reader-table pins (`lock_pins(false)`)
//! and lock pins (OFD read locks on the slots' lock bytes, which the kernel
//! must release when a reader is killed: `inspect().slots[k].lock_pinned`).
//!
//! Children are this test binary re-executed with a role (tests/common). The
//! short campaign runs in `cargo test`; `scripts/crash-campaign.sh` runs the
//! long one (`campaign_long`, ignored). With `--features fault-injection`,
//! `fault_*` kill a writer deterministically inside a growth and between
//! sealing and publishing (src/os/fault.rs).
#![cfg(not(miri))]

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{consistent, Checked, TestName, ROLE_VAR};
use shmstate::{ReadError, Reader, Writer};

const ENTRY: &str = "child_entry";
const MAX_READERS: u32 = 16;

// ---------------------------------------------------------------- utilities

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn seed_from_env() -> u64 {
    std::env::var("SHMSTATE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

fn fail(msg: String) -> ! {
    println!("FAIL {msg}");
    let _ = std::io::stdout().flush();
    std::process::exit(3);
}

/// A child process whose stdout goes to a file (no pipe to fill up).
struct Proc {
    child: Child,
    out: PathBuf,
}

impl Proc {
    fn spawn(dir: &Path, tag: &str, role: &str) -> Proc {
        Proc::spawn_with(dir, tag, role, &[])
    }

    fn spawn_with(dir: &Path, tag: &str, role: &str, env: &[(&str, &str)]) -> Proc {
        let out = dir.join(format!("{tag}.out"));
        let file = File::create(&out).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([ENTRY, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_VAR, role)
            .envs(env.iter().copied())
            .stdout(Stdio::from(file))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        Proc { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn last(&self, prefix: &str) -> Option<String> {
        self.output().lines().rev().find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    }

    /// Waits for a line starting with `prefix`; panics if the child exits first.
    fn wait_line(&mut self, prefix: &str, deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.last(prefix) {
                return l;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("child exited ({status}) before {prefix:?}:\n{}", self.output());
            }
            assert!(start.elapsed() < deadline, "child hung before {prefix:?}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Panics if the child exited on its own (a child only ever ends by our SIGKILL).
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{what} exited on its own ({status}):\n{}", self.output());
        }
    }

    fn kill(mut self, what: &str) -> (ExitStatus, String) {
        self.assert_running(what);
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{what}: {status}\n{}", self.output());
        let out = self.output();
        let _ = std::fs::remove_file(&self.out);
        (status, out)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shmstate-crash-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `segment_len` header field (offset 56, src/protocol/layout.rs), read from the file.
fn segment_len_field(name: &str) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = File::open(format!("/dev/shm/shmstate.{name}")).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 56).unwrap();
    u64::from_le_bytes(b)
}

// ---------------------------------------------------------------- child roles

#[test]
#[ignore = "child process entry point (runs only with a role)"]
fn child_entry() {
    let Some(role) = common::role() else { return };
    let parts: Vec<&str> = role.split_whitespace().collect();
    match parts.as_slice() {
        ["writer", name, seed, max_exp, pins] => {
            run_writer(name, seed.parse().unwrap(), max_exp.parse().unwrap(), *pins == "locks")
        }
        ["reader", name, seed] => run_reader(name, seed.parse().unwrap()),
        ["fault-writer", name, words] => run_fault_writer(name, words.parse().unwrap()),
        _ => panic!("unknown role {role:?}"),
    }
}

/// Takes over (or creates) the object and publishes forever, with sizes that
/// jump so the segment grows often. Checks generations continue upward.
/// `lock_pins` applies when the object is created (a takeover keeps its mode).
fn run_writer(name: &str, seed: u64, max_exp: u64, lock_pins: bool) {
    let mut rng = Rng::new(seed);
    let before = shmstate::inspect(name).map(|i| i.generation).unwrap_or(0);
    let mut w = Writer::<Checked>::options()
        .slots(3)
        .capacity(256)
        .max_readers(MAX_READERS)
        .lock_pins(lock_pins)
        .open_or_create(name)
        .unwrap_or_else(|e| fail(format!("writer open_or_create: {e}")));
    let first = w.next_generation().get();
    if first <= before {
        fail(format!("takeover restarts at {first}, not above the published {before}"));
    }
    println!("ready {first}");
    loop {
        let g = w.next_generation().get();
        let words = if rng.below(3) == 0 {
            let exp = rng.below(max_exp + 1);
            rng.below(1 << exp)
        } else {
            rng.below(32)
        };
        match w.publish(&Checked::new(g, words as usize)) {
            Ok(got) if got.get() == g => {}
            other => fail(format!("publish of generation {g}: {other:?}")),
        }
    }
}

/// Reads forever; every snapshot must be consistent, generations never go
/// back, and a snapshot held for a while (pinned) must not change.
fn run_reader(name: &str, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut r = Reader::<Checked>::open(name).unwrap_or_else(|e| fail(format!("reader open: {e}")));
    let (mut reads, mut held, mut last) = (0u64, 0u64, 0u64);
    let mut report = Instant::now();
    println!("ready");
    loop {
        match r.read() {
            Ok(snap) => {
                let g = snap.generation().get();
                if consistent(&snap) != Ok(g) {
                    fail(format!("torn or mislabelled snapshot {g}: {:?}", consistent(&snap)));
                }
                if g < last {
                    fail(format!("generation went back from {last} to {g}"));
                }
                last = g;
                if rng.below(4) == 0 {
                    // Hold the pinned snapshot while the writer races on.
                    std::thread::sleep(Duration::from_micros(rng.below(3000)));
                    if consistent(&snap) != Ok(g) {
                        fail(format!("pinned snapshot {g} changed under the reader: {:?}", consistent(&snap)));
                    }
                    held += 1;
                }
            }
            Err(ReadError::Empty { .. }) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => fail(format!("read: {e}")),
        }
        reads += 1;
        if rng.below(16) == 0 {
            r.release();
        }
        if report.elapsed() >= Duration::from_millis(5) {
            println!("reads {reads} held {held} last {last}");
            report = Instant::now();
        }
    }
}

/// Takes over the object and publishes one value of `words` words (the
/// parent sets `SHMSTATE_FAULT`, so this aborts inside the publish).
fn run_fault_writer(name: &str, words: usize) {
    let mut w = Writer::<Checked>::options()
        .max_readers(MAX_READERS)
        .open_or_create(name)
        .unwrap_or_else(|e| fail(format!("writer open_or_create: {e}")));
    let g = w.next_generation().get();
    println!("publishing {g}");
    let _ = std::io::stdout().flush();
    let r = w.publish(&Checked::new(g, words));
    println!("published {r:?}");
}

// ---------------------------------------------------------------- the campaign

#[derive(Debug, Default)]
struct Figures {
    writer_kills: u64,
    reader_kills: u64,
    publishes: u64,
    reads: u64,
    held_reads: u64,
    parent_reads: u64,
    kills_mid_serialize: u64,
    kills_mid_growth: u64,
    growths: u64,
    reclaimed_pins: u64,
    max_slot_count: u32,
    max_size: u64,
    /// Lock pins: most slots found read-locked after a writer kill.
    max_lock_pinned: usize,
    /// Lock pins: slots found read-locked after every reader was killed (must be 0).
    lock_pins_left: usize,
}

struct Campaign {
    epochs: u32,
    rounds: u32,
    readers: usize,
    max_exp: u64,
    lock_pins: bool,
}

fn parse_reads(out: &str) -> (u64, u64) {
    let last = out.lines().rev().find_map(|l| l.strip_prefix("reads "));
    let Some(l) = last else { return (0, 0) };
    let v: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0))
}

fn run_campaign(c: Campaign) -> Figures {
    let seed = seed_from_env();
    let pins = if c.lock_pins { "locks" } else { "table" };
    let label = if c.lock_pins { "lock" } else { "table" };
    println!("crash campaign ({label} pins) seed {seed} (set SHMSTATE_CRASH_SEED to replay the schedule)");
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    let start = Instant::now();
    let dir = scratch_dir(&format!("{seed}-{pins}"));
    let max_payload = 8u64 << c.max_exp;
    for epoch in 0..c.epochs {
        let guard = TestName::new(&format!("crash{epoch}{pins}"));
        let name = guard.as_str().to_string();
        let mut readers: Vec<Proc> = Vec::new();
        let mut seen_gen = 0u64;
        let mut last_mismatch = None;
        for round in 0..c.rounds {
            let max_exp = c.max_exp.min(4 + round as u64);
            let role = format!("writer {name} {} {max_exp} {pins}", rng.next());
            let mut w = Proc::spawn(&dir, &format!("w{epoch}-{round}"), &role);
            let first: u64 = w.wait_line("ready ", Duration::from_secs(20)).trim().parse().unwrap();
            assert!(first > seen_gen, "new writer starts at {first}, published was {seen_gen}");
            // Refill readers only every third round, so dead readers' pins stay
            // in the table for a while and the writer has to reclaim them.
            while round % 3 == 0 && readers.len() < c.readers {
                let role = format!("reader {name} {}", rng.next());
                readers.push(Proc::spawn(&dir, &format!("r{epoch}-{round}-{}", readers.len()), &role));
            }
            for r in &mut readers {
                r.assert_running("reader");
            }
            std::thread::sleep(Duration::from_micros(500 + rng.below(20_000)));
            if !readers.is_empty() && rng.below(2) == 0 {
                let i = rng.below(readers.len() as u64) as usize;
                let (_, out) = readers.swap_remove(i).kill("reader");
                let (reads, held) = parse_reads(&out);
                fig.reads += reads;
                fig.held_reads += held;
                fig.reader_kills += 1;
            }
            let (_, _) = w.kill("writer");
            fig.writer_kills += 1;

            // After every kill: the last committed generation is readable and
            // intact, bookkeeping is bounded.
            let info = shmstate::inspect(&name).expect("inspect after a writer kill");
            assert!(!info.writer_alive, "lock released by the kernel");
            assert_eq!(info.pin_mode, if c.lock_pins { "locks" } else { "reader table" });
            // A live reader holds one slot lock, two while it moves to a newer
            // slot (it locks the new one before unlocking the old); dead ones none.
            let lock_pinned = info.slots.iter().filter(|s| s.lock_pinned).count();
            assert!(lock_pinned <= 2 * readers.len(), "{lock_pinned} slots locked by {} readers", readers.len());
            fig.max_lock_pinned = fig.max_lock_pinned.max(lock_pinned);
            assert!(info.generation >= seen_gen, "published generation went back: {} < {seen_gen}", info.generation);
            fig.publishes += info.generation - seen_gen;
            seen_gen = info.generation;
            fig.max_slot_count = fig.max_slot_count.max(info.slot_count);
            fig.max_size = fig.max_size.max(info.size);
            if info.slots.iter().any(|s| s.state == "writing") {
                fig.kills_mid_serialize += 1;
            }
            let seg_len = segment_len_field(&name);
            if info.size > seg_len && last_mismatch != Some((info.size, seg_len)) {
                fig.kills_mid_growth += 1;
                last_mismatch = Some((info.size, seg_len));
            }
            // Live readers pin at most one slot each (table pins), or two for an
            // instant (lock pins, see above); the parent's check reader adds
            // one; plus current and the slot being written.
            let bound = if c.lock_pins { 2 * c.readers as u32 + 3 } else { c.readers as u32 + 3 };
            assert!(info.slot_count <= bound, "slot count {} > {bound}: pins leak\n{info:#?}", info.slot_count);
            let size_bound = (64 << 10) + bound as u64 * 4 * (max_payload + 4096); // + header and schema
            assert!(info.size <= size_bound, "segment of {} bytes > {size_bound}", info.size);
            if info.generation > 0 {
                let mut r = Reader::<Checked>::open(&name).expect("open after kill");
                let s = r.read().expect("last committed generation readable after a kill");
                assert_eq!(s.generation().get(), info.generation);
                assert_eq!(consistent(&s), Ok(info.generation));
                fig.parent_reads += 1;
            }
        }
        for r in readers.drain(..) {
            let (_, out) = r.kill("reader");
            let (reads, held) = parse_reads(&out);
            fig.reads += reads;
            fig.held_reads += held;
            fig.reader_kills += 1;
        }
        // Every reader and the writer are dead: the kernel released all their
        // OFD locks, so no slot may still read as lock-pinned.
        let info = shmstate::inspect(&name).unwrap();
        let left: Vec<u32> = info.slots.iter().filter(|s| s.lock_pinned).map(|s| s.index).collect();
        assert!(left.is_empty(), "slots {left:?} still read-locked after every reader was killed");
        fig.lock_pins_left += left.len();
        // Last takeover, in process: continues above, publishes, reads back.
        let mut w = Writer::<Checked>::options().max_readers(MAX_READERS).open_or_create(&name).unwrap();
        assert!(w.next_generation().get() > seen_gen);
        let g = w.publish(&Checked::new(w.next_generation().get(), 5)).unwrap().get();
        let mut r = Reader::<Checked>::open(&name).unwrap();
        assert_eq!(consistent(&r.read().unwrap()), Ok(g));
        let info = shmstate::inspect(&name).unwrap();
        fig.growths += info.growths;
        fig.reclaimed_pins += info.reclaimed_pins;
        fig.publishes += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("crash campaign ({label} pins) figures in {:.1?}: {fig:#?}", start.elapsed());
    fig
}

#[test]
fn campaign_short() {
    if common::role().is_some() {
        return;
    }
    for lock_pins in [false, true] {
        let fig = run_campaign(Campaign { epochs: 4, rounds: 30, readers: 3, max_exp: 13, lock_pins });
        assert!(fig.writer_kills >= 120);
        assert!(fig.reader_kills >= 30);
        assert!(fig.publishes >= 500, "only {} publishes", fig.publishes);
    }
}

/// The long campaign: `scripts/crash-campaign.sh` (SHMSTATE_CRASH_EPOCHS,
/// SHMSTATE_CRASH_ROUNDS tune it).
#[test]
#[ignore = "long: scripts/crash-campaign.sh"]
fn campaign_long() {
    if common::role().is_some() {
        return;
    }
    let env = |k: &str, d: u32| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    for lock_pins in [false, true] {
        let fig = run_campaign(Campaign {
            epochs: env("SHMSTATE_CRASH_EPOCHS", 12),
            rounds: env("SHMSTATE_CRASH_ROUNDS", 60),
            readers: 4,
            max_exp: 17,
            lock_pins,
        });
        assert!(fig.publishes >= 5000);
    }
}

/// Checks what `inspect` shows after a writer died at a fault point and a new
/// writer published: slots inside the recorded segment, 64-aligned, disjoint,
/// none left `writing`, the current one sealed at the published generation.
#[cfg(feature = "fault-injection")]
fn assert_segment_consistent(name: &str) -> shmstate::ObjectInfo {
    let info = shmstate::inspect(name).unwrap();
    let seg_len = segment_len_field(name);
    assert!(seg_len <= info.size, "segment_len {seg_len} beyond the object's {} bytes", info.size);
    assert!(info.slot_count <= info.max_slots);
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for s in info.slots.iter().filter(|s| s.capacity > 0) {
        let end = s.offset + s.capacity;
        assert!(
            s.offset % 64 == 0 && end <= seg_len,
            "slot {} [{}, {end}) vs segment_len {seg_len}",
            s.index,
            s.offset
        );
        assert!(
            regions.iter().all(|&(o, e)| end <= o || s.offset >= e),
            "slot {} overlaps: {:#?}",
            s.index,
            info.slots
        );
        regions.push((s.offset, end));
        assert_ne!(s.state, "writing", "{:#?}", info.slots);
    }
    let cur = &info.slots[info.current_slot.expect("published") as usize];
    assert_eq!((cur.state, cur.generation), ("sealed", info.generation), "{:#?}", info.slots);
    info
}

/// A writer killed (SIGABRT) at a fault point: `after-grow` (the object grew,
/// `segment_len` not yet updated) or `after-seal` (a slot sealed with the next
/// generation, not yet published). The last published generation stays
/// readable; a new writer recovers above the highest sealed generation and the
/// segment is consistent. Run: `cargo test --features fault-injection --test crash_campaign`.
#[cfg(feature = "fault-injection")]
fn fault_case(point: &str, lock_pins: bool) {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch_dir(&format!("fault-{point}-{lock_pins}"));
    let name = TestName::new(&format!("fault{point}"));
    let n = name.as_str();
    {
        let mut w = Writer::<Checked>::options().capacity(256).lock_pins(lock_pins).create(n).unwrap();
        for g in 1..=5 {
            w.publish(&Checked::new(g, 4)).unwrap();
        }
    }
    let before = shmstate::inspect(n).unwrap();
    assert_eq!(before.generation, 5);
    // A value too large for any slot forces a growth; a small one only seals.
    let words = if point == "after-grow" { 4096 } else { 4 };
    let mut p = Proc::spawn_with(&dir, point, &format!("fault-writer {n} {words}"), &[("SHMSTATE_FAULT", point)]);
    let status = p.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc_sigabrt()), "child not aborted at {point}: {status}\n{}", p.output());
    assert_eq!(p.last("publishing ").as_deref(), Some("6"), "{}", p.output());
    assert!(p.last("published ").is_none(), "the publish returned: {}", p.output());

    // The last published generation is intact, for a reader and for inspect.
    let info = shmstate::inspect(n).unwrap();
    assert!(!info.writer_alive);
    assert_eq!(info.generation, 5, "a publish got through");
    {
        let mut r = Reader::<Checked>::open(n).unwrap();
        assert_eq!(consistent(&r.read().unwrap()), Ok(5));
    }
    let highest_sealed = info.slots.iter().filter(|s| s.state == "sealed").map(|s| s.generation).max().unwrap();
    match point {
        "after-grow" => {
            let seg_len = segment_len_field(n);
            assert!(info.size > seg_len, "the growth is unrecorded: size {} vs segment_len {seg_len}", info.size);
            assert!(info.slots.iter().any(|s| s.state == "writing"), "{:#?}", info.slots);
            assert_eq!(highest_sealed, 5);
        }
        _ => assert_eq!(highest_sealed, 6, "generation 6 sealed but not published: {:#?}", info.slots),
    }

    // A new writer continues above every sealed generation and can grow.
    let mut w = Writer::<Checked>::options().lock_pins(lock_pins).open_or_create(n).unwrap();
    assert_eq!(w.next_generation().get(), highest_sealed + 1);
    let g = w.publish(&Checked::new(highest_sealed + 1, 4096)).unwrap().get();
    let g2 = w.publish(&Checked::new(g + 1, 4)).unwrap().get();
    let info = assert_segment_consistent(n);
    assert_eq!(info.generation, g2);
    assert_eq!(info.pin_mode, if lock_pins { "locks" } else { "reader table" });
    let mut r = Reader::<Checked>::open(n).unwrap();
    assert_eq!(consistent(&r.read().unwrap()), Ok(g2));
    println!("fault {point} (pin mode {}): aborted, gen 5 readable, recovered at {}, now {g2}", info.pin_mode, g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "fault-injection")]
fn libc_sigabrt() -> i32 {
    6
}

#[cfg(feature = "fault-injection")]
#[test]
fn fault_after_grow() {
    if common::role().is_some() {
        return;
    }
    for lock_pins in [false, true] {
        fault_case("after-grow", lock_pins);
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn fault_after_seal() {
    if common::role().is_some() {
        return;
    }
    for lock_pins in [false, true] {
        fault_case("after-seal", lock_pins);
    }
}
