//! Crash campaign: SIGKILL writers and readers at random points and check that
//! nothing committed is lost, no reader ever sees a torn or unvalidated view,
//! takeover continues the generations, dead readers' pins are reclaimed, and the
//! slot count and segment size stay bounded (DESIGN.md invariants 1, 5, 6).
//!
//! Children are this test binary re-executed with a role (tests/common). The
//! short campaign runs in `cargo test`; `scripts/crash-campaign.sh` runs the
//! long one (`campaign_long`, ignored).
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
        let out = dir.join(format!("{tag}.out"));
        let file = File::create(&out).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([ENTRY, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_VAR, role)
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

/// The `segment_len` header field (offset 56, src/layout.rs), read from the file.
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
        ["writer", name, seed, max_exp] => run_writer(name, seed.parse().unwrap(), max_exp.parse().unwrap()),
        ["reader", name, seed] => run_reader(name, seed.parse().unwrap()),
        ["pinhold", name] => run_pinhold(name),
        _ => panic!("unknown role {role:?}"),
    }
}

/// Takes over (or creates) the object and publishes forever, with sizes that
/// jump so the segment grows often. Checks generations continue upward.
fn run_writer(name: &str, seed: u64, max_exp: u64) {
    let mut rng = Rng::new(seed);
    let before = shmstate::inspect(name).map(|i| i.generation).unwrap_or(0);
    let mut w = Writer::<Checked>::options()
        .slots(3)
        .capacity(256)
        .max_readers(MAX_READERS)
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
            Err(ReadError::Empty) => std::thread::sleep(Duration::from_micros(200)),
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

/// Pins the latest snapshot, says which, and waits to be killed.
fn run_pinhold(name: &str) {
    let mut r = Reader::<Checked>::open(name).unwrap_or_else(|e| fail(format!("reader open: {e}")));
    let g = {
        let s = r.read().unwrap_or_else(|e| fail(format!("read: {e}")));
        consistent(&s).unwrap_or_else(|e| fail(e))
    };
    println!("pinned {g}");
    std::thread::sleep(Duration::from_secs(120));
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
}

struct Campaign {
    epochs: u32,
    rounds: u32,
    readers: usize,
    max_exp: u64,
}

fn parse_reads(out: &str) -> (u64, u64) {
    let last = out.lines().rev().find_map(|l| l.strip_prefix("reads "));
    let Some(l) = last else { return (0, 0) };
    let v: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0))
}

fn run_campaign(c: Campaign) -> Figures {
    let seed = seed_from_env();
    println!("crash campaign seed {seed} (set SHMSTATE_CRASH_SEED to replay the schedule)");
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    let dir = scratch_dir(&format!("{seed}"));
    let max_payload = 8u64 << c.max_exp;
    for epoch in 0..c.epochs {
        let guard = TestName::new(&format!("crash{epoch}"));
        let name = guard.as_str().to_string();
        let mut readers: Vec<Proc> = Vec::new();
        let mut seen_gen = 0u64;
        let mut last_mismatch = None;
        for round in 0..c.rounds {
            let max_exp = c.max_exp.min(4 + round as u64);
            let role = format!("writer {name} {} {max_exp}", rng.next());
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
            // Live readers pin at most one slot each; the parent's check reader
            // adds one; plus current and the slot being written.
            let bound = c.readers as u32 + 3;
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
    println!("crash campaign figures: {fig:#?}");
    fig
}

#[test]
fn campaign_short() {
    if common::role().is_some() {
        return;
    }
    let fig = run_campaign(Campaign { epochs: 4, rounds: 30, readers: 3, max_exp: 13 });
    assert!(fig.writer_kills >= 100);
    assert!(fig.publishes >= 500, "only {} publishes", fig.publishes);
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
    let fig = run_campaign(Campaign {
        epochs: env("SHMSTATE_CRASH_EPOCHS", 12),
        rounds: env("SHMSTATE_CRASH_ROUNDS", 60),
        readers: 4,
        max_exp: 17,
    });
    assert!(fig.publishes >= 5000);
}

/// Deterministic reclaim: two readers pin two old snapshots and are killed; the
/// writer, finding no free slot, reclaims both pins instead of growing.
#[test]
fn dead_readers_pins_are_reclaimed() {
    if common::role().is_some() {
        return;
    }
    let dir = scratch_dir("reclaim");
    let name = TestName::new("reclaim");
    let mut w = Writer::<Checked>::options().slots(2).max_readers(8).create(name.as_str()).unwrap();
    let mut holders = Vec::new();
    for g in 1..=2u64 {
        assert_eq!(w.publish(&Checked::new(g, 8)).unwrap().get(), g);
        let mut p = Proc::spawn(&dir, &format!("hold{g}"), &format!("pinhold {}", name.as_str()));
        assert_eq!(p.wait_line("pinned ", Duration::from_secs(20)).trim(), g.to_string());
        holders.push(p);
    }
    w.publish(&Checked::new(3, 8)).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.slot_count, 3, "two pinned + one new slot");
    assert_eq!(info.live_readers(), 2);
    for p in holders {
        p.kill("pin holder");
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    let dead_pins = info.readers.iter().filter(|r| !r.alive && r.pinned.is_some()).count();
    assert_eq!(dead_pins, 2, "dead readers' pins stay until needed: {:#?}", info.readers);
    for g in 4..40 {
        w.publish(&Checked::new(g, 8)).unwrap();
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.reclaimed_pins, 2, "{info:#?}");
    assert_eq!(info.slot_count, 3, "reclaimed instead of growing");
    assert!(info.readers.iter().all(|r| r.pinned.is_none()), "{:#?}", info.readers);
    let _ = std::fs::remove_dir_all(&dir);
}
