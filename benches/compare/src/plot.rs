//! PNG plots of read and publish latency by snapshot size (plotters, log-log).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::Row;

const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

fn font() -> Result<(), String> {
    let path = std::env::var("PLOT_FONT")
        .ok()
        .or_else(|| FONT_PATHS.iter().find(|p| Path::new(p).exists()).map(|p| p.to_string()))
        .ok_or("no TTF font found (set PLOT_FONT=/path/to/font.ttf)")?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| format!("{path}: invalid font"))
}

const COLORS: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// One line: label, scenario, implementation.
type Series<'a> = (&'a str, &'a str, &'a str);

fn chart(rows: &[Row], file: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let pts = |scenario: &str, imp: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.scenario == scenario && r.imp == imp && r.bytes > 0)
            .map(|r| (r.bytes as f64, r.value.max(0.1)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, s, i)| pts(s, i)).collect();
    if all.is_empty() {
        return Err(format!("{title}: no data"));
    }
    let (ymin, ymax) = all.iter().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (xmin, xmax) = all.iter().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let root = BitMapBackend::new(file, (900, 600)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((xmin / 2.0..xmax * 2.0).log_scale(), (ymin / 2.0..ymax * 3.0).log_scale())
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .x_desc("archived snapshot size (bytes)")
        .y_desc("latency per operation (ns)")
        .x_label_formatter(&|x| human(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (k, (label, scenario, imp)) in series.iter().enumerate() {
        let p = pts(scenario, imp);
        if p.is_empty() {
            continue;
        }
        let c = COLORS[k % COLORS.len()];
        ch.draw_series(LineSeries::new(p.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        ch.draw_series(p.into_iter().map(|xy| Circle::new(xy, 4, c.filled()))).map_err(|x| e(&x))?;
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn human(x: f64) -> String {
    if x >= 1048576.0 {
        format!("{:.0} MiB", x / 1048576.0)
    } else if x >= 1024.0 {
        format!("{:.0} KiB", x / 1024.0)
    } else {
        format!("{x:.0} B")
    }
}

pub fn plots(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, String> {
    font()?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let read = dir.join("read_latency.png");
    chart(
        rows,
        &read,
        "Read latency by snapshot size",
        &[
            ("shmstate read, unchanged generation", "read, unchanged generation", "shmstate"),
            ("shmstate read, new generation (pin + bytecheck)", "read, new generation (validated)", "shmstate"),
            ("mmap-sync read(check_bytes=false)", "read, unchanged generation", "mmap-sync"),
            ("mmap-sync read(check_bytes=true)", "read, unchanged generation", "mmap-sync checked"),
            ("iceoryx2 blackboard get (copy)", "read, unchanged generation", "iceoryx2 blackboard"),
            ("rkyv::access on heap (validation floor)", "read, new generation (validated)", "rkyv heap (floor)"),
        ],
    )?;
    let publish = dir.join("publish_latency.png");
    chart(
        rows,
        &publish,
        "Publish latency by snapshot size (no readers)",
        &[
            ("shmstate publish", "publish", "shmstate"),
            ("mmap-sync write", "publish", "mmap-sync"),
            ("mmap-sync write_raw (pre-serialized)", "publish", "mmap-sync write_raw"),
            ("iceoryx2 blackboard (to_bytes + update_with_copy)", "publish", "iceoryx2 blackboard"),
            ("rkyv::to_bytes (floor)", "publish", "rkyv heap (floor)"),
        ],
    )?;
    Ok(vec![read, publish])
}
