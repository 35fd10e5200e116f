#!/usr/bin/env bash
# Extra checks run by .ci/run after the test suite (scripts/test-all.sh): the
# loom model of the protocol, and Miri over the heap-backed protocol tests when a nightly toolchain with Miri can be had on this machine (skipped,
# and said so, if not).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "-- loom"
CARGO_TARGET_DIR=target/loom scripts/loom.sh

echo "-- miri"
if timeout 300 rustup component add --toolchain nightly rust-src miri >/dev/null 2>&1 \
    && cargo +nightly miri --version >/dev/null 2>&1; then
    CARGO_TARGET_DIR=target/miri scripts/miri.sh
else
    echo "miri: no nightly toolchain with Miri on this machine; skipped (run scripts/miri.sh where it exists)"
fi
