#!/usr/bin/env bash
# Scale curves: instructions per publish and per `Reader::open` against the
# number of readers, both pin modes (benches/scale.rs; BENCHMARKS.md, "Scale").
#
# Counts instructions with callgrind: deterministic however loaded the
# machine is, but user space only (the kernel side of a syscall is not
# counted). Per-publish cost = (Ir(K2) - Ir(K1)) / (K2 - K1), counting only
# inside `publish_one`; per-open cost is the same differencing over N. One
# plain run per point adds wall-clock ns/publish, which is noise on a busy
# machine.
#
#   scripts/scale-curves.sh           # N = 1 16 128 1024
#   QUICK=1 scripts/scale-curves.sh   # N = 1 1024, fewer publishes
#   SIZE=10000 scripts/scale-curves.sh
#
# rustix reads the vDSO, which valgrind hides (the program would crash), so
# the callgrind binary is built with rustix's libc backend
# (`--cfg rustix_use_libc`) in its own target directory; the wall-clock runs
# use the ordinary build.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
SIZE=${SIZE:-100}
if [ "$QUICK" = 1 ]; then
    READERS="1 1024"
    K1=200 K2=600
    OPEN1=16 OPEN2=128
else
    READERS="1 16 128 1024"
    K1=500 K2=1500
    OPEN1=128 OPEN2=1024
fi

target=${CARGO_TARGET_DIR:-target}
bench_binary() {
    cargo bench --bench scale --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4
}
plain=$(bench_binary)
counted=$(CARGO_TARGET_DIR="$target/callgrind" RUSTFLAGS="--cfg rustix_use_libc" bench_binary)
[ -x "$plain" ] && [ -x "$counted" ] || { echo "scale-curves: build failed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# instructions FUNCTION ARGS...: Ir collected inside FUNCTION over one run.
instructions() {
    local function=$1
    shift
    if ! valgrind --tool=callgrind --toggle-collect="*$function*" --callgrind-out-file="$tmp/cg.out" \
        "$counted" "$@" >/dev/null 2>"$tmp/vg.log"; then
        cat "$tmp/vg.log" >&2
        exit 1
    fi
    awk '/^summary:/ { print $2 }' "$tmp/cg.out"
}

per_publish() { # PINS N
    local a b
    a=$(instructions publish_one --pins "$1" --readers "$2" --publishes "$K1" --size "$SIZE")
    b=$(instructions publish_one --pins "$1" --readers "$2" --publishes "$K2" --size "$SIZE")
    echo $(((b - a) / (K2 - K1)))
}

wall_ns() { # PINS N
    "$plain" --pins "$1" --readers "$2" --publishes "$K2" --size "$SIZE" | sed 's/.*wall_ns_per_publish=//'
}

per_open() { # PINS
    local a b
    a=$(instructions open_one --pins "$1" --open "$OPEN1")
    b=$(instructions open_one --pins "$1" --open "$OPEN2")
    echo $(((b - a) / (OPEN2 - OPEN1)))
}

wall_open() { # PINS
    "$plain" --pins "$1" --open "$OPEN2" | sed 's/.*wall_ns_per_open=//'
}

echo "scale curves: size=$SIZE B, K=$K1/$K2 publishes, QUICK=$QUICK, $(date -u '+%F %T') UTC"
echo "load:$(uptime | sed 's/.*load average//')"
echo
echo "| readers | table: Ir/publish | locks: Ir/publish | table: ns/publish (noisy) | locks: ns/publish (noisy) |"
echo "| ---: | ---: | ---: | ---: | ---: |"
first_table='' first_locks='' last_table='' last_locks='' last_n=''
for n in $READERS; do
    t=$(per_publish table "$n")
    l=$(per_publish locks "$n")
    echo "| $n | $t | $l | $(wall_ns table "$n") | $(wall_ns locks "$n") |"
    first_table=${first_table:-$t} first_locks=${first_locks:-$l}
    last_table=$t last_locks=$l last_n=$n
done
echo
awk -v n="$last_n" -v t1="$first_table" -v tn="$last_table" -v l1="$first_locks" -v ln="$last_locks" \
    'BEGIN { printf "ratio N=%s / N=1: table %.2fx, locks %.2fx\n", n, tn / t1, ln / l1 }'
echo "Reader::open, Ir per open (N=$OPEN1..$OPEN2): table $(per_open table), locks $(per_open locks)"
echo "Reader::open, ns per open over N=$OPEN2 (noisy): table $(wall_open table), locks $(wall_open locks)"
