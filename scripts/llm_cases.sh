#!/usr/bin/env bash
# Makes the cases of the Hugging Face transformers oracle that the eggroll-llm tests (llm/) compare
# against, tiny checkpoints with what transformers computes from them (scripts/llm_oracle.py says
# what), and prints the path of their folder:
#   export EGGROLL_LLM_CASES="$(bash scripts/llm_cases.sh)"
# Creates a Python virtual environment under target/llm-venv when missing (installing Debian's
# python3-venv first when the venv module is missing), installs the pinned torch, transformers,
# tokenizers, safetensors and numpy from PyPI into it when missing or at another version (torch's
# Linux wheel pulls the CUDA libraries: about 2-3 minutes and 5.6 GB the first time), and runs
# scripts/llm_oracle.py make there, unless target/llm-cases/stamp shows that the cases were made
# by the same oracle, versions and tokenizer corpus. Everything but the path goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.15.0
TRANSFORMERS=5.25.0
TOKENIZERS=0.23.3
SAFETENSORS=0.8.0
NUMPY=2.4.6
venv=target/llm-venv
out=target/llm-cases

source scripts/pinned_venv.sh
pins="torch==$TORCH transformers==$TRANSFORMERS tokenizers==$TOKENIZERS safetensors==$SAFETENSORS numpy==$NUMPY"
# shellcheck disable=SC2086 # the pins are words
pinned_venv "$venv" $pins
# The oracle's output depends on the script, the versions, and whether `bible` (the tokenizers'
# corpus) is installed.
stamp="$( { cat scripts/llm_oracle.py; echo "$pins"; command -v bible || true; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$out/stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$out"
  "$venv/bin/python" scripts/llm_oracle.py make "$out" >&2
  echo "$stamp" >"$out/stamp"
fi
echo "$PWD/$out"
