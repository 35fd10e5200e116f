#!/usr/bin/env bash
# Curves with readers in separate processes (benches/curves.rs; BENCHMARKS.md,
# "Curves"): memory with N idle readers, publish and reads with N reader
# processes, 64 MiB / 1 GiB snapshots against rkyv on the heap, Reader::open.
# Writes <mode>.csv and <mode>.md into OUT (default $CARGO_TARGET_DIR/curves)
# and the SVG plots into PLOTS (default benches/plots).
#
#   scripts/curves.sh            # full: N up to 1024, 64 MiB and 1 GiB (about 3 min here)
#   QUICK=1 scripts/curves.sh    # smoke: N up to 64, no 1 GiB (about 15 s), plots into OUT
#
# Peak use of /dev/shm: about 4.2 GiB (64 idle readers holding 64 MiB each);
# the 1 GiB run holds 3 GiB of shm and about 2.5 GiB of heap.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
target=${CARGO_TARGET_DIR:-$PWD/target}
OUT=${OUT:-$target/curves}
if [ "$QUICK" = 1 ]; then
    quick=(--quick)
    PLOTS=${PLOTS:-$OUT/plots}
else
    quick=()
    PLOTS=${PLOTS:-benches/plots}
fi
mkdir -p "$OUT" "$PLOTS"

binary=$(cargo bench --bench curves --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$binary" ] || { echo "curves: build failed" >&2; exit 1; }

# Objects of a run killed before its own clean-up (names bench<pid>-<n>-curves-*).
remove_leftovers() {
    local f pid
    for f in /dev/shm/shmstate.bench*-curves-*; do
        [ -e "$f" ] || continue
        pid=${f#/dev/shm/shmstate.bench}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || rm -f "$f"
    done
}
trap remove_leftovers EXIT

start=$SECONDS
echo "curves: QUICK=$QUICK, commit $(git rev-parse --short HEAD), $(date -u '+%F %T') UTC"
echo "load$(uptime | sed 's/.*load average//')"
for mode in memory large open publish; do
    "$binary" "$mode" --out "$OUT" "${quick[@]}"
done
echo
echo "curves: all modes in $((SECONDS - start)) s; load$(uptime | sed 's/.*load average//')"
python3 scripts/plot-curves.py "$OUT" "$PLOTS"
