#!/usr/bin/env bash
# Builds the Python package (python/, import name `eggroll_wgpu`) into the virtual environment
# target/py-venv and runs its tests (python/tests, which also run python/examples). Creates the
# environment when missing (installing Debian's python3-venv first when the venv module is
# missing) with the pinned maturin, numpy, pytest and gymnasium (for the CartPole example) from
# PyPI; builds the extension in release mode with `maturin develop`, which installs it there.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN=1.16.0
NUMPY=2.4.6
PYTEST=9.0.3
GYMNASIUM=1.4.0 # as in scripts/gym_cases.sh
venv=target/py-venv

source scripts/pinned_venv.sh
pinned_venv "$venv" "maturin==$MATURIN" "numpy==$NUMPY" "pytest==$PYTEST" "gymnasium==$GYMNASIUM"

echo "== building the Python package into $venv" >&2
# The extension's own Cargo workspace builds under target/python, kept between runs like the venv.
CARGO_TARGET_DIR="$PWD/target/python" VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" \
  "$venv/bin/maturin" develop --release -m python/Cargo.toml >&2

# The tests of eg.train and eg.llm.finetune compare with the command they run.
echo "== building the eggroll command the Python tests compare with" >&2
cargo build -p eggroll-cli --bin eggroll >&2
export EGGROLL_BIN="$PWD/target/debug/eggroll"

echo "== pytest python/tests" >&2
# No skips: a test that cannot run fails.
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest python/tests -q -p no:cacheprovider -rs "$@"
