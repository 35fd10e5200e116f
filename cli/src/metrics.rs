//! `shmstate metrics`: every object's counters and health as Prometheus
//! metrics, read from shared memory without touching the processes.
//!
//! One set of families ([`families`]) rendered two ways: the Prometheus text
//! format 0.0.4 (what `promtool check metrics` and every Prometheus scrape
//! accept) and OpenMetrics 1.0 (counters' family names without `_total`,
//! `# UNIT`, `# EOF`), chosen by the scrape's `Accept` header or `--openmetrics`.
//! Names and units follow the Prometheus conventions; docs/OPERATING.md lists
//! them with alerting rules.

use std::fmt::Write as _;

use shmstate::{ObjectInfo, OpenError};

/// How a family's samples add up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Gauge,
    Counter,
    /// A gauge of value 1 whose labels are the information (`X_info`).
    Info,
}

/// One metric family: a name (without `_total` for counters), its help, kind,
/// unit (the name's last word, for OpenMetrics) and samples.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub unit: Option<&'static str>,
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// The text formats `metrics` writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What one scrape saw: every object (or the reason it could not be read),
/// at the wall-clock time `now_ns`.
pub struct Scrape<'a> {
    pub objects: &'a [(String, Result<ObjectInfo, OpenError>)],
    pub now_ns: u64,
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Seconds from `then_ns` to `now_ns` (0 when `then_ns` is in the future: a
/// clock step, or never).
fn age(now_ns: u64, then_ns: u64) -> f64 {
    seconds(now_ns.saturating_sub(then_ns))
}

struct Builder {
    families: Vec<Family>,
}

impl Builder {
    fn family(&mut self, name: &'static str, kind: Kind, unit: Option<&'static str>, help: &'static str) -> usize {
        self.families.push(Family { name, help, kind, unit, samples: Vec::new() });
        self.families.len() - 1
    }

    fn sample(&mut self, family: usize, labels: Vec<(&'static str, String)>, value: f64) {
        self.families[family].samples.push((labels, value));
    }
}

/// Every family of one scrape. Each object's samples carry its `name`; a lane
/// (`name@<fingerprint>`) is an object of its own with a `lane_of` label on
/// `shmstate_object_info`.
pub fn families(scrape: &Scrape<'_>) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let mut b = Builder { families: Vec::new() };
    let info = b.family("shmstate_object", Kind::Info, None, "An object's type, layout and origin; always 1.");
    let unreadable = b.family(
        "shmstate_object_unreadable",
        Gauge,
        None,
        "1 for an object in /dev/shm that could not be read (corrupt, another format version, no permission).",
    );
    let generation = b.family("shmstate_generation", Gauge, None, "The latest published generation (0: none yet).");
    let publishes = b.family("shmstate_publishes", Counter, None, "Snapshots published into the object.");
    let growths = b.family("shmstate_growths", Counter, None, "Times the writer grew the data segment.");
    let last_publish = b.family(
        "shmstate_last_publish_timestamp_seconds",
        Gauge,
        Some("seconds"),
        "When the latest snapshot was published (Unix time; 0: never).",
    );
    let since_publish = b.family(
        "shmstate_since_last_publish_seconds",
        Gauge,
        Some("seconds"),
        "Seconds since the latest publish, at the time of the scrape (absent: never published).",
    );
    let writer_alive = b.family("shmstate_writer_alive", Gauge, None, "1 while a live writer holds the object.");
    let readers = b.family(
        "shmstate_readers",
        Gauge,
        None,
        "Reader handles by state: live, or dead with a pin or wait the writer has not reclaimed yet.",
    );
    let reader_capacity =
        b.family("shmstate_reader_capacity", Gauge, None, "Reader-table entries (the most reader handles at once).");
    let lag = b.family(
        "shmstate_reader_lag_generations",
        Gauge,
        None,
        "Per pinning reader: generations between the one it holds and the latest.",
    );
    let pin_age = b.family(
        "shmstate_reader_pinned_age_seconds",
        Gauge,
        Some("seconds"),
        "Per pinning reader: how long ago the generation it holds was published.",
    );
    let mapped = b.family("shmstate_segment_bytes", Gauge, Some("bytes"), "Size of the data segment in /dev/shm.");
    let max_bytes = b.family(
        "shmstate_segment_max_bytes",
        Gauge,
        Some("bytes"),
        "The size the writer may grow the data segment to.",
    );
    let held = b.family(
        "shmstate_held_old_bytes",
        Gauge,
        Some("bytes"),
        "Bytes of slots that readers keep for older generations.",
    );
    let slots = b.family("shmstate_slots", Gauge, None, "Slots in use in the data segment.");
    let validation_failures =
        b.family("shmstate_validation_failures", Counter, None, "Snapshots that failed validation in some reader.");
    let reclaimed = b.family("shmstate_reclaimed_pins", Counter, None, "Pins of dead readers reclaimed by writers.");
    let opens = b.family("shmstate_reader_opens", Counter, None, "Reader handles ever opened on the reader table.");
    let waiters = b.family("shmstate_waiters", Gauge, None, "Readers blocked waiting for a new generation now.");
    let lanes = b.family("shmstate_lanes", Gauge, None, "Other layouts (lanes) the object carries.");
    let shared_writers =
        b.family("shmstate_shared_writers", Gauge, None, "Shared writers (WriterOptions::shared) holding a seat now.");
    let origin_generation = b.family(
        "shmstate_origin_generation",
        Gauge,
        None,
        "For an object mirrored from another host: the source generation of its latest publish.",
    );
    for (name, r) in scrape.objects {
        let n = || vec![("name", name.clone())];
        let info_r = match r {
            Ok(i) => i,
            Err(_) => {
                b.sample(unreadable, n(), 1.0);
                continue;
            }
        };
        b.sample(unreadable, n(), 0.0);
        let mut labels = n();
        labels.push(("type", info_r.type_name.clone().unwrap_or_default()));
        labels.push(("fingerprint", format!("{:016x}", info_r.fingerprint)));
        labels.push(("format_version", info_r.format_version.to_string()));
        labels.push(("pin_mode", info_r.pin_mode.replace(' ', "_")));
        labels.push(("lane_of", info_r.lane_of.clone().unwrap_or_default()));
        labels.push(("origin_host", info_r.origin.as_ref().map(|o| o.host.clone()).unwrap_or_default()));
        b.sample(info, labels, 1.0);
        b.sample(generation, n(), info_r.generation as f64);
        b.sample(publishes, n(), info_r.publishes as f64);
        b.sample(growths, n(), info_r.growths as f64);
        b.sample(last_publish, n(), seconds(info_r.last_publish_ns));
        if info_r.last_publish_ns != 0 {
            b.sample(since_publish, n(), age(scrape.now_ns, info_r.last_publish_ns));
        }
        b.sample(writer_alive, n(), f64::from(u8::from(info_r.writer_alive)));
        let live = info_r.live_readers();
        let with_state = |state: &str| vec![("name", name.clone()), ("state", state.to_string())];
        b.sample(readers, with_state("live"), live as f64);
        b.sample(readers, with_state("dead"), (info_r.readers.len() - live) as f64);
        b.sample(reader_capacity, n(), f64::from(info_r.reader_capacity));
        for reader in &info_r.readers {
            let Some((pinned_gen, slot)) = reader.pinned else { continue };
            let labels = || {
                vec![
                    ("name", name.clone()),
                    ("reader", reader.index.to_string()),
                    ("pid", reader.pid.to_string()),
                    ("alive", reader.alive.to_string()),
                ]
            };
            b.sample(lag, labels(), info_r.generation.saturating_sub(pinned_gen) as f64);
            let published = info_r.slots.iter().find(|s| s.index == slot && s.generation == pinned_gen);
            if let Some(s) = published.filter(|s| s.published_ns != 0) {
                b.sample(pin_age, labels(), age(scrape.now_ns, s.published_ns));
            }
        }
        b.sample(mapped, n(), info_r.size as f64);
        b.sample(max_bytes, n(), info_r.max_size as f64);
        b.sample(held, n(), info_r.held_old_bytes() as f64);
        b.sample(slots, n(), f64::from(info_r.slot_count));
        b.sample(validation_failures, n(), info_r.validation_failures as f64);
        b.sample(reclaimed, n(), info_r.reclaimed_pins as f64);
        b.sample(opens, n(), info_r.reader_opens as f64);
        b.sample(waiters, n(), f64::from(info_r.waiters));
        b.sample(lanes, n(), info_r.lanes.len() as f64);
        b.sample(shared_writers, n(), info_r.shared_writers.len() as f64);
        if let Some(o) = &info_r.origin {
            b.sample(origin_generation, n(), o.generation as f64);
        }
    }
    b.families
}

/// A label value with `\`, `"` and newlines escaped (both formats).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The families as text in `format`.
pub fn render(families: &[Family], format: Format) -> String {
    let mut s = String::new();
    for f in families {
        // A family with no sample says nothing; both formats allow leaving it out.
        if f.samples.is_empty() {
            continue;
        }
        let (family_name, sample_name) = match (f.kind, format) {
            (Kind::Counter, Format::Prometheus) => (format!("{}_total", f.name), format!("{}_total", f.name)),
            (Kind::Counter, Format::OpenMetrics) => (f.name.to_string(), format!("{}_total", f.name)),
            (Kind::Info, Format::Prometheus) => (format!("{}_info", f.name), format!("{}_info", f.name)),
            (Kind::Info, Format::OpenMetrics) => (f.name.to_string(), format!("{}_info", f.name)),
            (Kind::Gauge, _) => (f.name.to_string(), f.name.to_string()),
        };
        let kind = match (f.kind, format) {
            (Kind::Gauge, _) | (Kind::Info, Format::Prometheus) => "gauge",
            (Kind::Counter, _) => "counter",
            (Kind::Info, Format::OpenMetrics) => "info",
        };
        let _ = writeln!(s, "# HELP {family_name} {}", f.help);
        let _ = writeln!(s, "# TYPE {family_name} {kind}");
        if let (Some(unit), Format::OpenMetrics) = (f.unit, format) {
            let _ = writeln!(s, "# UNIT {family_name} {unit}");
        }
        for (labels, v) in &f.samples {
            s.push_str(&sample_name);
            if !labels.is_empty() {
                s.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    let _ = write!(s, "{k}=\"{}\"", escape(val));
                }
                s.push('}');
            }
            let _ = writeln!(s, " {}", number(*v));
        }
    }
    if format == Format::OpenMetrics {
        s.push_str("# EOF\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, unit: Option<&'static str>) -> Vec<Family> {
        vec![Family {
            name: "shmstate_x_bytes",
            help: "h",
            kind,
            unit,
            samples: vec![(vec![("name", "a\"b\\c\nd".into())], 2.0), (vec![], 0.5)],
        }]
    }

    #[test]
    fn counters_are_named_per_format() {
        let p = render(&one(Kind::Counter, None), Format::Prometheus);
        assert!(p.contains("# TYPE shmstate_x_bytes_total counter\n"), "{p}");
        assert!(p.contains("shmstate_x_bytes_total{name=\"a\\\"b\\\\c\\nd\"} 2\n"), "{p}");
        assert!(!p.contains("# EOF"));
        let o = render(&one(Kind::Counter, Some("bytes")), Format::OpenMetrics);
        assert!(o.contains("# TYPE shmstate_x_bytes counter\n# UNIT shmstate_x_bytes bytes\n"), "{o}");
        assert!(o.contains("shmstate_x_bytes_total 0.5\n"), "{o}");
        assert!(o.ends_with("# EOF\n"));
    }

    #[test]
    fn units_only_in_openmetrics() {
        assert!(!render(&one(Kind::Gauge, Some("bytes")), Format::Prometheus).contains("# UNIT"));
    }
}
