#!/usr/bin/env bash
# Builds libipcring and installs it under PREFIX (default /usr/local): lib/libipcring.so,
# lib/libipcring.a, include/ipcring_api.h and lib/pkgconfig/ipcring.pc. Then:
#   cc app.c $(pkg-config --cflags --libs ipcring)        # shared (the linker prefers the .so)
#   cc app.c $(pkg-config --cflags ipcring) -l:libipcring.a $(pkg-config --libs-only-l --static ipcring | sed 's/-lipcring//')
#                                                         # static, with the .so installed beside it
set -euo pipefail
prefix="$(realpath -m "${1:-/usr/local}")"
here="$(cd "$(dirname "$0")" && pwd)"
target="$(cd "$here/.." && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
(cd "$here/.." && cargo build --release -p ipcring-c)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0644 "$target/release/libipcring.a" "$prefix/lib/"
install -m 0755 "$target/release/libipcring.so" "$prefix/lib/"
install -m 0644 "$here/include/ipcring_api.h" "$prefix/include/"
python3 - "$here/ipcring.pc.in" "$prefix" "$version" > "$prefix/lib/pkgconfig/ipcring.pc" <<'PY'
import sys
template, prefix, version = sys.argv[1:]
sys.stdout.write(open(template).read().replace("@PREFIX@", prefix).replace("@VERSION@", version))
PY
echo "installed libipcring $version under $prefix"
