#!/usr/bin/env bash
# Runs every cargo-fuzz target for a given time (seconds, default 120), with the
# committed seeds (fuzz/seeds/<target>) and a local working corpus
# (fuzz/corpus/<target>, not committed). A crash stops that target and leaves its
# input in fuzz/artifacts/<target>/; minimize it and commit it as a regression:
#   cargo +nightly fuzz tmin <target> fuzz/artifacts/<target>/crash-...
#   cp <minimized> fuzz/regressions/<target>/   # replayed by `cargo test --test bad_bytes`
# Usage: scripts/fuzz.sh [seconds] [targets...]   (JOBS=2 runs two targets at once)
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-120}"; shift || true
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(header payload schema ops fingerprint dynamic dynamic_differential encode map)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
cargo +nightly fuzz build >/dev/null || exit 1
jobs_max="${JOBS:-1}"
status=0
run() {
  local t="$1"; mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  local start=$SECONDS
  # Wall time is the budget; CPU time (user+sys) is reported too, since on a busy
  # 2-core machine the two differ.
  local TIMEFORMAT='%0U %0S'
  if { time cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      >"artifacts/$t.log" 2>&1; } 2>"artifacts/$t.cpu"; then
    local cpu; cpu=$(awk '{print $1 + $2}' "artifacts/$t.cpu")
    echo "$t: clean for $((SECONDS - start)) s wall, ${cpu} s CPU, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t.log" | grep -o '[0-9]*$') execs, corpus $(ls "corpus/$t" | wc -l)"
  else
    echo "$t: FAILED after $((SECONDS - start)) s — see fuzz/artifacts/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}
for t in "${targets[@]}"; do
  run "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || status=1; done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
exit $status
