//! The map object beside LMDB (through heed), same data, same run, same
//! process (docs/BENCHMARKS.md, "Map beside LMDB"):
//!
//! - commit of 1 / 100 / 10,000 changed keys (median of several commits);
//! - point get in a held snapshot / read transaction, random keys;
//! - read + get, and the first get of a changed key after a commit;
//! - memory: file bytes allocated after 8 readers each hold a different
//!   generation (10,000 changed keys between them), then after they let go
//!   and 8 more such commits.
//!
//! Both live on tmpfs (/dev/shm); LMDB with `NO_SYNC | NO_META_SYNC |
//! WRITE_MAP` (no durability, as shared memory has none) and read
//! transactions without TLS (so one thread holds 8). Values are the rkyv
//! archive of the same `Entry`: shmstate hands back the validated archive
//! (each block validated on this reader's first touch), LMDB the raw bytes
//! (no validation: LMDB trusts its file; its values are not aligned for a
//! zero-copy archive either).
//!
//! `cargo run --release -- [ENTRIES...]` (default 100000 1000000);
//! `BIG=1`: also 1,000,000 entries of 1 KiB values (about 1 GiB each side).

use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions, WithoutTls};
use shmstate::map::{MapReader, MapWriter};

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Entry {
    key: u64,
    commit: u64,
    text: String,
}

fn entry(key: u64, commit: u64, text_len: usize) -> Entry {
    let mut text = format!("{key}:{commit}:");
    while text.len() < text_len {
        text.push('x');
    }
    Entry { key, commit, text }
}

/// xorshift64*: the same key sequence for both stores.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn key(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn us(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn ns(total: Duration, n: u64) -> String {
    format!("{:.0} ns", total.as_nanos() as f64 / n as f64)
}

struct Lmdb<'e> {
    env: &'e heed::Env<WithoutTls>,
    db: Database<'e, Bytes, Bytes>,
    dir: PathBuf,
}

fn open_env(dir: &Path, map_size: usize) -> heed::Env<WithoutTls> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size).max_readers(64);
    // SAFETY: a fresh directory of our own; flags without durability, as shm has none.
    unsafe { opts.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | EnvFlags::WRITE_MAP) };
    // SAFETY: the environment is opened once in this process and the
    // file is not touched by anyone else.
    unsafe { opts.open(dir) }.unwrap()
}

impl<'e> Lmdb<'e> {
    fn new(env: &'e heed::Env<WithoutTls>, dir: &Path) -> Self {
        let db = env
            .create_databases_and_commit(env.write_txn().unwrap(), |wdo, wtxn| -> Result<_, heed::Error> {
                Ok(CommitOrAbort::<_, ()>::Commit(wdo.create_database::<Bytes, Bytes>(wtxn, None)?))
            })
            .unwrap()
            .unwrap_commit();
        Lmdb { env, db, dir: dir.to_path_buf() }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("data.mdb")
    }

    fn put_all(&self, kvs: &[(u64, Vec<u8>)]) {
        let mut wtxn = self.env.write_txn().unwrap();
        for (k, v) in kvs {
            self.db.put(&mut wtxn, &k.to_be_bytes(), v).unwrap();
        }
        wtxn.commit().unwrap();
    }
}

fn archive(e: &Entry) -> Vec<u8> {
    rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap().to_vec()
}

fn run(n: u64, text_len: usize) {
    println!("\n### {n} entries, values of {} bytes archived\n", archive(&entry(n, 0, text_len)).len());
    let name = format!("bench.lmdb-cmp.{}", std::process::id());
    let _ = shmstate::remove(&name);
    let dir = PathBuf::from(format!("/dev/shm/shmstate-bench-lmdb.{}", std::process::id()));
    let per_entry = text_len as u64 + 200;
    let map_size = ((n * per_entry * 8).max(1 << 30)) as usize;
    let env = open_env(&dir, map_size);
    let lmdb = Lmdb::new(&env, &dir);
    let opts = MapWriter::<u64, Entry>::options().max_size(n * per_entry * 16 + (1 << 30));
    let mut w = MapWriter::<u64, Entry>::create_with(&name, opts).unwrap();
    let pages = PathBuf::from(format!("/dev/shm/shmstate.{name}.pages"));

    // Fill, in batches of 100k (one commit / transaction each).
    let t = Instant::now();
    for start in (0..n).step_by(100_000) {
        w.extend((start..(start + 100_000).min(n)).map(|k| (k, entry(k, 0, text_len))));
        w.commit().unwrap();
    }
    let fill_shm = t.elapsed();
    let t = Instant::now();
    for start in (0..n).step_by(100_000) {
        let kvs: Vec<_> = (start..(start + 100_000).min(n)).map(|k| (k, archive(&entry(k, 0, text_len)))).collect();
        lmdb.put_all(&kvs);
    }
    let fill_lmdb = t.elapsed();
    println!("| measure | shmstate map | LMDB (heed) | map / LMDB |");
    println!("| --- | --- | --- | --- |");
    let row = |what: &str, a: Duration, b: Duration| {
        println!("| {what} | {} | {} | {:.2} |", us(a), us(b), a.as_secs_f64() / b.as_secs_f64());
    };
    row("fill (100k per commit)", fill_shm, fill_lmdb);

    // Memory: 8 readers, each holding a different generation. Allocated file
    // bytes (the pages segment grows by doubling, allocated at once), and
    // bytes in use: the root record's `pages_len` / LMDB's last page.
    let in_use = || {
        let root = shmstate::Reader::<shmstate::map::MapRoot>::open(&name).unwrap().read().unwrap().to_value().unwrap();
        (root.pages_len, (env.info().last_page_number as u64 + 1) * 4096)
    };
    let (base_shm, base_lmdb) = (allocated(&pages), allocated(&lmdb.file()));
    let base_use = in_use();
    let mut rng = Rng(0x1234_5678);
    let mut readers = Vec::new();
    let mut txns = Vec::new();
    for round in 1..=8u64 {
        let keys: Vec<u64> = (0..10_000).map(|_| rng.key(n)).collect();
        w.extend(keys.iter().map(|&k| (k, entry(k, round, text_len))));
        w.commit().unwrap();
        let kvs: Vec<_> = keys.iter().map(|&k| (k, archive(&entry(k, round, text_len)))).collect();
        lmdb.put_all(&kvs);
        let mut r = MapReader::<u64, Entry>::open(&name).unwrap();
        // The pin stays on this generation until the next read.
        let _ = r.read().unwrap();
        readers.push(r);
        txns.push(lmdb.env.read_txn().unwrap());
    }
    let (held_shm, held_lmdb) = (allocated(&pages), allocated(&lmdb.file()));
    let held_use = in_use();
    drop(readers);
    drop(txns);
    for round in 9..=16u64 {
        let keys: Vec<u64> = (0..10_000).map(|_| rng.key(n)).collect();
        w.extend(keys.iter().map(|&k| (k, entry(k, round, text_len))));
        w.commit().unwrap();
        let kvs: Vec<_> = keys.iter().map(|&k| (k, archive(&entry(k, round, text_len)))).collect();
        lmdb.put_all(&kvs);
    }
    let (after_shm, after_lmdb) = (allocated(&pages), allocated(&lmdb.file()));
    let after_use = in_use();
    let mem = |what: &str, a: u64, b: u64| {
        println!("| {what} | {} | {} | {:.2} |", mib(a), mib(b), a as f64 / b as f64);
    };
    mem("file allocated after the fill", base_shm, base_lmdb);
    mem("in use after the fill", base_use.0, base_use.1);
    mem("file allocated, 8 readers on 8 generations (10k keys apart)", held_shm, held_lmdb);
    mem("in use, 8 readers on 8 generations", held_use.0, held_use.1);
    mem("file allocated, released, then 8 more such commits", after_shm, after_lmdb);
    mem("in use, released, then 8 more such commits", after_use.0, after_use.1);

    // Commits of c changed keys.
    let mut commit_no = 100u64;
    for c in [1usize, 100, 10_000] {
        let rounds = match c {
            1 => 200,
            100 => 50,
            _ => 7,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            commit_no += 1;
            let keys: Vec<u64> = (0..c).map(|_| rng.key(n)).collect();
            let values: Vec<Entry> = keys.iter().map(|&k| entry(k, commit_no, text_len)).collect();
            let t = Instant::now();
            w.extend(keys.iter().copied().zip(values.iter().cloned()));
            w.commit().unwrap();
            a.push(t.elapsed());
            let t = Instant::now();
            let mut wtxn = lmdb.env.write_txn().unwrap();
            for (k, v) in keys.iter().zip(&values) {
                lmdb.db.put(&mut wtxn, &k.to_be_bytes(), &archive(v)).unwrap();
            }
            wtxn.commit().unwrap();
            b.push(t.elapsed());
        }
        row(&format!("commit of {c} changed keys (median of {rounds})"), median(a), median(b));
    }

    // Point gets in a held snapshot / read transaction.
    let gets = 200_000u64;
    let keys: Vec<u64> = (0..gets).map(|_| rng.key(n)).collect();
    let mut r = MapReader::<u64, Entry>::open(&name).unwrap();
    {
        let snap = r.read().unwrap();
        for &k in &keys {
            black_box(snap.get(&k).unwrap());
        }
    }
    let snap = r.read().unwrap();
    let t = Instant::now();
    for &k in &keys {
        black_box(snap.get(&k).unwrap().map(|v| v.commit.to_native()));
    }
    let get_shm = t.elapsed();
    let rtxn = lmdb.env.read_txn().unwrap();
    let t = Instant::now();
    for &k in &keys {
        black_box(lmdb.db.get(&rtxn, &k.to_be_bytes()).unwrap().map(|v| v.len()));
    }
    let get_lmdb = t.elapsed();
    drop(rtxn);
    let _ = snap;
    println!(
        "| get in a held snapshot / txn (warm, {gets} random keys) | {} | {} | {:.2} |",
        ns(get_shm, gets),
        ns(get_lmdb, gets),
        get_shm.as_secs_f64() / get_lmdb.as_secs_f64()
    );

    // read + get (unchanged generation) / txn begin + get + end.
    let t = Instant::now();
    for &k in &keys {
        let snap = r.read().unwrap();
        black_box(snap.get(&k).unwrap().map(|v| v.commit.to_native()));
    }
    let rg_shm = t.elapsed();
    let t = Instant::now();
    for &k in &keys {
        let rtxn = lmdb.env.read_txn().unwrap();
        black_box(lmdb.db.get(&rtxn, &k.to_be_bytes()).unwrap().map(|v| v.len()));
    }
    let rg_lmdb = t.elapsed();
    println!(
        "| read() + get / read txn + get | {} | {} | {:.2} |",
        ns(rg_shm, gets),
        ns(rg_lmdb, gets),
        rg_shm.as_secs_f64() / rg_lmdb.as_secs_f64()
    );

    // The first get of a changed key after a commit (reader side only).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        commit_no += 1;
        let k = rng.key(n);
        w.insert(k, entry(k, commit_no, text_len));
        w.commit().unwrap();
        lmdb.put_all(&[(k, archive(&entry(k, commit_no, text_len)))]);
        let t = Instant::now();
        {
            let snap = r.read().unwrap();
            assert_eq!(snap.get(&k).unwrap().map(|v| v.commit.to_native()), Some(commit_no));
        }
        a.push(t.elapsed());
        let t = Instant::now();
        {
            let rtxn = lmdb.env.read_txn().unwrap();
            black_box(lmdb.db.get(&rtxn, &k.to_be_bytes()).unwrap().map(|v| v.len()));
        }
        b.push(t.elapsed());
    }
    row("first read + get of the changed key after a 1-key commit (median of 300)", median(a), median(b));

    drop(r);
    drop(w);
    let _ = shmstate::remove(&name);
    drop(lmdb);
    drop(env);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let mut sizes: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("an entry count")).collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    for n in sizes {
        run(n, 80);
    }
    if std::env::var_os("BIG").is_some() {
        run(1_000_000, 1000);
    }
}
