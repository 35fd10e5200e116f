//! `shmstate`: list, inspect, watch, dump, publish and remove shmstate objects.

mod commands;
mod doctor;
mod errors;
mod json;
mod map;
mod metrics;
mod publish;
mod serve;
mod table;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shmstate::dynamic::Limits;

use crate::errors::{code, Failure};

/// Decoding limits of `dump` (its flags' defaults) and `watch --dump`.
pub const DEFAULT_LIMITS: Limits = Limits { max_depth: 256, max_values: 20_000_000 };

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (OS error, timeout, nothing published yet, ...)
  2  usage error (bad arguments or an invalid object name)
  3  object not found
  4  permission denied
  5  corrupt object, unknown format version, or undecodable type/snapshot
  6  the writer died (watch)
  7  not removed: live readers use the object (rm without --force)
  8  doctor found a problem";

/// Inspect and manage shmstate shared-memory objects.
#[derive(Parser, Debug)]
#[command(name = "shmstate", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List every shmstate object on this machine.
    List {
        /// Only objects whose name starts with this prefix.
        prefix: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an object's header, schema, slots, readers and counters.
    Inspect {
        /// Object name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print one line per new generation until the writer dies.
    ///
    /// Blocks on the object's futex (no polling). Generations published faster
    /// than they are observed are coalesced: a line reports the latest one and
    /// how many were skipped. Exits 6 when the writer dies.
    Watch {
        /// Object name.
        name: String,
        /// Stop after this many new generations.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Give up (exit 1) when no new generation arrives for this long
        /// (e.g. `500ms`, `5s`, `2m`; a bare number is seconds).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also decode and print each new snapshot.
        #[arg(long)]
        dump: bool,
    },
    /// Decode and print the current snapshot using the schema stored in the object.
    Dump {
        /// Object name.
        name: String,
        /// Print JSON (serde conventions: see docs/CLI.md).
        #[arg(long)]
        json: bool,
        /// With --json, print on one line.
        #[arg(long, requires = "json")]
        compact: bool,
        /// Maximum nesting depth of the decoded value.
        #[arg(long, default_value_t = DEFAULT_LIMITS.max_depth)]
        max_depth: usize,
        /// Maximum number of decoded values.
        #[arg(long, default_value_t = DEFAULT_LIMITS.max_values)]
        max_values: u64,
        /// How long to wait for an object that is still being created.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        timeout: Duration,
        /// A map: print only this key's value (a decimal integer, the string,
        /// or hex digits for `Vec<u8>` keys); exits 3 if absent.
        #[arg(long, conflicts_with = "prefix", allow_hyphen_values = true)]
        key: Option<String>,
        /// A map with `String` or `Vec<u8>` keys: print the entries whose key
        /// starts with this (hex digits for `Vec<u8>`).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Print an object's schema: a schema file (JSON) for `publish --schema`.
    Schema {
        /// Object name.
        name: String,
        /// Print the Rust-like text instead (as `inspect` shows it).
        #[arg(long)]
        text: bool,
    },
    /// Publish a value given as JSON (the form `dump --json` prints).
    ///
    /// Takes over the object with its stored schema (its writer must be
    /// gone), or creates it, or takes it over, with the type of a schema
    /// file. Exits when published: readers keep the snapshot; the object's
    /// writer is dead until another takes over.
    Publish {
        /// Object name.
        name: String,
        /// The JSON value (`-` for stdin).
        file: String,
        /// Create the object with this schema file (`shmstate schema NAME`
        /// output) if it does not exist.
        #[arg(long)]
        schema: Option<String>,
    },
    /// Remove objects (their data segment, reader table and writer lock).
    ///
    /// Processes that have them open keep working on the old objects.
    Rm {
        /// Object names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove them even if live readers use them (they keep reading the
        /// removed object until they notice: `Replaced`, or follow the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print every object's counters and health as Prometheus metrics.
    ///
    /// Reads shared memory only (nothing is pinned, locked or written). Writes
    /// the Prometheus text format to stdout, or serves it over HTTP
    /// (--listen), or writes it for node_exporter's textfile collector
    /// (--textfile). Metric names: docs/OPERATING.md.
    Metrics {
        /// Only objects whose name starts with this prefix.
        prefix: Option<String>,
        /// OpenMetrics 1.0 text instead of the Prometheus text format (over
        /// HTTP the scrape's Accept header chooses).
        #[arg(long)]
        openmetrics: bool,
        /// Serve GET /metrics on this address (e.g. 127.0.0.1:9187) until stopped.
        #[arg(long, conflicts_with = "textfile")]
        listen: Option<std::net::SocketAddr>,
        /// Write DIR/shmstate.prom atomically (node_exporter's textfile collector).
        #[arg(long, value_name = "DIR")]
        textfile: Option<std::path::PathBuf>,
        /// With --textfile: write it again every interval until stopped.
        #[arg(long, requires = "textfile", value_parser = parse_duration)]
        interval: Option<Duration>,
    },
    /// Check this host for what breaks shared state, and say what to do.
    ///
    /// /dev/shm size against the objects' growth, systemd-logind's RemoveIPC,
    /// owners and modes, unreadable and unused objects, writers in other PID
    /// namespaces, the cgroup memory limit, kernel features. Exits 8 when it
    /// finds a problem.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Read the host's configuration files (/etc/systemd/logind.conf, ...)
        /// under this directory instead of / (an image's root, or a test's).
        #[arg(long, default_value = "/")]
        root: std::path::PathBuf,
    },
    /// Remove objects whose writer is dead and that have no live readers.
    ///
    /// Without --yes, only prints what it would remove.
    Gc {
        /// Only objects whose name starts with this prefix.
        prefix: Option<String>,
        /// Actually remove them.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `500ms`, `5s`, `2m`, `1h`, `1.5` (seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?} (try 500ms, 5s, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub fn out(s: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::new(0, "")),
        Err(e) => Err(Failure::new(code::OTHER, format!("writing output: {e}"))),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("shmstate: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
