//! The bridge's own metrics, on the convention of `shmstate metrics`
//! (docs/OPERATING.md): Prometheus text format 0.0.4, names prefixed
//! `shmstate_bridge_`, counters ending in `_total`, base units (seconds).
//! Served on `/metrics` (`--metrics-listen ADDR`, a std listener on a thread
//! of its own) and/or written atomically for node_exporter's textfile
//! collector (`--metrics-textfile DIR`, every 5 s, `shmstate-bridge.prom`).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::Stats;

/// Why the importer refused a value, as the `reason` label of
/// `shmstate_bridge_refused_total` (the message in the log says more).
pub fn refusal_reason(why: &str) -> &'static str {
    // Most specific first: messages quote each other's words.
    const REASONS: &[(&str, &str)] = &[
        ("SHA-256", "digest"),
        ("rollback or replay", "order"),
        ("with other bytes", "order"),
        ("unsigned", "signature"),
        ("signed by", "signature"),
        ("signature", "signature"),
        ("the source's type changed", "type_changed"),
        ("--max-", "limit"),
        ("does not decode", "invalid"),
        ("a key with", "key"),
        ("rkyv format", "format"),
        ("schema", "schema"),
        ("the layout", "schema"),
        ("object \"", "fetch"),
        ("envelope", "envelope"),
        ("local", "local_object"),
    ];
    REASONS.iter().find(|(needle, _)| why.contains(needle)).map_or("other", |(_, reason)| reason)
}

/// The metrics text of `stats` (`mode`: "export" or "import").
pub fn render(stats: &Stats, mode: &str, host: &str) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| [(String::new(), v as f64)];
    let info = format!("{{mode=\"{mode}\",host=\"{}\",version=\"{}\"}}", escape(host), env!("CARGO_PKG_VERSION"));
    family("shmstate_bridge_info", "gauge", "This bridge process: its mode, host name and version.", &[(info, 1.0)]);
    family(
        "shmstate_bridge_exported_total",
        "counter",
        "Generations written to the bucket.",
        &one(stats.exported.load(Relaxed)),
    );
    family(
        "shmstate_bridge_imported_total",
        "counter",
        "Generations published into local objects.",
        &one(stats.imported.load(Relaxed)),
    );
    let refused: Vec<(String, f64)> = stats
        .refused_by
        .lock()
        .map(|m| m.iter().map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n as f64)).collect())
        .unwrap_or_default();
    family("shmstate_bridge_refused_total", "counter", "Received values refused, by reason.", &refused);
    family(
        "shmstate_bridge_retries_total",
        "counter",
        "Writes retried after a NATS error.",
        &one(stats.retries.load(Relaxed)),
    );
    family(
        "shmstate_bridge_rewatches_total",
        "counter",
        "Watches of the bucket started again after a failure.",
        &one(stats.rewatches.load(Relaxed)),
    );
    family(
        "shmstate_bridge_disconnects_total",
        "counter",
        "Connections to the NATS server lost (the client reconnects).",
        &one(crate::connect::DISCONNECTS.load(Relaxed)),
    );
    family(
        "shmstate_bridge_reclaimed_total",
        "counter",
        "Keys taken back after a write by someone that is not a live exporter.",
        &one(stats.reclaimed.load(Relaxed)),
    );
    family(
        "shmstate_bridge_not_exported",
        "gauge",
        "Glob-matched objects not exported now (another live exporter owns the key).",
        &one(stats.not_exported.load(Relaxed)),
    );
    family(
        "shmstate_bridge_objects",
        "gauge",
        "Objects this bridge exports, or keys it mirrors into local objects.",
        &one(stats.objects.load(Relaxed)),
    );
    let (sum, count) = (stats.lag_ns_sum.load(Relaxed), stats.lag_count.load(Relaxed));
    family(
        "shmstate_bridge_propagation_lag_seconds",
        "summary",
        "From the bucket's write of a value (the server's timestamp) to its publish here.",
        // (A summary's samples are `name_sum` and `name_count`.)
        &[("_sum".into(), sum as f64 / 1e9), ("_count".into(), count as f64)],
    );
    family(
        "shmstate_bridge_last_propagation_lag_seconds",
        "gauge",
        "The propagation lag of the latest value published here.",
        &[(String::new(), stats.last_lag_ns.load(Relaxed) as f64 / 1e9)],
    );
    out
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `/metrics` on `addr` from a thread of its own.
pub fn listen(addr: SocketAddr, render: impl Fn() -> String + Send + 'static) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &render);
        }
    })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (status, body) = match (first.next(), first.next()) {
        (Some("GET"), Some("/metrics" | "/")) => ("200 OK", render()),
        _ => ("404 Not Found", "GET /metrics\n".to_string()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Writes `text` to `dir/shmstate-bridge.prom` atomically (a temporary file
/// renamed over it: node_exporter never reads a half-written file).
pub fn write_textfile(dir: &Path, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".shmstate-bridge.prom.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, dir.join("shmstate-bridge.prom")));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Writes the textfile every `every` from a thread of its own.
pub fn keep_writing(dir: std::path::PathBuf, every: Duration, render: impl Fn() -> String + Send + 'static) {
    std::thread::spawn(move || loop {
        if let Err(e) = write_textfile(&dir, &render()) {
            crate::log!("metrics: cannot write {}/shmstate-bridge.prom ({e})", dir.display());
        }
        std::thread::sleep(every);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_their_reason() {
        assert_eq!(refusal_reason("invalid envelope: unknown kind"), "envelope");
        assert_eq!(refusal_reason("the importer has 4 local objects (lanes counted), --max-objects 4"), "limit");
        assert_eq!(refusal_reason("exporter 1, source incarnation 2: generation 3 goes back (generation 4 was published): rollback or replay"), "order");
        assert_eq!(refusal_reason("the snapshot does not decode: bad pointer"), "invalid");
        assert_eq!(refusal_reason("something new"), "other");
    }
}
