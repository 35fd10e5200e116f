#!/usr/bin/env bash
# Runs the heap-backed protocol / Region / schema tests under Miri, with strict
# provenance and 8 scheduler seeds (data races between the writer's plain slot
# writes and pinned readers' plain reads would be reported as UB).
# Tree Borrows: rkyv 0.8's relative pointers (ArchivedVec::as_slice, rkyv
# src/vec.rs:56) step outside the `&ArchivedVec` they start from, which the
# experimental Stacked Borrows rules reject; Tree Borrows accepts them. Run with
# MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-many-seeds=0..8" to see that report.
# Usage: scripts/miri.sh [test-filter]
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add --toolchain nightly rust-src miri >/dev/null 2>&1 || true
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-tree-borrows -Zmiri-many-seeds=0..8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-miri}"
exec cargo +nightly miri test --lib "${1:-heap_tests}"
