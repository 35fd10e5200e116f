"""`Writer.publish` of large numeric vectors from Python (BENCHMARKS.md,
"Publishing numeric vectors without the Rust type"):

    python3 python/benches/bench_publish.py

needs the package installed (`pip install ./python`) and builds the Rust
fixture (examples/python_fixture.rs) with cargo for its schema. Medians of
7 publishes of `Config` (the fixture's type) whose `weights: Vec<f64>`
holds 1 MiB, passed as a numpy array and as a list.
"""

import os
import statistics
import subprocess
import time

import numpy as np

import shmstate

from bench_python import fixture, rust_config


def median_ms(fn, rounds=7):
    out = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return statistics.median(out) / 1e6


def main():
    exe = fixture()
    schema = subprocess.run([exe, "schema"], check=True, capture_output=True, text=True).stdout
    name = f"bench-publish.{os.getpid()}"
    base = rust_config(exe, f"{name}.src")
    print("| elements | as | `Writer.publish` |")
    print("| ---: | --- | ---: |")
    with shmstate.Writer.open(name, schema=schema) as w:
        for n in (1_200, 131_072):
            weights = np.arange(n, dtype=np.float64)
            print(f"| {n} | numpy float64 | {median_ms(lambda: w.publish(dict(base, weights=weights))):.2f} ms |")
            listed = weights.tolist()
            print(f"| {n} | list of float | {median_ms(lambda: w.publish(dict(base, weights=listed))):.2f} ms |")
    shmstate.remove(name)


if __name__ == "__main__":
    main()
