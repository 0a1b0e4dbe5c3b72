#!/usr/bin/env bash
# The plugin host side by side with the same logic compiled natively and with Extism, in one run:
# Monti's plugin_invoke benchmark, then bench/extism on the same workload, then the ratio per
# event. The first run builds Extism (a second wasmtime) in its own target dir: several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/monti-target}"
monti=$(cargo bench -q -p monti-plugin-test --bench plugin_invoke 2>/dev/null | tee /dev/stderr)
extism=$(bench/extism/run.sh 2>/dev/null | tee /dev/stderr)
warm=$(sed -n 's/.*per event: warm \([0-9]*\) ns.*/\1/p' <<<"$monti")
other=$(sed -n 's/.*per event: \([0-9]*\) ns.*/\1/p' <<<"$extism")
echo "Monti warm instance vs Extism kept instance, per event: ${warm} ns vs ${other} ns = $(awk -v a="$other" -v b="$warm" 'BEGIN { printf "%.1f", a / b }')x   target ≥ 5x"
