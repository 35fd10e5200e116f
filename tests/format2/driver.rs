//! The roles of the format 2 compatibility test (`tests/format2.rs`), written
//! against the API that both the last format 2 build (`3ed98f0`) and this one
//! have, so that the same source runs as an old-build process
//! (`tests/format2/old_main.rs`, built from that commit) and as a child of the
//! test binary (this build). One process per role; commands on stdin, results
//! on stdout, one line each.

use std::io::{BufRead, Write};
use std::time::Duration;

use shmstate::{Generation, Reader, Writer, WriterOptions};

/// A value whose every field derives from one number, so that a torn or
/// stale view is detected; its payload length varies, so slots grow.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Compat {
    pub n: u64,
    pub payload: Vec<u64>,
    pub text: String,
    pub tail: u64,
}

impl Compat {
    pub fn new(n: u64) -> Self {
        let len = (n % 97) as usize;
        Compat { n, payload: (0..len as u64).map(|i| n ^ i).collect(), text: format!("value {n}"), tail: n }
    }
}

/// `n` if every field of `a` agrees with it.
pub fn consistent(a: &ArchivedCompat) -> Result<u64, String> {
    let n = a.n.to_native();
    let len = (n % 97) as usize;
    let ok = a.tail == n
        && a.payload.len() == len
        && a.payload.iter().enumerate().all(|(i, x)| *x == n ^ i as u64)
        && a.text.as_str() == format!("value {n}");
    if ok {
        Ok(n)
    } else {
        Err(format!("torn view of value {n}"))
    }
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).expect("stdout");
}

/// Runs one role. `args`: the role and its arguments; `configure` adds the
/// options only this build has (the shm format) to a writer's options.
///
/// - `write NAME PINS`: opens or creates the object (`PINS` = `table` or
///   `locks`, for a new object), says `ready NEXT` (the next generation), then
///   obeys stdin: `publish FROM TO` publishes the values FROM..=TO and says
///   `published GEN`; end of input: exit (the writer is dropped).
/// - `read NAME UNTIL [follow]`: opens (waiting for a writer), says `open`,
///   reads until it sees value UNTIL, checking every snapshot; says
///   `read DISTINCT LAST` (distinct values seen, the last generation), or
///   `error MESSAGE` if the open or a read fails.
/// - `wait NAME`: opens, says `waiting GEN` of the value it then holds,
///   waits for a newer one and says `woke GEN VALUE`.
pub fn run(args: &[String], configure: impl Fn(WriterOptions<Compat>) -> WriterOptions<Compat>) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| panic!("argument {i} missing: {args:?}"));
    let name = arg(1);
    match arg(0) {
        "write" => {
            let opts = configure(Writer::<Compat>::options().lock_pins(arg(2) == "locks").slots(2));
            let mut w = opts.open_or_create(name).unwrap_or_else(|e| panic!("writer of {name}: {e}"));
            say(format!("ready {}", w.next_generation().get()));
            for line in std::io::stdin().lock().lines() {
                let line = line.expect("stdin");
                let words: Vec<u64> = line.split_whitespace().skip(1).map(|w| w.parse().expect("number")).collect();
                let mut last = Generation::NONE;
                for n in words[0]..=words[1] {
                    last = w.publish(&Compat::new(n)).unwrap_or_else(|e| panic!("publish {n}: {e}"));
                }
                say(format!("published {}", last.get()));
            }
        }
        "read" => {
            let until: u64 = arg(2).parse().expect("UNTIL");
            let follow = args.get(3).is_some_and(|a| a == "follow");
            let mut r =
                match Reader::<Compat>::options().wait_for_writer(Duration::from_secs(60)).follow(follow).open(name) {
                    Ok(r) => r,
                    Err(e) => return say(format!("error {e}")),
                };
            say("open".into());
            let (mut distinct, mut last_n, mut last_gen) = (0u64, u64::MAX, 0);
            loop {
                let snap = match r.read() {
                    Ok(snap) => snap,
                    // What an old build says about a newer format, for the test to check.
                    Err(e) => return say(format!("error {e}")),
                };
                let n = consistent(&snap).unwrap_or_else(|e| panic!("{name}: {e}"));
                let g = snap.generation().get();
                assert!(g >= last_gen, "generation went back from {last_gen} to {g}");
                if n != last_n {
                    distinct += 1;
                    last_n = n;
                }
                last_gen = g;
                if n >= until {
                    break;
                }
            }
            say(format!("read {distinct} {last_gen}"));
        }
        "wait" => {
            let mut r = Reader::<Compat>::options()
                .wait_for_writer(Duration::from_secs(60))
                .open(name)
                .unwrap_or_else(|e| panic!("reader of {name}: {e}"));
            let seen = r.read().map(|s| s.generation()).unwrap_or_else(|e| panic!("read {name}: {e}"));
            say(format!("waiting {}", seen.get()));
            let g = r.wait_newer(seen, Duration::from_secs(120)).unwrap_or_else(|e| panic!("wait {name}: {e}"));
            let snap = r.read().unwrap_or_else(|e| panic!("read {name}: {e}"));
            let n = consistent(&snap).unwrap_or_else(|e| panic!("{name}: {e}"));
            say(format!("woke {} {n}", g.get()));
        }
        other => panic!("unknown role {other}"),
    }
}
