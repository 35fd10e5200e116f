#!/usr/bin/env bash
# Model-checks the publish / pin / reclaim / growth protocol with loom, with
# reader-table pins and with lock pins (OFD slot locks).
# Usage: scripts/loom.sh [test-name-filter]   (LOOM_MAX_PREEMPTIONS=N to change the bound)
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-loom}"
exec cargo test --release --lib "${1:-loom}" -- --nocapture
