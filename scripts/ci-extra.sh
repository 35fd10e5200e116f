#!/usr/bin/env bash
# Extra checks run by .ci/run after the test suite (scripts/test-all.sh): the
# loom model of the protocol, Miri over the heap-backed protocol tests when a nightly toolchain with Miri can be had on this machine (skipped,
# and said so, if not), and the packages the crates would publish.
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

# Every crate packaged and built from its .crate alone, in publishing order,
# against the others' local packages (RELEASING.md). Measured here: about
# 5 min from an empty target directory at -j1 (mostly the bridge's async-nats
# tree), about 15 s when nothing changed; it shares the default target
# directory with the test builds, so dependencies built the same way are reused.
# --allow-dirty: the same check on a work tree with uncommitted changes.
echo "-- package"
start=$(date +%s)
# Cargo unpacks the crates of its temporary local registry into
# $CARGO_HOME/registry/src/-<hash of the registry path>/ and reuses what it
# finds there: on a machine that ran this before from the same path, the CLI
# and bridge would be verified against an older unpacked `shmstate` (CI failed
# that way: "no field `writer_seen`"). Those directories hold only our crates.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/shmstate-*
cargo package --workspace --allow-dirty
echo "package: 6 crates packaged (the examples and capi ones are not published) and verified in $(( $(date +%s) - start )) s"
