#!/usr/bin/env bash
# Instructions per read and per publish (benches/read_instructions.rs;
# BENCHMARKS.md, "New-generation read: where the instructions go").
#
# Callgrind counts only inside the scenario's `measured_*` function, user
# space only (a lock-pin syscall's kernel side is not counted), over two
# runs of K1 and K2 iterations: per call = (Ir(K2) - Ir(K1)) / (K2 - K1).
# Deterministic however loaded the machine is. As in scale-curves.sh the
# binary is built with rustix's libc backend (valgrind hides the vDSO).
#
#   scripts/read-instructions.sh              # every scenario, 100 B, 10 KB, 1 MiB
#   SIZES=100 scripts/read-instructions.sh
#   ANNOTATE=new scripts/read-instructions.sh # also the inclusive per-function split of `new` at 100 B
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-100 10000 1000000}
K1=${K1:-200}
K2=${K2:-600}
target=${CARGO_TARGET_DIR:-target}
counted=$(CARGO_TARGET_DIR="$target/callgrind" RUSTFLAGS="--cfg rustix_use_libc" \
    cargo bench --bench read_instructions --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$counted" ] || { echo "read-instructions: build failed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# instructions OUT FUNCTION ARGS...: Ir collected inside FUNCTION over one run.
instructions() {
    local out=$1 function=$2
    shift 2
    if ! valgrind --tool=callgrind --toggle-collect="*$function*" --callgrind-out-file="$out" \
        "$counted" "$@" >/dev/null 2>"$tmp/vg.log"; then
        cat "$tmp/vg.log" >&2
        exit 1
    fi
    awk '/^summary:/ { print $2 }' "$out"
}

per_call() { # FUNCTION SCENARIO SIZE PINS
    local a b
    a=$(instructions "$tmp/a.out" "$1" "$2" --size "$3" --pins "$4" --iterations "$K1")
    b=$(instructions "$tmp/b.out" "$1" "$2" --size "$3" --pins "$4" --iterations "$K2")
    echo $(((b - a) / (K2 - K1)))
}

printf '| scenario | pins | size | instructions / call |\n| --- | --- | ---: | ---: |\n'
for size in $SIZES; do
    for scenario in new forced unchanged heap; do
        function=measured_read
        [ "$scenario" = heap ] && function=measured_heap
        printf '| %s | table | %s | %s |\n' "$scenario" "$size" "$(per_call $function $scenario "$size" table)"
    done
    printf '| new | locks | %s | %s |\n' "$size" "$(per_call measured_read new "$size" locks)"
    printf '| publish | table | %s | %s |\n' "$size" "$(per_call measured_publish publish "$size" table)"
    printf '| publish | locks | %s | %s |\n' "$size" "$(per_call measured_publish publish "$size" locks)"
done

# Lanes (BENCHMARKS.md "Lanes"): one layout, a lane converted by a clone,
# a lane serialized from a borrow (`lane_ref`).
for size in $SIZES; do
    case $size in 100 | 10000) ;; *) continue ;; esac
    for scenario in publish_plain publish_lane publish_lane_ref; do
        printf '| %s | table | %s | %s |\n' "$scenario" "$size" "$(per_call measured_publish_next $scenario "$size" table)"
    done
done

if [ -n "${ANNOTATE:-}" ]; then
    instructions "$tmp/n.out" measured_read "$ANNOTATE" --size 100 --pins table --iterations "$K2" >/dev/null
    callgrind_annotate --inclusive=yes --threshold=99 "$tmp/n.out" | head -60
fi
