#!/usr/bin/env bash
# Long crash campaign: SIGKILLs writers (mid-publish, mid-growth) and readers
# (while pinned) at random points; prints the figures recorded in RELIABILITY.md.
# Usage: scripts/crash-campaign.sh [epochs] [rounds-per-epoch]
#   SHMSTATE_CRASH_SEED=N replays a schedule (timing still varies).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-rel}"
export SHMSTATE_CRASH_EPOCHS="${1:-${SHMSTATE_CRASH_EPOCHS:-12}}"
export SHMSTATE_CRASH_ROUNDS="${2:-${SHMSTATE_CRASH_ROUNDS:-60}}"
cargo test --release --test crash_campaign -- --ignored --exact campaign_long --nocapture
