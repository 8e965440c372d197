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

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "== installing python3-venv" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >&2
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
if ! "$venv/bin/python" -c "import gymnasium, numpy, sys; sys.exit(gymnasium.__version__ != '$GYMNASIUM' or numpy.__version__ != '$NUMPY')" >/dev/null 2>&1; then
  echo "== installing gymnasium $GYMNASIUM and numpy $NUMPY into $venv" >&2
  "$venv/bin/pip" install -q "gymnasium==$GYMNASIUM" "numpy==$NUMPY" >&2
fi
"$venv/bin/python" scripts/gym_oracle.py "$out" >&2
echo "$PWD/$out"
