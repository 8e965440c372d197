#!/usr/bin/env bash
# The checks a real GPU is for, as one run. Usage:
#   bash scripts/gpu_bench.sh [OUT_DIR]          # default OUT_DIR: bench-out
# Stages, most important first, so that a run cut short still leaves the headline figures:
#   info.txt                the adapters `eggroll info` sees
#   headline-r{1,4}.{json,md}  the paper's point: 8192x8192, N = 1024, one row per member, rank 1
#                           and rank 4, f32, f16 and int8
#   tests.log               the GPU-path tests (every kernel against the CPU reference, f16 and bf16, the
#                           Philox known answers, the runner on wgpu, the trainer on every backend
#                           and across them)
#   train.json              the default task trained on wgpu (`eggroll train --backend wgpu --json`)
#   small-calls.jsonl       small calls: pendulum and cartpole (`--epochs 6 --seed 5`) on wgpu with
#                           the noise cache on and off, and small-calls-{32,128,256}-{1,100}.json:
#                           `eggroll bench --calls 1` and `--calls 100` at m = n = 32, 128 and
#                           256, one row, N = 256, rank 4
#   charlm-scaling.md       the cost of a `charlm` epoch for populations 256..16384
#                           (scripts/charlm_scaling.sh on wgpu), then charlm.json: the default
#                           `charlm` run on wgpu with its bits per byte beside the baselines,
#                           and egg.json: the default integer `egg` run on wgpu
#   egg-paper.jsonl         `egg` at the paper's size (6 blocks of width 256, N = 16384) on wgpu
#                           for as long as its stage allows (the metrics of every epoch it made)
#   llm-qwen3-*.{json,md}   a population's generation at Qwen3-0.6B's and Qwen3-4B's shapes
#                           (`bench --llm`, random weights, the matrices in the configs' bf16;
#                           the 0.6B point also with f32 matrices, and sampled, on the device),
#                           in the train stage
#   finetune-qwen3-0.6b.{json,jsonl}  two epochs of `eggroll finetune` at Qwen3-0.6B's shapes
#                           (--random-weights, N = 512, one prompt, 64 new tokens): the time of
#                           an epoch
#   full.{json,md,png}      the `--full` sweep (its JSON and table are rewritten after every point)
# A stage that fails is reported and the next one runs; the script exits non-zero if any failed.
#
# Environment:
#   EGGROLL_BIN             a prebuilt `eggroll` binary (default: cargo build --release)
#   EGGROLL_TEST_BINS       a folder of prebuilt test executables (scripts/device_kit.sh makes one);
#                           default: cargo test --release
#   EGGROLL_STAGE_TIMEOUTS  seconds allowed to the stages headline, tests, train, charlm, egg-paper,
#                           full and finetune, as seven comma-separated numbers (0 = no limit;
#                           default: no limits; egg-paper trains until its limit by design, and 100000 epochs
#                           without one)
#   EGGROLL_HEADLINE        the headline point's flags (default: --m 8192 --n 8192 --population 1024
#                           --rows 1) and EGGROLL_SWEEP the sweep's (default: --full); smaller ones
#                           rehearse the script on a slow adapter, e.g. "--m 128 --n 128
#                           --population 64" and --quick
#   WGPU_BACKEND / WGPU_ADAPTER_NAME pick the benchmark's adapter as everywhere else (default: the
#   first hardware one); EGGROLL_TEST_WGPU_BACKEND (vulkan by default) the one the tests run on.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/bench-out}"
mkdir -p "$out" && out="$(cd "$out" && pwd)" || exit 1
# Paths given relative to the caller's folder, before leaving it.
[ -n "${EGGROLL_BIN:-}" ] && EGGROLL_BIN="$(realpath "$EGGROLL_BIN")"
[ -n "${EGGROLL_TEST_BINS:-}" ] && export EGGROLL_TEST_BINS="$(realpath "$EGGROLL_TEST_BINS")"
cd "$repo"

IFS=, read -r t_headline t_tests t_train t_charlm t_paper t_full t_finetune <<<"${EGGROLL_STAGE_TIMEOUTS:-0,0,0,0,0,0,0}"
failed=()

# stage NAME SECONDS COMMAND...: runs COMMAND, cut off after SECONDS (0: no limit).
stage() {
  local name="$1" limit="$2"
  shift 2
  echo "== $name ($(date -u +%H:%M:%S))"
  local rc=0
  if [ "${limit:-0}" -gt 0 ]; then
    timeout --kill-after=10 "$limit" "$@" || rc=$?
  else
    "$@" || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "== $name: cut off after $limit s" || echo "== $name: failed (exit $rc)"
    failed+=("$name")
  fi
}

bin="${EGGROLL_BIN:-}"
if [ -z "$bin" ]; then
  echo "== building eggroll (release)"
  cargo build --release --bin eggroll || exit 1
  bin=target/release/eggroll
fi

"$bin" info | tee "$out/info.txt" || failed+=(info)

# The stages below run under `timeout`, so they are commands of their own.
export bin out
export headline_flags="${EGGROLL_HEADLINE:---m 8192 --n 8192 --population 1024 --rows 1}"
sweep_flags="${EGGROLL_SWEEP:---full}"

headline() {
  local rank
  for rank in 1 4; do
    # shellcheck disable=SC2086 # the flags are words
    "$bin" bench --backend wgpu $headline_flags --rank "$rank" --dtype f32,f16,int8 \
      --json "$out/headline-r$rank.json" --markdown "$out/headline-r$rank.md" || return
  done
}

tests() {
  local rc=0 exe
  if [ -n "${EGGROLL_TEST_BINS:-}" ]; then
    for exe in "$EGGROLL_TEST_BINS"/*; do
      echo "-- $(basename "$exe")"
      "$exe" || rc=1
    done
  else
    cargo test --release -p eggroll-backend --test contract --test gpu_vs_cpu --test f16 --test philox_kat --test autotune_cache --test int8 --test noise_cache --test transformer \
      --test selected -p eggroll-bench --test wgpu -p eggroll-tests --test every_backend --test across_backends --test steady_state \
      -p eggroll-llm --test storage || rc=1
  fi
  return "$rc"
}

train() {
  "$bin" train --backend wgpu --json >"$out/train.json" || return
  : >"$out/small-calls.jsonl"
  for task in pendulum cartpole; do
    for cache in "" "--noise-cache-mb 0"; do
      # shellcheck disable=SC2086 # the flags are words
      "$bin" train --task "$task" --epochs 6 --seed 5 --backend wgpu --json --quiet $cache >>"$out/small-calls.jsonl" || return
    done
  done
  local side calls
  for side in 32 128 256; do
    for calls in 1 100; do
      "$bin" bench --backend wgpu --m "$side" --n "$side" --population 256 --rank 4 --rows 1 --calls "$calls" \
        --json "$out/small-calls-$side-$calls.json" --markdown "$out/small-calls-$side-$calls.md" || return
    done
  done
  # A population's generation at pretrained models' shapes (random weights): EGGROLL against the
  # unperturbed model.
  "$bin" bench --llm "$repo/bench/llm/qwen3-0.6b.json" --backend wgpu --population 64 --json "$out/llm-qwen3-0.6b.json" \
    >"$out/llm-qwen3-0.6b.md" || return
  "$bin" bench --llm "$repo/bench/llm/qwen3-4b.json" --backend wgpu --population 16 --new-tokens 16 --json "$out/llm-qwen3-4b.json" \
    >"$out/llm-qwen3-4b.md" || return
  # The 0.6B point with its matrices in f32 (twice the bytes read per step) against the bf16 run.
  "$bin" bench --llm "$repo/bench/llm/qwen3-0.6b.json" --backend wgpu --population 64 --weight-dtype f32 \
    --json "$out/llm-qwen3-0.6b-f32.json" >"$out/llm-qwen3-0.6b-f32.md" || return
  # The same 0.6B point sampled (temperature 1, top-p 0.9) on the device: against the greedy run,
  # what drawing from the nucleus costs where the logits are.
  "$bin" bench --llm "$repo/bench/llm/qwen3-0.6b.json" --backend wgpu --population 64 --temperature 1 --top-p 0.9 \
    --json "$out/llm-qwen3-0.6b-sampled.json" >"$out/llm-qwen3-0.6b-sampled.md"
}

# Fine-tuning at Qwen3-0.6B's shapes: its config, weights drawn from the seed, the shipped
# arithmetic model's tokenizer (the answers are noise; the epoch's time is the figure).
finetune() {
  local model
  model="$(mktemp -d)" || return
  cp "$repo/bench/llm/qwen3-0.6b.json" "$model/config.json" || return
  cp "$repo/llm/models/arith-llama/tokenizer.json" "$repo/llm/models/arith-llama/tokenizer_config.json" "$model/" || return
  "$bin" finetune --model "$model" --random-weights --backend wgpu --population 512 --prompts-per-epoch 1 --max-tokens 64 \
    --epochs 2 --eval-every 0 --metrics "$out/finetune-qwen3-0.6b.jsonl" --json >"$out/finetune-qwen3-0.6b.json"
}

charlm() {
  BACKEND=wgpu EPOCHS=3 EGGROLL_BIN="$bin" bash "$repo/scripts/charlm_scaling.sh" "$out/charlm-scaling.md" || return
  "$bin" train --task charlm --backend wgpu --json --quiet --metrics "$out/charlm.jsonl" >"$out/charlm.json" || return
  "$bin" train --task egg --backend wgpu --json --quiet --metrics "$out/egg.jsonl" >"$out/egg.json"
}
# Trains until its time is up: the metrics file holds every epoch made; being cut off is success.
egg_paper() {
  local rc=0
  timeout --kill-after=10 "$1" "$bin" train --task egg --backend wgpu --width 256 --depth 6 --population 16384 \
    --epochs 100000 --eval-every 10 --quiet --metrics "$out/egg-paper.jsonl" || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]
}
export repo
export -f headline tests train finetune charlm egg_paper

stage "headline: $headline_flags, rank 1 and 4, f32, f16 and int8" "$t_headline" bash -c headline
stage "GPU-path tests on ${EGGROLL_TEST_WGPU_BACKEND:-vulkan}" "$t_tests" \
  bash -o pipefail -c 'tests 2>&1 | tee "$out/tests.log"'
stage "train the default task and the small-call points on wgpu" "$t_train" bash -c train
stage "finetune at Qwen3-0.6B's shapes on wgpu (N = 512, 64 new tokens)" "${t_finetune:-0}" bash -c finetune
stage "charlm: epoch cost against the population, and the default run, on wgpu" "$t_charlm" bash -c charlm
stage "egg at the paper's size on wgpu" 0 bash -c "egg_paper ${t_paper:-0}"
# Under a stage limit the sweep starts no new point after three quarters of it (--time-limit), so
# that it ends on its own and writes its table, JSON and plot with the points left marked skipped.
[ "${t_full:-0}" -gt 0 ] && sweep_flags+=" --time-limit $((t_full * 3 / 4))"
# shellcheck disable=SC2086 # the flags are words
stage "eggroll bench $sweep_flags --backend wgpu" "$t_full" \
  "$bin" bench $sweep_flags --backend wgpu --json "$out/full.json" --markdown "$out/full.md" --plot "$out/full.png"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "== failed or cut off: ${failed[*]}"
  exit 1
fi
echo "== all stages passed; results in $out"
