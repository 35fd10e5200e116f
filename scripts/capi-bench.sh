#!/usr/bin/env bash
# C readers against the Rust Reader in one run (docs/BENCHMARKS.md, "C readers").
# Usage: scripts/capi-bench.sh [ITERATIONS]   (default 10 000 000)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p shmstate-capi --lib
cc -std=c11 -O2 -Wall -Wextra -Werror -I capi/include capi/benches/c_read.c \
    "$target/release/libshmstate.a" -lpthread -ldl -lm -lrt -lutil -lgcc_s -o "$target/release/c_read"
cargo run --release -p shmstate-capi --example compare -- "$target/release/c_read" "${1:-10000000}"
