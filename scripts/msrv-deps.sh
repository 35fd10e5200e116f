#!/usr/bin/env bash
# The `rust-version` of every crate in the library's normal dependency tree
# (all features, this host's target), read from each crate's Cargo.toml in
# cargo's registry sources; highest first, "-" for none declared. RELEASING.md ("MSRV") has the
# method and the last result. Needs the crates fetched (`cargo fetch`).
set -euo pipefail
cd "$(dirname "$0")/.."

src="${CARGO_HOME:-$HOME/.cargo}/registry/src"
cargo tree -p shmstate -e normal --all-features --prefix none \
    | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u \
    | while read -r name version rest; do
        v="${version#v}"
        if [ -n "$rest" ]; then          # a path crate of this workspace
            echo "$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -1) $name $v (workspace)"
            continue
        fi
        manifest=$(ls -d "$src"/*/"$name-$v"/Cargo.toml 2>/dev/null | head -1)
        if [ -z "$manifest" ]; then
            echo "? $name $v (no source under $src: run cargo fetch)"
            continue
        fi
        # Normalised manifests put it in [package] as rust-version = "X".
        rv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$manifest" | head -1)
        echo "${rv:--} $name $v"
    done > "${TMPDIR:-/tmp}/msrv-deps.$$"
# Highest first; crates that declare none ("-") last.
grep -v '^- ' "${TMPDIR:-/tmp}/msrv-deps.$$" | sort -Vr
grep '^- ' "${TMPDIR:-/tmp}/msrv-deps.$$" | sort -k2 || true
rm -f "${TMPDIR:-/tmp}/msrv-deps.$$"
