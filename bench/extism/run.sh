#!/usr/bin/env bash
# Extism on Monti's plugin benchmark workload. Builds in its own target dir (a second wasmtime:
# the first build takes several minutes), then prints the numbers.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${EXTISM_TARGET_DIR:-$HOME/.cache/monti-extism-target}"
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --release -p extism-passthrough --target wasm32-unknown-unknown
cargo run --release -p extism-bench -- "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/extism_passthrough.wasm"
