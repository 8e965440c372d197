#!/usr/bin/env bash
# The checks a real GPU is for, as one run: the adapter, the `--full` benchmark sweep on it, and the
# GPU-path tests on it. Usage:
#   bash scripts/gpu_bench.sh [OUT_DIR]          # default OUT_DIR: bench-out
# Writes OUT_DIR/info.txt, full.json, full.md, full.png and tests.log. Set EGGROLL_BIN to a
# prebuilt `eggroll` binary to skip the release build of the benchmark (the tests still build).
# WGPU_BACKEND / WGPU_ADAPTER_NAME pick the adapter as everywhere else (default: the first
# hardware one); EGGROLL_TEST_WGPU_BACKEND (vulkan by default) the one the tests run on.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-out}"
mkdir -p "$out"

bin="${EGGROLL_BIN:-}"
if [ -z "$bin" ]; then
  echo "== building eggroll (release)"
  cargo build --release -p eggroll
  bin=target/release/eggroll
fi

echo "== adapters"
"$bin" info | tee "$out/info.txt"

echo "== eggroll bench --full --backend wgpu (f32 and f16)"
"$bin" bench --full --backend wgpu --json "$out/full.json" --markdown "$out/full.md" --plot "$out/full.png"

echo "== GPU-path tests on ${EGGROLL_TEST_WGPU_BACKEND:-vulkan}"
cargo test --release -p eggroll-backend --test gpu_vs_cpu --test f16 --test philox_kat 2>&1 | tee "$out/tests.log"
cargo test --release -p eggroll-bench --test wgpu 2>&1 | tee -a "$out/tests.log"
