#!/usr/bin/env bash
# Installs the C library: PREFIX/lib/libshmstate.{so,a}, PREFIX/include/shmstate.{h,hpp}
# and PREFIX/lib/pkgconfig/shmstate.pc (docs/C_API.md, "Build and link").
# Usage: scripts/capi-install.sh PREFIX [LIB_DIR]
#   LIB_DIR: where libshmstate.{so,a} already are; without it, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:?usage: scripts/capi-install.sh PREFIX [LIB_DIR]}"
lib_dir="${2:-}"
if [ -z "$lib_dir" ]; then
    cargo build --release -p shmstate-capi --lib
    lib_dir="${CARGO_TARGET_DIR:-target}/release"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$lib_dir/libshmstate.so" "$lib_dir/libshmstate.a" "$prefix/lib/"
cp capi/include/shmstate.h capi/include/shmstate.hpp "$prefix/include/"
cat > "$prefix/lib/pkgconfig/shmstate.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: shmstate
Description: Read shmstate objects (typed shared state in POSIX shared memory) from C and C++
Version: $version
Libs: -L\${libdir} -lshmstate
Libs.private: -lpthread -ldl -lm -lrt -lutil -lgcc_s
Cflags: -I\${includedir}
PC
echo "installed shmstate $version into $prefix"
