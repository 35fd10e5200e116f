//! Curves (issue 12): how memory, publish, reads and `Reader::open` grow with
//! the number of reader PROCESSES, and what 64 MiB and 1 GiB snapshots cost
//! against rkyv on the heap. A plain program (no criterion); every reader is
//! this binary re-executed as a child process (`--child ...`).
//!
//! ```text
//! curves memory|publish|large|open|all [--out DIR] [--quick]     (QUICK=1 = --quick)
//! ```
//!
//! - `memory`: N idle reader processes, child k pinning generation k (the
//!   writer publishes k, child k reads once, then the writer publishes k + 1),
//!   against the bound (distinct generations held + 2) × slot size; once with
//!   readers that keep their pin, once with readers that `release()` it.
//! - `publish`: publish latency (an `Instant` pair around each `publish`, one
//!   publish every millisecond) with N reader processes that loop
//!   `wait_newer` + `read` ("waiting"), and with N that read once and then hold
//!   their pin without waiting ("idle"); table and lock pins. Child 0 of the
//!   waiting readers times its own reads (new generation, unchanged).
//! - `large`: publish and validated new-generation read of a 64 MiB and a
//!   1 GiB `Vec` of 16-byte structs against `rkyv::to_bytes` /
//!   `rkyv::to_bytes_in` and `rkyv::access` on the heap, interleaved, a few
//!   reps each.
//! - `open`: `Reader::open` with N handles already open in other processes.
//!
//! Each mode prints a markdown table and writes `<mode>.csv` and `<mode>.md`
//! into `--out` (default `$CARGO_TARGET_DIR/curves`, else `target/curves`). `scripts/curves.sh` runs them all and plots.
//!
//! Children die with the parent: each blocks on (or watches) its stdin, a
//! pipe from the parent, and exits at EOF; they also ask for SIGKILL when the
//! parent dies (`PR_SET_PDEATHSIG`). The parent closes the pipes and reaps
//! every child when a pool is dropped, also when unwinding from a panic.

#[path = "common/types.rs"]
mod types;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use shmstate::rkyv::{self, rancor::BoxedError, ser::writer::Buffer};
use shmstate::{Reader, Writer};
use types::{pct, BenchName, Blob, BLOB_OVERHEAD};

fn blob(archived_bytes: usize) -> Blob {
    Blob { generation: 0, bytes: vec![0x5a; archived_bytes - BLOB_OVERHEAD] }
}

/// One row of a large table (16 archived bytes). The `bool` makes bytecheck
/// look at every row, as any table with an enum or a flag would.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: u64,
    pub weight: u32,
    pub port: u16,
    pub enabled: bool,
    pub class: u8,
}

/// The large snapshot: a generation and a `Vec<Row>`.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub generation: u64,
    pub rows: Vec<Row>,
}

/// A `Table` of exactly `archived_bytes` (a multiple of 16): the rows and a
/// 16-byte root, so the slot holding it is no larger than that.
fn table(archived_bytes: usize) -> Table {
    let rows = (0..archived_bytes as u64 / 16 - 1)
        .map(|i| Row { id: i, weight: (i as u32).wrapping_mul(7), port: i as u16, enabled: i % 3 != 0, class: i as u8 })
        .collect();
    Table { generation: 0, rows }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: usize = 1024 * MIB;

// ---------------------------------------------------------------- arguments

struct Opts {
    quick: bool,
    out: PathBuf,
}

fn main() {
    // `cargo bench` passes `--bench`.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(&args[1..]);
    }
    let mut mode = None;
    let mut opts = Opts {
        quick: std::env::var("QUICK").is_ok_and(|q| q == "1"),
        out: std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from).join("curves"),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--out" => opts.out = PathBuf::from(it.next().unwrap_or_else(|| usage("--out needs a directory"))),
            "memory" | "publish" | "large" | "open" | "all" if mode.is_none() => mode = Some(a),
            _ => usage(&format!("unexpected argument {a}")),
        }
    }
    let mode = mode.unwrap_or_else(|| "all".to_string());
    std::fs::create_dir_all(&opts.out).expect("create --out directory");
    raise_fd_limit();
    let run = |m: &str| mode == "all" || mode == m;
    if run("memory") {
        memory(&opts);
    }
    // Publish last: its 1024 waiting readers leave the load average high for minutes.
    if run("large") {
        large(&opts);
    }
    if run("open") {
        open(&opts);
    }
    if run("publish") {
        publish(&opts);
    }
}

fn usage(why: &str) -> ! {
    eprintln!("curves: {why}");
    eprintln!("usage: curves memory|publish|large|open|all [--out DIR] [--quick]");
    std::process::exit(2)
}

/// Two pipe ends per child: lift the soft limit on descriptors to the hard one.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
}

// ----------------------------------------------------------------- children

/// A reader process and the two ends of its pipes.
struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Reader processes; dropping the pool ends and reaps them all.
#[derive(Default)]
struct Pool {
    kids: Vec<Kid>,
}

impl Pool {
    /// Starts `curves --child ARGS...`; does not wait for it.
    fn spawn(&mut self, args: &[&str]) {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .arg("--child")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a reader process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        self.kids.push(Kid { child, stdin, stdout });
    }

    /// Starts children until there are `n`, then waits for each one's first line.
    fn grow(&mut self, n: usize, args: &[&str], first_line: &str) {
        let from = self.kids.len();
        while self.kids.len() < n {
            self.spawn(args);
        }
        for k in from..n {
            let line = self.recv(k);
            assert_eq!(line, first_line, "reader process {k} did not start");
        }
    }

    fn send(&mut self, k: usize, line: &str) {
        let stdin = self.kids[k].stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}").expect("write to a reader process");
    }

    /// The child's next line, without its newline.
    fn recv(&mut self, k: usize) -> String {
        let mut line = String::new();
        let n = self.kids[k].stdout.read_line(&mut line).expect("read from a reader process");
        assert!(n > 0, "reader process {k} exited (see its stderr above)");
        line.trim_end().to_string()
    }

    fn len(&self) -> usize {
        self.kids.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // EOF on every stdin: each child exits at once.
        for kid in &mut self.kids {
            kid.stdin = None;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for kid in &mut self.kids {
            while matches!(kid.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if matches!(kid.child.try_wait(), Ok(None)) {
                let _ = kid.child.kill();
            }
            let _ = kid.child.wait();
        }
    }
}

/// What a waiting child does with a command from stdin (set by its stdin thread).
const NOTHING: u8 = 0;
const RESET: u8 = 1;
const REPORT: u8 = 2;
static COMMAND: AtomicU8 = AtomicU8::new(NOTHING);

/// `--child hold NAME [release]`: opens, prints `open`; on each `read` line
/// reads (and with `release` releases) and prints `gen G`; exits at EOF.
///
/// `--child wait NAME` / `--child measure NAME`: opens, reads, prints `ready`,
/// then loops `wait_newer` + `read` until stdin ends. `measure` also times its
/// reads; on `reset` it forgets them, on `report` prints a `stats ...` line.
fn child_main(args: &[String]) {
    // Dies with the parent; if the parent is already gone, stdin is at EOF
    // and the loops below end.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let (role, name) = match args {
        [role, name, ..] => (role.as_str(), name.as_str()),
        _ => usage("--child ROLE NAME [release]"),
    };
    let release = args.get(2).is_some_and(|a| a == "release");
    let mut r = Reader::<Blob>::open(name).expect("child: open");
    match role {
        "hold" => {
            println!("open");
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if line == "read" {
                    let g = r.read().expect("child: read").generation();
                    if release {
                        r.release();
                    }
                    println!("gen {}", g.get());
                }
            }
        }
        "wait" | "measure" => {
            let mut last = r.read().expect("child: read").generation();
            std::thread::spawn(|| {
                for line in std::io::stdin().lock().lines() {
                    match line.as_deref() {
                        Ok("reset") => COMMAND.store(RESET, Ordering::Relaxed),
                        Ok("report") => COMMAND.store(REPORT, Ordering::Relaxed),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                std::process::exit(0);
            });
            println!("ready");
            let measure = role == "measure";
            let mut times = ReadTimes::default();
            // Only the measuring child looks at commands, so only it wakes on
            // a timeout; the others sleep until a publish.
            let timeout = if measure { Duration::from_millis(20) } else { Duration::from_secs(3600) };
            loop {
                if measure {
                    match COMMAND.swap(NOTHING, Ordering::Relaxed) {
                        RESET => times = ReadTimes::default(),
                        REPORT => {
                            println!("{}", times.report());
                            times = ReadTimes::default();
                        }
                        _ => {}
                    }
                }
                match r.wait_newer(last, timeout) {
                    Ok(_) => {}
                    Err(shmstate::WaitError::Timeout { .. }) => continue,
                    Err(e) => panic!("child: wait_newer: {e}"),
                }
                if !measure {
                    last = r.read().expect("child: read").generation();
                    continue;
                }
                let start = Instant::now();
                last = black_box(r.read().expect("child: read").generation());
                times.new_generation.push(start.elapsed().as_nanos() as u64);
                const UNCHANGED_BATCH: u32 = 100;
                let start = Instant::now();
                for _ in 0..UNCHANGED_BATCH {
                    black_box(r.read().expect("child: read").generation());
                }
                times.unchanged.push((start.elapsed() / UNCHANGED_BATCH).as_nanos() as u64);
            }
        }
        _ => usage(&format!("unknown child role {role}")),
    }
}

/// The measuring child's read times (ns).
#[derive(Default)]
struct ReadTimes {
    /// One `Instant` pair around the first read after each `wait_newer`.
    new_generation: Vec<u64>,
    /// One `Instant` pair around 100 reads of the same generation, / 100.
    unchanged: Vec<u64>,
}

impl ReadTimes {
    fn report(&mut self) -> String {
        self.new_generation.sort_unstable();
        self.unchanged.sort_unstable();
        format!(
            "stats reads={} new_p50={} new_p99={} unchanged_p50={} instant_pair={}",
            self.new_generation.len(),
            pct(&self.new_generation, 50.0),
            pct(&self.new_generation, 99.0),
            pct(&self.unchanged, 50.0),
            instant_pair_ns()
        )
    }
}

/// Median cost of an empty `Instant` pair (ns): what single-shot timings include.
fn instant_pair_ns() -> u64 {
    let mut v: Vec<u64> = (0..1001)
        .map(|_| {
            let t = Instant::now();
            black_box(t.elapsed().as_nanos() as u64)
        })
        .collect();
    v.sort_unstable();
    pct(&v, 50.0)
}

/// CPU time of the calling thread (ns).
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A `key=value` field of a child's `stats` line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

// ------------------------------------------------------------------ output

/// The 1-, 5- and 15-minute load averages, as `uptime` prints them.
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A markdown table and the same rows as CSV in `out/<name>.csv`.
struct Report {
    name: &'static str,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    started: Instant,
    load_at_start: String,
}

impl Report {
    fn new(name: &'static str, header: &[&'static str]) -> Self {
        let load_at_start = load();
        println!("\n### {name} (load average at start {load_at_start})\n");
        Report { name, header: header.to_vec(), rows: Vec::new(), started: Instant::now(), load_at_start }
    }

    fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    fn finish(self, opts: &Opts, notes: &str) {
        let mut md = String::new();
        let _ = writeln!(md, "| {} |", self.header.join(" | "));
        let _ = writeln!(md, "|{}", " ---: |".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(md, "| {} |", r.join(" | "));
        }
        let _ = writeln!(
            md,
            "\n{notes}\n`curves {}`{}: {:.0} s, load average {} at the start, {} at the end.",
            self.name,
            if opts.quick { " (QUICK)" } else { "" },
            self.started.elapsed().as_secs_f64(),
            self.load_at_start,
            load()
        );
        print!("{md}");
        let mut csv = String::new();
        let _ = writeln!(csv, "{}", self.header.iter().map(|h| csv_name(h)).collect::<Vec<_>>().join(","));
        for r in &self.rows {
            let _ = writeln!(csv, "{}", r.iter().map(|c| c.replace(',', "")).collect::<Vec<_>>().join(","));
        }
        write_file(&opts.out.join(format!("{}.csv", self.name)), &csv);
        write_file(&opts.out.join(format!("{}.md", self.name)), &md);
    }
}

/// A column title as a CSV name: `publish p50 (ns)` -> `publish_p50_ns`.
fn csv_name(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    s.trim_matches('_').to_string()
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Thousands separators for the tables (`1234567` -> `1,234,567`); CSV cells drop them.
fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    s
}

fn ratio(a: u64, b: u64) -> String {
    format!("{:.2}", a as f64 / b.max(1) as f64)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    pct(&v, 50.0)
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn pins_label(lock_pins: bool) -> &'static str {
    if lock_pins {
        "locks"
    } else {
        "table"
    }
}

// ------------------------------------------------------------------ memory

fn memory(opts: &Opts) {
    let mut rep = Report::new(
        "memory",
        &[
            "snapshot",
            "slot bytes",
            "readers",
            "pin",
            "generations held",
            "shm segment bytes",
            "slot capacity sum",
            "slots",
            "bound bytes",
            "capacity sum / bound",
            "segment / bound",
            "capacity sum within bound",
            "load",
        ],
    );
    // 64 MiB readers stop at 64: (64 + 2) x 64 MiB = 4.1 GiB of shm at most.
    let sizes: [(&str, usize, &[usize]); 2] = if opts.quick {
        [("10KB", 10_000, &[1, 16, 64]), ("64MiB", 64 * MIB, &[1, 4])]
    } else {
        [("10KB", 10_000, &[1, 16, 128, 1024]), ("64MiB", 64 * MIB, &[1, 16, 64])]
    };
    for (label, bytes, counts) in sizes {
        for release in [false, true] {
            let name = BenchName::new(&format!("curves-mem-{label}"));
            let mut w = Writer::<Blob>::create(name.as_str()).expect("create");
            let mut value = blob(bytes);
            let mut pool = Pool::default();
            let mut held = BTreeSet::new();
            let hold: &[&str] = if release { &["hold", name.as_str(), "release"] } else { &["hold", name.as_str()] };
            for &n in counts {
                pool.grow(n, hold, "open");
                // Child k (from 0) reads generation k + 1, one after the other.
                while (value.generation as usize) < n {
                    let k = value.generation as usize;
                    value.generation += 1;
                    w.publish(&value).expect("publish");
                    pool.send(k, "read");
                    let line = pool.recv(k);
                    let g: u64 = line.strip_prefix("gen ").and_then(|g| g.parse().ok()).expect("gen line");
                    assert_eq!(g, value.generation, "reader {k} read another generation");
                    if !release {
                        held.insert(g);
                    }
                }
                let info = shmstate::inspect(name.as_str()).expect("inspect");
                // The largest slot: new slots are sized to the snapshot, grown ones to a power of two.
                let slot_bytes = info.slots.iter().map(|s| s.capacity).max().unwrap_or(0);
                let capacity_sum: u64 = info.slots.iter().map(|s| s.capacity).sum();
                let bound = (held.len() as u64 + 2) * slot_bytes;
                rep.row(vec![
                    label.to_string(),
                    int(slot_bytes),
                    n.to_string(),
                    if release { "release" } else { "keep" }.to_string(),
                    held.len().to_string(),
                    int(info.size),
                    int(capacity_sum),
                    info.slots.len().to_string(),
                    int(bound),
                    format!("{:.3}", capacity_sum as f64 / bound as f64),
                    format!("{:.3}", info.size as f64 / bound as f64),
                    if capacity_sum <= bound { "yes" } else { "no" }.to_string(),
                    load(),
                ]);
            }
            drop(pool);
            drop(w);
        }
    }
    rep.finish(
        opts,
        "Readers are separate processes (default options: table pins, 3 slots of 4 KiB at creation); reader k \
         reads generation k once, then idles (`keep`) or calls `release()` first (`release`). \
         `generations held` = distinct generations the readers reported pinned; `slot bytes` = the largest slot's capacity; `bound` = (held + 2) × slot bytes; \
         `shm segment bytes` = `inspect().size` (includes the header, the slot table and regions left by slots \
         that grew); `slot capacity sum` = sum of `inspect().slots[].capacity`. 64 MiB stops at 64 readers: (64 + 2) × 64 MiB \
         = 4.1 GiB of /dev/shm at most.",
    );
}

// ----------------------------------------------------------------- publish

fn publish(opts: &Opts) {
    let mut rep = Report::new(
        "publish",
        &[
            "pins",
            "readers",
            "publishes",
            "reader loop",
            "publish p50 (ns)",
            "publish p99 (ns)",
            "p50 / p50 at 1 reader",
            "publish CPU p50 (ns, net)",
            "new-gen read p50 (ns)",
            "new-gen read p99 (ns)",
            "unchanged read p50 (ns)",
            "reads timed",
            "load",
        ],
    );
    let counts: &[usize] = if opts.quick { &[1, 16, 64] } else { &[1, 16, 128, 1024] };
    // With 1024 waiting readers a publish takes milliseconds (it wakes them
    // all) and the readers then hold both cores: fewer publishes there.
    let publishes = |n: usize, waiting: bool| match (opts.quick, waiting && n > 128) {
        (true, _) => 200,
        (false, false) => 2000,
        (false, true) => 400,
    };
    let cadence = Duration::from_millis(1);
    let mut instant_pair = 0;
    let cpu_pair = {
        let mut v: Vec<u64> = (0..1001).map(|_| thread_cpu_ns().wrapping_neg().wrapping_add(thread_cpu_ns())).collect();
        v.sort_unstable();
        pct(&v, 50.0)
    };
    // Idle rows first: the waiting rows at 1024 readers leave the load average high for minutes.
    for waiting in [false, true] {
        for lock_pins in [false, true] {
            let name = BenchName::new(&format!("curves-pub-{}", pins_label(lock_pins)));
            let mut w = Writer::<Blob>::options().lock_pins(lock_pins).create(name.as_str()).expect("create");
            let mut value = blob(100);
            w.publish(&value).expect("publish");
            let mut pool = Pool::default();
            if waiting {
                pool.spawn(&["measure", name.as_str()]);
                assert_eq!(pool.recv(0), "ready", "measuring reader did not start");
            }
            let mut p50_at_1 = 0;
            for &n in counts {
                if waiting {
                    pool.grow(n, &["wait", name.as_str()], "ready");
                } else {
                    // Idle readers: each pins the generation current when it starts.
                    let from = pool.len();
                    pool.grow(n, &["hold", name.as_str()], "open");
                    for k in from..n {
                        pool.send(k, "read");
                        let _ = pool.recv(k);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
                if waiting {
                    pool.send(0, "reset");
                    std::thread::sleep(Duration::from_millis(50));
                }
                let publishes = publishes(n, waiting);
                let (mut times, mut cpu) = (Vec::with_capacity(publishes), Vec::with_capacity(publishes));
                for _ in 0..publishes {
                    std::thread::sleep(cadence);
                    value.generation += 1;
                    let cpu_start = thread_cpu_ns();
                    let start = Instant::now();
                    w.publish(&value).expect("publish");
                    times.push(ns(start.elapsed()));
                    cpu.push(thread_cpu_ns() - cpu_start);
                }
                times.sort_unstable();
                let (p50, p99) = (pct(&times, 50.0), pct(&times, 99.0));
                if n == 1 {
                    p50_at_1 = p50;
                }
                let reads = if waiting {
                    std::thread::sleep(Duration::from_millis(20));
                    pool.send(0, "report");
                    let line = pool.recv(0);
                    instant_pair = field(&line, "instant_pair");
                    [
                        int(field(&line, "new_p50")),
                        int(field(&line, "new_p99")),
                        int(field(&line, "unchanged_p50")),
                        field(&line, "reads").to_string(),
                    ]
                } else {
                    ["".into(), "".into(), "".into(), "".into()]
                };
                let [a, b, c, d] = reads;
                rep.row(vec![
                    pins_label(lock_pins).to_string(),
                    n.to_string(),
                    publishes.to_string(),
                    if waiting { "wait_newer + read" } else { "idle (holds a pin)" }.to_string(),
                    int(p50),
                    int(p99),
                    ratio(p50, p50_at_1),
                    int(median(cpu).saturating_sub(cpu_pair)),
                    a,
                    b,
                    c,
                    d,
                    load(),
                ]);
            }
        }
    }
    rep.finish(
        opts,
        &format!(
            "A 100 B value (`Blob`), one publish every {} ms (a sleep), each timed with one \
             `Instant` pair (wall clock; `publish CPU` = this thread's CPU time over the same call, \
             `CLOCK_THREAD_CPUTIME_ID`: the work the publish itself did, kernel included, without the time other \
             processes ran on its core; reading that clock is a syscall, and the median of an empty pair, \
             {cpu_pair} ns, is subtracted). Readers are separate processes: `wait_newer + read` loop on every generation, `idle` read \
             once when started and then hold that pin. The read columns are timed by reader 0 (a child process, one of \
             the N) on every generation it wakes for: one `Instant` pair around the first `read` after `wait_newer` \
             (new generation), one around 100 reads of that generation / 100 (unchanged). An empty `Instant` pair \
             costs {instant_pair} ns in that child; the single-shot columns include it. Default `max_readers`, 1024: the \
             last rows are at the maximum.",
            cadence.as_millis()
        ),
    );
}

// ------------------------------------------------------------------- large

fn large(opts: &Opts) {
    let mut rep = Report::new(
        "large",
        &[
            "snapshot",
            "rows",
            "reps",
            "shmstate publish (ms)",
            "rkyv::to_bytes (ms)",
            "publish / to_bytes",
            "rkyv::to_bytes_in fixed buffer (ms)",
            "publish / fixed buffer",
            "rkyv::to_bytes_in warm AlignedVec (ms)",
            "shmstate new-gen read (ms)",
            "rkyv::access fixed buffer (ms)",
            "read / access",
            "rkyv::access after to_bytes (ms)",
            "load",
        ],
    );
    let sizes: &[(&str, usize, usize)] =
        if opts.quick { &[("64MiB", 64 * MIB, 2)] } else { &[("64MiB", 64 * MIB, 7), ("1GiB", GIB, 5)] };
    let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
    for &(label, bytes, reps) in sizes {
        let name = BenchName::new(&format!("curves-large-{label}"));
        let mut w = Writer::<Table>::create(name.as_str()).expect("create");
        let mut r = Reader::<Table>::open(name.as_str()).expect("open");
        let mut value = table(bytes);
        // Untimed: grow the slots to size and touch their pages (three slots:
        // the one the reader pins, the current one, the one being written).
        for _ in 0..3 {
            value.generation += 1;
            w.publish(&value).expect("publish");
            assert_eq!(r.read().expect("read").rows.len(), value.rows.len());
        }
        // Heap buffers written once before, so that their pages are there, as
        // a slot's are: `fixed` through rkyv's `Buffer` writer (what `publish`
        // does in a slot), `warm` as a reserved `AlignedVec`.
        let mut fixed = rkyv::util::AlignedVec::<16>::with_capacity(bytes);
        fixed.resize(bytes, 1);
        let mut warm = rkyv::util::AlignedVec::<16>::with_capacity(bytes);
        warm = rkyv::api::high::to_bytes_in::<_, BoxedError>(&value, warm).expect("to_bytes_in");
        let mut t = LargeTimes::default();
        for _ in 0..reps {
            // The floor: serialize into the fixed buffer, validate it there.
            let start = Instant::now();
            let out = rkyv::api::high::to_bytes_in::<_, BoxedError>(&value, Buffer::from(&mut fixed[..]));
            t.into_fixed.push(ns(start.elapsed()));
            assert_eq!(out.expect("to_bytes_in a Buffer").len(), bytes, "archived size");
            let start = Instant::now();
            let a = rkyv::access::<ArchivedTable, BoxedError>(&fixed[..]).expect("access");
            black_box(a.rows.len());
            t.access_fixed.push(ns(start.elapsed()));

            warm.clear();
            let start = Instant::now();
            warm = rkyv::api::high::to_bytes_in::<_, BoxedError>(&value, warm).expect("to_bytes_in");
            t.into_warm.push(ns(start.elapsed()));

            let start = Instant::now();
            let heap = rkyv::to_bytes::<BoxedError>(&value).expect("to_bytes");
            t.to_bytes.push(ns(start.elapsed()));
            assert_eq!(heap.len(), bytes, "archived size");
            let start = Instant::now();
            let a = rkyv::access::<ArchivedTable, BoxedError>(&heap).expect("access");
            black_box(a.rows.len());
            t.access_new.push(ns(start.elapsed()));
            drop(heap);

            value.generation += 1;
            let start = Instant::now();
            w.publish(&value).expect("publish");
            t.publish.push(ns(start.elapsed()));
            let start = Instant::now();
            let s = r.read().expect("read");
            black_box(s.rows.len());
            t.read.push(ns(start.elapsed()));
            assert_eq!(s.generation().get(), value.generation);
        }
        drop((warm, fixed));
        let m = |v: &Vec<u64>| median(v.clone());
        let (publish, read) = (m(&t.publish), m(&t.read));
        rep.row(vec![
            label.to_string(),
            int(value.rows.len() as u64),
            reps.to_string(),
            ms(publish),
            ms(m(&t.to_bytes)),
            ratio(publish, m(&t.to_bytes)),
            ms(m(&t.into_fixed)),
            ratio(publish, m(&t.into_fixed)),
            ms(m(&t.into_warm)),
            ms(read),
            ms(m(&t.access_fixed)),
            ratio(read, m(&t.access_fixed)),
            ms(m(&t.access_new)),
            load(),
        ]);
    }
    rep.finish(
        opts,
        "A `Table` (a `u64` and a `Vec<Row>`, `Row` = 16 archived bytes: `u64`, `u32`, `u16`, `bool`, `u8`; the \
         `bool` makes bytecheck visit every row) of exactly the archived size. One process; per rep, in this order: \
         `rkyv::to_bytes_in` into rkyv's `Buffer` writer over a heap `AlignedVec` written before (fixed buffer: \
         the serialization alone, into memory that is there, as `publish` writes into a slot) and `rkyv::access` \
         (validated) on it; `rkyv::to_bytes_in` into a reserved, warm `AlignedVec`; `rkyv::to_bytes` (a new, growing \
         `AlignedVec`: allocation and page faults included) and `rkyv::access` on its result; `publish` of the next \
         generation, and the reader's first (validated) `read` of it. Medians of the reps, after 3 untimed \
         publishes that grow and touch the three slots.",
    );
}

/// The timings (ns) of one `large` size, one entry per rep.
#[derive(Default)]
struct LargeTimes {
    publish: Vec<u64>,
    read: Vec<u64>,
    to_bytes: Vec<u64>,
    access_new: Vec<u64>,
    into_fixed: Vec<u64>,
    access_fixed: Vec<u64>,
    into_warm: Vec<u64>,
}

// -------------------------------------------------------------------- open

fn open(opts: &Opts) {
    let mut rep = Report::new(
        "open",
        &["pins", "open handles in other processes", "Reader::open p50 (ns)", "Reader::open p99 (ns)", "load"],
    );
    let counts: &[usize] = if opts.quick { &[1, 16, 64] } else { &[1, 4, 16, 64, 128, 256, 512, 1024] };
    let opens = if opts.quick { 50 } else { 200 };
    for lock_pins in [false, true] {
        let name = BenchName::new(&format!("curves-open-{}", pins_label(lock_pins)));
        // 1024 children and this process's own handle: above the default 1024.
        let mut w =
            Writer::<Blob>::options().lock_pins(lock_pins).max_readers(2048).create(name.as_str()).expect("create");
        w.publish(&blob(100)).expect("publish");
        let mut pool = Pool::default();
        for &n in counts {
            pool.grow(n, &["hold", name.as_str()], "open");
            let mut times: Vec<u64> = (0..opens)
                .map(|_| {
                    let start = Instant::now();
                    let r = Reader::<Blob>::open(name.as_str()).expect("open");
                    let t = ns(start.elapsed());
                    drop(r);
                    t
                })
                .collect();
            times.sort_unstable();
            rep.row(vec![
                pins_label(lock_pins).to_string(),
                n.to_string(),
                int(pct(&times, 50.0)),
                int(pct(&times, 99.0)),
                load(),
            ]);
        }
    }
    rep.finish(
        opts,
        &format!(
            "{opens} `Reader::open` + drop per row (only the open timed, one `Instant` pair each) while N reader \
             processes hold an open handle (opened, never read). `max_readers(2048)`. With table pins a dropped \
             handle's entry is where the next open looks first, so these opens reuse one entry."
        ),
    );
}
