"""Python read and publish costs, side by side in one run (figures in
BENCHMARKS.md, "Python"):

    python3 python/benches/bench_python.py

needs the package installed (`pip install ./python`) and builds the Rust
fixture writer (examples/python_fixture.rs) with cargo. Medians of
repeated timings; ratios are within this run.
"""

import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import shmstate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 1_000_000


def fixture():
    subprocess.run(["cargo", "build", "-q", "-p", "shmstate-examples", "--features", "serde", "--example", "python_fixture"],
                   cwd=REPO, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                                     check=True, capture_output=True, text=True).stdout)
    return os.path.join(meta["target_directory"], "debug", "examples", "python_fixture")


def rust_config(exe, src):
    """A full Config value, as Python sees it: from a Rust writer's object `src`."""
    p = subprocess.Popen([exe, "serve", src], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    value = shmstate.Reader(src).read().to_python()
    p.stdin.write("quit\n")
    p.stdin.flush()
    p.wait()
    return value


def per_call(fn, loops=10_000, rounds=7):
    """Median over rounds of the time per call, in ns."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        out.append((time.perf_counter_ns() - t) / loops)
    return statistics.median(out)


def once(fn, rounds=31):
    """Median time of single calls after a fresh setup each, in ns: fn() -> (setup, timed)."""
    out = []
    for _ in range(rounds):
        timed = fn()
        t = time.perf_counter_ns()
        timed()
        out.append(time.perf_counter_ns() - t)
    return statistics.median(out)


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def dict_libraries():
    """The same 1 M f64 through shared-memory-dict and UltraDict, if installed
    (`pip install shared-memory-dict UltraDict`): a second handle reads `[0]`."""
    out = []
    arr = np.arange(N, dtype=np.float64)
    try:
        from shared_memory_dict import SharedMemoryDict
    except ImportError:
        print("shared-memory-dict not installed: its rows are left out", file=sys.stderr)
    else:
        writer = SharedMemoryDict(name=f"smd{os.getpid()}", size=16 << 20)
        writer["w"] = arr
        reader = SharedMemoryDict(name=f"smd{os.getpid()}", size=16 << 20)
        out.append(("1 M f64: shared-memory-dict `d['w'][0]`", per_call(lambda: reader["w"][0], 20)))
        writer.shm.close()
        writer.shm.unlink()
    try:
        from UltraDict import UltraDict
    except ImportError:
        print("UltraDict not installed: its rows are left out", file=sys.stderr)
    else:
        writer = UltraDict(name=f"ud{os.getpid()}", create=True, buffer_size=16 << 20)
        writer["w"] = arr
        out.append(("1 M f64: UltraDict, a new handle's `d['w'][0]`",
                    per_call(lambda: UltraDict(name=f"ud{os.getpid()}", create=False)["w"][0], 20)))
        reader = UltraDict(name=f"ud{os.getpid()}", create=False)
        out.append(("1 M f64: UltraDict, an attached handle's `d['w'][0]` (unchanged)",
                    per_call(lambda: reader["w"][0], 2000)))
        writer.unlink()
    return out


def main():
    exe = fixture()
    name = f"bench.py.{os.getpid()}"
    rows = []
    w = subprocess.Popen([exe, "serve", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    w.stdout.readline()
    try:
        w.stdin.write(f"big {N}\n")
        w.stdin.flush()
        w.stdout.readline()
        r = shmstate.Reader(name)
        snap = r.read()
        plain = {"port": snap.port}

        rows.append(("unchanged `r.read()`", per_call(r.read)))
        rows.append(("`snap.port` (a u16 field)", per_call(lambda: snap.port)))
        rows.append(("`d['port']` on a plain dict", per_call(lambda: plain["port"])))
        rows.append(("`r.read().port`", per_call(lambda: r.read().port)))

        weights = np.asarray(snap.weights)
        assert weights.shape == (N,)
        rows.append(("1 M f64: `np.asarray(snap.weights)[0]`", per_call(lambda: np.asarray(snap.weights)[0], 2000)))
        shm_sum = per_call(lambda: np.asarray(snap.weights).sum(), 20)
        rows.append(("1 M f64: `np.asarray(snap.weights).sum()`", shm_sum))

        # The same 1 M f64 through multiprocessing.shared_memory + pickle.
        data = pickle.dumps(np.arange(N, dtype=np.float64), protocol=pickle.HIGHEST_PROTOCOL)
        seg = shared_memory.SharedMemory(create=True, size=len(data))
        seg.buf[: len(data)] = data
        try:
            def via_shm():
                other = shared_memory.SharedMemory(name=seg.name, track=False) if sys.version_info >= (3, 13) \
                    else shared_memory.SharedMemory(name=seg.name)
                a = pickle.loads(other.buf[: len(data)])
                other.close()
                return a

            first = per_call(lambda: via_shm()[0], 20)
            rows.append(("1 M f64: shared_memory + `pickle.loads` → `[0]`", first))
            rows.append(("1 M f64: shared_memory + `pickle.loads` → `.sum()`", per_call(lambda: via_shm().sum(), 20)))
            rows.append(("1 M f64: `pickle.loads(bytes)` → `[0]`", per_call(lambda: pickle.loads(data)[0], 20)))
        finally:
            seg.close()
            seg.unlink()
        rows.extend(dict_libraries())
    finally:
        w.stdin.write("quit\n")
        w.stdin.flush()
        w.wait()

    # New-generation read() (pin + validate + root view) and publish from
    # Python, by snapshot size.
    schemas = {
        "v2": subprocess.run([exe, "schema", "v2"], check=True, capture_output=True, text=True).stdout,
        "v1": subprocess.run([exe, "schema"], check=True, capture_output=True, text=True).stdout,
    }
    base = None
    sizes = []
    for label, schema, make in [
        ("100 B", "v2", lambda i: {"port": i, "label": "x" * 80}),
        ("10 KB", "v1", lambda i: dict(base, seq=i, weights=np.arange(1200, dtype=np.float64))),
        ("1 MiB", "v1", lambda i: dict(base, seq=i, weights=np.arange(131_000, dtype=np.float64))),
    ]:
        obj = f"{name}.{label.replace(' ', '')}"
        if base is None and schema == "v1":
            pass
        with shmstate.Writer.open(obj, schema=schemas[schema]) as pw:
            if schema == "v1" and base is None:
                base = rust_config(exe, f"{name}.src")
            reader = shmstate.Reader(obj)
            i = [0]

            def publish():
                i[0] += 1
                pw.publish(make(i[0]))

            publish()
            size = reader.read().size

            def fresh():
                publish()
                return lambda: reader.read()

            read_ns = once(fresh)
            pub_ns = per_call(publish, 20 if label == "1 MiB" else 300)
            sizes.append((label, size, read_ns, pub_ns))
        shmstate.remove(obj)

    print("| what | time |")
    print("| --- | --- |")
    for what, ns in rows:
        print(f"| {what} | {fmt(ns)} |")
    print()
    print("| snapshot | bytes | new-generation `read()` | `Writer.publish` from Python |")
    print("| --- | --- | --- | --- |")
    for label, size, read_ns, pub_ns in sizes:
        print(f"| {label} | {size} | {fmt(read_ns)} | {fmt(pub_ns)} |")
    d = dict(rows)
    print()
    view, pickled = d["1 M f64: `np.asarray(snap.weights)[0]`"], d["1 M f64: shared_memory + `pickle.loads` → `[0]`"]
    print(f"numpy first element vs shared_memory + pickle: {pickled / view:.0f}×")
    attr, lookup = d["`snap.port` (a u16 field)"], d["`d['port']` on a plain dict"]
    print(f"attribute read vs dict lookup: {attr / lookup:.1f}×")


if __name__ == "__main__":
    main()
