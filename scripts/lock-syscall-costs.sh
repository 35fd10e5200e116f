#!/usr/bin/env bash
# The cost of each syscall of a lock-pin publish and new-generation read
# (scripts/lock-syscall-costs.c; BENCHMARKS.md, "Issue 26: lock pins and
# lanes"). Thread CPU time; run it at `nice -n -20` on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/lock-syscall-costs" lock-syscall-costs.c
"$tmp/lock-syscall-costs"
