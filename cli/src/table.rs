//! Aligned text tables and small formatting helpers (sizes, times).

use std::time::{SystemTime, UNIX_EPOCH};

/// Column alignment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

enum Row {
    Cells(Vec<String>),
    /// The first cell aligned, then free text that does not widen columns.
    Note(String, String),
}

/// A table printed with columns padded to their widest cell, two spaces apart.
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Row>,
    indent: usize,
}

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new(), indent: 0 }
    }

    pub fn indent(mut self, n: usize) -> Self {
        self.indent = n;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row::Cells(cells));
    }

    pub fn note(&mut self, first: String, text: String) {
        self.rows.push(Row::Note(first, text));
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.chars().count()).collect();
        for row in &self.rows {
            match row {
                Row::Cells(cells) => {
                    for (w, c) in widths.iter_mut().zip(cells) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                Row::Note(first, _) => widths[0] = widths[0].max(first.chars().count()),
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        self.line(&mut out, &widths, &headers);
        for row in &self.rows {
            match row {
                Row::Cells(cells) => self.line(&mut out, &widths, cells),
                Row::Note(first, text) => {
                    let line = format!("{}{:<w$}  {text}", " ".repeat(self.indent), first, w = widths[0]);
                    out.push_str(line.trim_end());
                    out.push('\n');
                }
            }
        }
        out
    }

    fn line(&self, out: &mut String, widths: &[usize], cells: &[String]) {
        let mut line = " ".repeat(self.indent);
        for (i, ((w, (_, align)), c)) in widths.iter().zip(&self.headers).zip(cells).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w.saturating_sub(c.chars().count());
            match align {
                Align::Left => {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `12.0 KiB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `3s ago`, `2m ago`, `5h ago`, `4d ago`; `never` for 0.
pub fn ago(ns: u64) -> String {
    if ns == 0 {
        return "never".into();
    }
    let now = now_ns();
    if ns > now {
        return "in the future".into();
    }
    let s = (now - ns) / 1_000_000_000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// `2024-05-01 12:00:03.123Z (3s ago)`, or `never`.
pub fn timestamp(ns: u64) -> String {
    if ns == 0 {
        return "never".into();
    }
    format!("{} ({})", utc(ns), ago(ns))
}

/// UTC calendar time of `ns` since the epoch, millisecond precision.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(1), "1970-01-01 00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123_000_000), "2023-11-14 22:13:20.123Z");
        assert_eq!(human_size(12288), "12.0 KiB");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&[("A", Align::Left), ("NUM", Align::Right)]);
        t.row(vec!["long-name".into(), "7".into()]);
        t.note("x".into(), "free text".into());
        assert_eq!(t.render(), "A          NUM\nlong-name    7\nx          free text\n");
    }
}
