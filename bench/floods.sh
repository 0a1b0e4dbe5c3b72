#!/usr/bin/env bash
# Anonymous floods (unknown hooks, oversize uploads, CSRF-less posts, oversize ingest) against a
# release `monti serve`: the server's RSS above idle and another tenant's API p99 against its
# baseline, per flood. Goals: at most 64 MB above idle, p99 at most 2x. See bench/floods.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/monti-target}"
cargo build -q --release -p monti
cargo build -q --release --target wasm32-wasip2 -p monti-test-hostile-webhook
exec python3 bench/floods.py "$CARGO_TARGET_DIR/release/monti" \
  "$CARGO_TARGET_DIR/wasm32-wasip2/release/monti_test_hostile_webhook.wasm" "$@"
