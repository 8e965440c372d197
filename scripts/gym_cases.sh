#!/usr/bin/env bash
# Makes the cases of the Gymnasium oracle test (optimizer/tests/gymnasium.rs) and prints the path
# of their JSON file, for EGGROLL_GYM_CASES:
#   export EGGROLL_GYM_CASES="$(bash scripts/gym_cases.sh)"
# Creates a Python virtual environment under target/gym-venv when missing (installing Debian's
# python3-venv first when the venv module is missing), installs the pinned gymnasium and numpy
# from PyPI into it when missing, and runs scripts/gym_oracle.py there. Everything but the path
# goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

GYMNASIUM=1.4.0
NUMPY=2.4.6
venv=target/gym-venv
out=target/gym-cases.json

source scripts/pinned_venv.sh
pinned_venv "$venv" "gymnasium==$GYMNASIUM" "numpy==$NUMPY"
"$venv/bin/python" scripts/gym_oracle.py "$out" >&2
echo "$PWD/$out"
