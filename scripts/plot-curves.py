#!/usr/bin/env python3
"""SVG line charts of the CSVs that benches/curves.rs writes (scripts/curves.sh).

    python3 scripts/plot-curves.py CSV_DIR PLOT_DIR

Standard library only: each chart is a log-x, log-y line chart written as SVG.
Missing CSVs are skipped.
"""

import csv
import math
import os
import sys

WIDTH, HEIGHT = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 90, 240, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def read_csv(directory, name):
    path = os.path.join(directory, name + ".csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(cell):
    return float(cell.replace(",", "")) if cell.strip() else None


def fmt_ns(v):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if v >= scale:
            return "%g %s" % (round(v / scale, 3), unit)
    return "%g ns" % round(v, 3)


def fmt_ms(v):
    return fmt_ns(v * 1e6)


def fmt_bytes(v):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= scale:
            return "%g %s" % (round(v / scale, 2), unit)
    return "%g B" % v


def fmt_plain(v):
    return "%g" % v


def log_ticks(lo, hi, binary=False):
    """Powers of ten (and 2x, 5x when the range is short) within [lo, hi];
    with `binary`, powers of two, every 2nd or more so that there are at most 9."""
    if binary:
        exps = list(range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1))
        step = max(1, math.ceil(len(exps) / 9))
        return [2.0**e for e in exps if e % step == 0]
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in ((1,) if hi / lo > 1e3 else (1, 2, 5)):
            t = m * 10.0**e
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


def chart(path, title, xlabel, ylabel, series, xticks, xfmt, yfmt):
    binary = yfmt is fmt_bytes
    """series: (label, [(x, y)], dashed (False, True or "dot")[, color index]). Log scale on both axes."""
    points = [(x, y) for s in series for x, y in s[1] if x and y and x > 0 and y > 0]
    if not points:
        return
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    if x_lo == x_hi:
        x_lo, x_hi = x_lo / 2, x_hi * 2
    y_lo, y_hi = min(ys) / 1.6, max(ys) * 1.6
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + pw * (math.log(x) - math.log(x_lo)) / (math.log(x_hi) - math.log(x_lo))

    def py(y):
        return TOP + ph * (1 - (math.log(y) - math.log(y_lo)) / (math.log(y_hi) - math.log(y_lo)))

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
        % (WIDTH, HEIGHT),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (LEFT, esc(title)),
    ]
    for t in log_ticks(y_lo, y_hi, binary):
        y = py(t)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (LEFT, LEFT + pw, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (LEFT - 6, y + 4, esc(yfmt(t))))
    for t in xticks:
        x = px(t)
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>' % (x, x, TOP, TOP + ph))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, TOP + ph + 18, esc(xfmt(t))))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>' % (LEFT, TOP, pw, ph))
    out.append(
        '<text x="%d" y="%d" text-anchor="middle">%s</text>' % (LEFT + pw / 2, HEIGHT - 16, esc(xlabel))
    )
    out.append(
        '<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">%s</text>'
        % (TOP + ph / 2, esc(ylabel))
    )
    for i, s in enumerate(series):
        label, pts, dashed = s[:3]
        pts = [(x, y) for x, y in pts if x and y and x > 0 and y > 0]
        if not pts:
            continue
        color = COLORS[(s[3] if len(s) > 3 else i) % len(COLORS)]
        dash = ' stroke-dasharray="%s"' % ("2,3" if dashed == "dot" else "6,4") if dashed else ""
        coords = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in pts)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>' % (coords, color, dash))
        for x, y in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), color))
        ly = TOP + 10 + 20 * i
        lx = LEFT + pw + 12
        out.append(
            '<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/>' % (lx, lx + 24, ly, ly, color, dash)
        )
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 30, ly + 4, esc(label)))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote", path)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def rows_where(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def line(rows, x, y):
    return [(number(r[x]), number(r[y])) for r in rows]


def plot_publish(rows, out):
    readers = sorted({number(r["readers"]) for r in rows})
    series = []
    for pins in ("table", "locks"):
        for loop, short in (("wait_newer + read", "waiting"), ("idle (holds a pin)", "idle")):
            sel = rows_where(rows, pins=pins, reader_loop=loop)
            c = 2 * (pins == "locks") + (short == "idle")
            series.append(("%s, %s: p50" % (pins, short), line(sel, "readers", "publish_p50_ns"), False, c))
            series.append(("%s, %s: p99" % (pins, short), line(sel, "readers", "publish_p99_ns"), True, c))
            if short == "waiting":
                cpu = line(sel, "readers", "publish_cpu_p50_ns_net")
                series.append(("%s, %s: CPU p50" % (pins, short), cpu, "dot", c))
    chart(
        os.path.join(out, "curves_publish.svg"),
        "Publish (100 B) vs reader processes: wall clock, dotted = publisher CPU",
        "reader processes (log)",
        "publish latency (log)",
        series,
        readers,
        fmt_plain,
        fmt_ns,
    )
    series = []
    for pins in ("table", "locks"):
        sel = rows_where(rows, pins=pins, reader_loop="wait_newer + read")
        c = len(series) // 2
        series.append(("%s: new generation p50" % pins, line(sel, "readers", "new_gen_read_p50_ns"), False, c))
        series.append(("%s: unchanged p50" % pins, line(sel, "readers", "unchanged_read_p50_ns"), True, c))
    chart(
        os.path.join(out, "curves_reads.svg"),
        "Reads in one reader process (100 B) vs reader processes",
        "reader processes, all in wait_newer + read (log)",
        "read time (log)",
        series,
        readers,
        fmt_plain,
        fmt_ns,
    )


def plot_memory(rows, out):
    for snapshot in sorted({r["snapshot"] for r in rows}):
        sel = rows_where(rows, snapshot=snapshot)
        readers = sorted({number(r["readers"]) for r in sel})
        series = []
        for pin in ("keep", "release"):
            p = rows_where(sel, pin=pin)
            c = len(series) // 3
            series.append(("%s: slot capacity sum" % pin, line(p, "readers", "slot_capacity_sum"), False, c))
            series.append(("%s: segment (inspect size)" % pin, line(p, "readers", "shm_segment_bytes"), "dot", c))
            series.append(("%s: bound" % pin, line(p, "readers", "bound_bytes"), True, c))
        chart(
            os.path.join(out, "curves_memory_%s.svg" % snapshot),
            "Shared memory vs idle reader processes (%s snapshot)" % snapshot,
            "idle reader processes, reader k holds generation k (log)",
            "bytes (log)",
            series,
            readers,
            fmt_plain,
            fmt_bytes,
        )


def size_of(label):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("KB", 1000)):
        if label.endswith(unit):
            return float(label[: -len(unit)]) * scale
    return float(label)


def plot_large(rows, out):
    for r in rows:
        r["bytes"] = str(size_of(r["snapshot"]))
    sizes = [number(r["bytes"]) for r in rows]
    series = [
        ("shmstate publish", line(rows, "bytes", "shmstate_publish_ms"), False, 0),
        ("rkyv::to_bytes", line(rows, "bytes", "rkyv_to_bytes_ms"), True, 0),
        ("rkyv::to_bytes_in (fixed buffer)", line(rows, "bytes", "rkyv_to_bytes_in_fixed_buffer_ms"), "dot", 0),
        ("shmstate new-gen read", line(rows, "bytes", "shmstate_new_gen_read_ms"), False, 1),
        ("rkyv::access (fixed buffer)", line(rows, "bytes", "rkyv_access_fixed_buffer_ms"), "dot", 1),
        ("rkyv::access after to_bytes", line(rows, "bytes", "rkyv_access_after_to_bytes_ms"), True, 1),
    ]
    chart(
        os.path.join(out, "curves_large.svg"),
        "Large snapshots: shmstate vs rkyv on the heap (medians)",
        "archived snapshot size (log)",
        "time (log)",
        series,
        sizes,
        fmt_bytes,
        fmt_ms,
    )


def plot_open(rows, out):
    handles = sorted({number(r["open_handles_in_other_processes"]) for r in rows})
    series = []
    for pins in ("table", "locks"):
        sel = rows_where(rows, pins=pins)
        c = len(series) // 2
        x = "open_handles_in_other_processes"
        series.append(("%s: p50" % pins, line(sel, x, "reader_open_p50_ns"), False, c))
        series.append(("%s: p99" % pins, line(sel, x, "reader_open_p99_ns"), True, c))
    chart(
        os.path.join(out, "curves_open.svg"),
        "Reader::open vs handles open in other processes",
        "open handles in other processes (log)",
        "Reader::open time (log)",
        series,
        handles,
        fmt_plain,
        fmt_ns,
    )


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot-curves.py CSV_DIR PLOT_DIR")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name, plot in (("publish", plot_publish), ("memory", plot_memory), ("large", plot_large), ("open", plot_open)):
        rows = read_csv(src, name)
        if rows:
            plot(rows, out)


if __name__ == "__main__":
    main()
