#!/usr/bin/env bash
# EGGROLL against TRL's GRPOTrainer on llm/models/arith-llama, on this CPU, for the same training
# time each (scripts/compare_grpo.py says how):
#   bash scripts/compare_grpo.sh [SECONDS] [COMPARE_OPTIONS...] [-- EGGROLL_FINETUNE_ARGS...]
# SECONDS: training seconds for each method (default 600). COMPARE_OPTIONS: compare_grpo.py's own
# (--out DIR, --lr, --evals, --methods ...; `--help` lists them). The arguments after `--` go to
# `eggroll finetune` (e.g. `-- --lr 0.3 --sigma 0.01`). Writes comparison.md, accuracy.png and
# comparison.json under target/grpo-compare/ (or --out).
# Creates the Python virtual environment target/grpo-venv when missing and installs the pinned
# packages from PyPI into it when missing or at another version (torch's Linux wheel pulls the
# CUDA libraries: about 3 minutes and 6 GB the first time). Builds target/release/eggroll only
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  seconds="$1"
  shift
fi

source scripts/pinned_venv.sh
# Everything compare_grpo.py imports, and accelerate, which runs TRL's trainer.
pinned_venv target/grpo-venv torch==2.15.0 transformers==5.25.0 tokenizers==0.23.3 trl==1.16.0 \
  safetensors==0.8.0 accelerate==1.16.0 datasets==5.2.0 numpy==2.4.6 matplotlib==3.11.2
[ -x target/release/eggroll ] || cargo build --release -p eggroll-cli
exec target/grpo-venv/bin/python scripts/compare_grpo.py --seconds "$seconds" "$@"
