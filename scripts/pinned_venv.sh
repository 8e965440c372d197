# Sourced by the oracle scripts (scripts/gym_cases.sh, scripts/llm_cases.sh): pinned_venv VENV PIN...
# creates the Python virtual environment VENV when missing (installing Debian's python3-venv first
# when the venv module is missing) and installs the PINs (`package==version`) from PyPI into it
# when any is missing or at another version. Its messages go to stderr.
pinned_venv() {
  local venv="$1"
  shift
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "== installing python3-venv" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >&2
  fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  if ! "$venv/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(any(m.version(p) != v for p, v in (pin.split('==') for pin in sys.argv[1:])))" "$@" >/dev/null 2>&1; then
    echo "== installing $* into $venv" >&2
    "$venv/bin/pip" install -q "$@" >&2
  fi
}
