#!/usr/bin/env bash
# The whole benchmark suite, one bench after the other (BENCHMARKS.md has what
# each prints and the figures of the last full run). Under 10 minutes on a
# 2-core machine once built; QUICK=1 is a smoke run (shorter measurements,
# fewer samples and points) that checks every bench still runs.
#
#   scripts/bench-all.sh            # full
#   QUICK=1 scripts/bench-all.sh    # smoke
#
# The bridge's bench needs nats-server >= 2.10 (NATS_SERVER, or the one
# scripts/test-all.sh installs under the target directory).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benches test QUICK's presence (compare, bridge) or QUICK=1 (contention,
# shared, scale curves, curves): set it to 1 or not at all.
crit=()
if [ "${QUICK:-0}" = 1 ]; then
    export QUICK=1
    crit=(--warm-up-time 0.2 --measurement-time 0.5 --sample-size 10)
else
    unset QUICK
fi
if [ -z "${NATS_SERVER:-}" ]; then
    found=$(ls -d "${CARGO_TARGET_DIR:-$PWD/target}"/tools/nats-server-*/bin/nats-server 2>/dev/null | tail -1 || true)
    export NATS_SERVER="${found:-nats-server}"
fi
start=$SECONDS
step() { echo; echo "== $* ($((SECONDS - start)) s)"; }

step "build"
cargo bench --workspace --no-run 2>&1 | tail -1
start=$SECONDS
step "read (criterion)";        cargo bench --bench read -- "${crit[@]}"
step "publish (criterion)";     cargo bench --bench publish -- "${crit[@]}"
step "shared (criterion + wake-up)"; cargo bench --bench shared -- "${crit[@]}"
step "contention";              cargo bench --bench contention
step "scale curves";            scripts/scale-curves.sh
step "curves (reader processes, memory, large snapshots)"; scripts/curves.sh
step "across hosts";            cargo bench -p shmstate-bridge --bench propagation
step "compare crate (mmap-sync, iceoryx2)"
(cd benches/compare && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../../target}/compare" cargo run --release)
echo; echo "== suite done in $((SECONDS - start)) s after the build (QUICK=${QUICK:-0})"
