#!/usr/bin/env bash
# The wasm32 tests in headless Chromium on its WebGPU adapter (SwiftShader on a machine without a
# GPU), with their own set-up on a fresh Debian machine (scripts/browser_env.sh installs Chromium,
# chromedriver, the wasm32 target and the matching wasm-bindgen-test-runner when missing):
#   - the backend's kernel contract (backend/tests/contract.rs): every kernel on the browser's
#     WebGPU adapter and on the CPU backend compiled to wasm32, against the f64 definitions;
#   - the integer kernels (backend/tests/int8.rs), bit for bit against docs/int8.md, on both
#     paths of the packed int8 helpers;
#   - the noise cache (backend/tests/noise_cache.rs): every kernel the same bits kept or drawn;
#   - the transformer kernels (backend/tests/transformer.rs): RMSNorm, rotary embedding, attention
#     over KV cache slots, the gated product, against their f64 definitions;
#   - a lost device reported by every later call (backend/tests/device_lost.rs);
#   - the trainer's cpu-vs-wgpu trajectory (tests/tests/across_backends.rs);
#   - the web page's runs (web/tests/browser.rs): WebGPU against the wasm CPU backend, and a
#     new run after a lost device.
# The wgpu tests fail (never skip) when the browser or its WebGPU adapter is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/browser_env.sh
export CARGO_TERM_COLOR=never

echo "== the backend's kernel contract in headless Chromium (WebGPU and the wasm32 CPU backend)"
cargo test -p eggroll-backend --target wasm32-unknown-unknown --test contract

echo "== the integer kernels in headless Chromium (WebGPU on both int8 dot-product paths, and the wasm32 CPU backend)"
cargo test -p eggroll-backend --target wasm32-unknown-unknown --test int8

echo "== the noise cache in headless Chromium (the same bits kept or drawn, WebGPU and the wasm32 CPU backend)"
cargo test -p eggroll-backend --target wasm32-unknown-unknown --test noise_cache

echo "== the transformer kernels in headless Chromium (WebGPU and the wasm32 CPU backend)"
cargo test -p eggroll-backend --target wasm32-unknown-unknown --test transformer

echo "== a lost WebGPU device in headless Chromium"
cargo test -p eggroll-backend --target wasm32-unknown-unknown --test device_lost

# The trainer's trajectory tests, cpu against wgpu, in the browser.
echo "== the trainer's cpu-vs-wgpu trajectory in headless Chromium"
cargo test -p eggroll-tests --target wasm32-unknown-unknown --test across_backends

echo "== the web page's runs in headless Chromium"
cargo test -p eggroll-web --target wasm32-unknown-unknown --test browser
