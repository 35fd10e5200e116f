#!/usr/bin/env bash
# The map object beside LMDB (benches/map-lmdb, a crate of its own outside the
# workspace: LMDB's C sources are built only here). Prints markdown tables
# (docs/BENCHMARKS.md, "Map beside LMDB"). Arguments: entry counts (default
# 100000 1000000); BIG=1 adds 1,000,000 entries of 1 KiB values (about 1 GiB
# per store in /dev/shm, several GiB with the held generations).
set -euo pipefail
cd "$(dirname "$0")/../benches/map-lmdb"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../../target}/map-lmdb"
uptime
cargo run --release -q -- "$@"
uptime
