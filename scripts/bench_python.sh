#!/usr/bin/env bash
# Benchmarks the Python package on the regression task, on the CPU, and writes one Markdown table
# (target/bench-python/table.md) and one JSON file (target/bench-python/results.json, every run's
# object under "runs", the machine, commit and versions under "meta"); each run's own JSON is in
# target/bench-python/runs/.
#
#   1. The ask/tell loop in Python (python/benchmarks/regression_loop.py: population_forward,
#      NumPy fitness, tell) against the same loop in Rust (optimizer/examples/regression_loop.rs),
#      EGGROLL at each population of POPULATIONS, OpenES at N = 4096.
#   2. evosax's OpenES (python/benchmarks/evosax_regression.py, JAX on the CPU, the whole epoch
#      jitted) at N = 4096 beside our EGGROLL and our OpenES at N = 4096 (the Python loop's runs).
#   3. For reference, the Rust loop on the task's own model (pqn between layers) when the runs use
#      another activation.
#   4. The built-in task runner, `eg.train(task="regression")` against
#      `eggroll train --task regression --json`.
#
# Every run trains the same MLP 1 -> 64 -> 64 -> 64 -> 1 on the same data (python/benchmarks/
# regression_task.py: points from a formula both languages compute alike, not the task's PCG64
# draws) with the regression task's default configuration, for EPOCHS epochs (the schedules'
# horizon), seed SEED. The activation between layers is ACTIVATION; `auto` (the default) takes
# the task's pqn when the package's Mlp accepts it, else tanh (with the task's sigma = lr = 1,
# relu and silu without the layer norm diverge).
#
# The environment target/bench-venv holds the pinned packages below. The eggroll_wgpu package is
# built into it from the current sources by `maturin develop --release` (its Cargo build under
# target/python, shared with scripts/test_python.sh), so that the figures belong to this checkout;
# PY_PACKAGE=installed uses the eggroll_wgpu already in the environment instead, and
# PY_PACKAGE=path/to/eggroll_wgpu-*.whl installs that wheel.
#
# Settings (environment): EPOCHS (1000, the task's default), SEED (0), POPULATIONS (the EGGROLL
# loop comparison's populations, "4096 256"; 4096 is the task's default), ACTIVATION (auto),
# PY_PACKAGE (build). At the default epochs evosax's runs take most of the time (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN=1.16.0
NUMPY=2.4.6
JAX=0.10.2
FLAX=0.12.8
OPTAX=0.2.8
EVOSAX=0.3.2
EPOCHS=${EPOCHS:-1000}
SEED=${SEED:-0}
POPULATIONS=${POPULATIONS:-4096 256}
ACTIVATION=${ACTIVATION:-auto}
PY_PACKAGE=${PY_PACKAGE:-build}
N=4096
venv=target/bench-venv
out=target/bench-python
py="$PWD/$venv/bin/python"
export PYTHONDONTWRITEBYTECODE=1 JAX_PLATFORMS=cpu

source scripts/pinned_venv.sh
pinned_venv "$venv" "maturin==$MATURIN" "numpy==$NUMPY" "jax==$JAX" "jaxlib==$JAX" "flax==$FLAX" "optax==$OPTAX" "evosax==$EVOSAX"

case "$PY_PACKAGE" in
  build)
    echo "== building the Python package into $venv" >&2
    CARGO_TARGET_DIR="$PWD/target/python" VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" \
      "$venv/bin/maturin" develop --release -m python/Cargo.toml >&2
    ;;
  installed) ;;
  *.whl)
    echo "== installing $PY_PACKAGE into $venv" >&2
    "$venv/bin/pip" install -q --force-reinstall --no-deps "$PY_PACKAGE" >&2
    ;;
  *)
    echo "PY_PACKAGE must be build, installed or a .whl file, got $PY_PACKAGE" >&2
    exit 2
    ;;
esac
"$py" -c 'import eggroll_wgpu' || { echo "no eggroll_wgpu in $venv" >&2; exit 1; }

echo "== building the Rust loop (optimizer/examples/regression_loop.rs)" >&2
cargo build --release --example regression_loop -p eggroll >&2
rust_loop=target/release/examples/regression_loop

if [ "$ACTIVATION" = auto ]; then
  if "$py" -c 'import eggroll_wgpu as eg; eg.Mlp([1, 1], activation="pqn")' >/dev/null 2>&1; then
    ACTIVATION=pqn
  else
    ACTIVATION=tanh
    echo "== the package's Mlp has no pqn: every run uses tanh between layers" >&2
  fi
fi

rm -rf "$out/runs"
mkdir -p "$out/runs"
# run NAME COMMAND...: runs a benchmark, its JSON object into $out/runs/NAME.json.
run() {
  local name="$1"
  shift
  echo "== $name: $*" >&2
  "$@" >"$out/runs/$name.json"
  cat "$out/runs/$name.json" >&2
}
common=(--epochs "$EPOCHS" --seed "$SEED" --activation "$ACTIVATION")

# 1. The loop in Rust and in Python.
# shellcheck disable=SC2086 # the populations are words
for n in $POPULATIONS; do
  run "rust_eggroll_$n" "$rust_loop" --method eggroll --population "$n" "${common[@]}"
  run "python_eggroll_$n" "$py" python/benchmarks/regression_loop.py --method eggroll --population "$n" --backend cpu "${common[@]}"
done
run "rust_openes_$N" "$rust_loop" --method openes --population "$N" "${common[@]}"
run "python_openes_$N" "$py" python/benchmarks/regression_loop.py --method openes --population "$N" --backend cpu "${common[@]}"
case " $POPULATIONS " in
  *" $N "*) ;;
  *) run "python_eggroll_$N" "$py" python/benchmarks/regression_loop.py --method eggroll --population "$N" --backend cpu "${common[@]}" ;;
esac

# 2. evosax's OpenES.
run "evosax_openes_$N" "$py" python/benchmarks/evosax_regression.py --population "$N" "${common[@]}"

# 3. The task's own model, for reference.
if [ "$ACTIVATION" != pqn ]; then
  run "rust_eggroll_${N}_pqn" "$rust_loop" --method eggroll --population "$N" --epochs "$EPOCHS" --seed "$SEED" --activation pqn
fi

# 4. The built-in task runner: `eg.train(task="regression")` against the CLI, at EPOCHS and SEED
# on the CPU backend (the task's own data, model and configuration).
cargo build --release -p eggroll-cli --bin eggroll >&2
run train_cli target/release/eggroll train --task regression --backend cpu --epochs "$EPOCHS" --seed "$SEED" --json -q
run train_python "$py" -c 'import json, sys, eggroll_wgpu as eg
print(json.dumps(eg.train("regression", backend="cpu", epochs=int(sys.argv[1]), seed=int(sys.argv[2]), quiet=True)))' "$EPOCHS" "$SEED"

commit=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] || commit="$commit (with uncommitted changes)"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
memory=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
"$py" python/benchmarks/bench_table.py "$out/runs" "$out" \
  --meta "command=scripts/bench_python.sh (EPOCHS=$EPOCHS SEED=$SEED POPULATIONS=\"$POPULATIONS\")" \
  --meta "commit=$commit" \
  --meta "machine=$cpu, $(nproc) cores, $memory" \
  --meta "date=$(date -u +%F)" \
  --meta "epochs=$EPOCHS" \
  --meta "seed=$SEED" \
  --meta "population=$N" \
  --meta "activation=$ACTIVATION" \
  --meta "model=MLP 1 -> 64 -> 64 -> 64 -> 1, $ACTIVATION between layers" \
  --meta "versions=$("$py" --version 2>&1), $(rustc --version), eggroll_wgpu $("$py" -c 'import eggroll_wgpu as eg; print(eg.__version__)'), numpy $NUMPY, jax $JAX, jaxlib $JAX, flax $FLAX, optax $OPTAX, evosax $EVOSAX"
echo "== wrote $out/table.md and $out/results.json" >&2
