# Headless Chromium with WebGPU for the wasm32 tests and the web page. SOURCE it (bash):
#   source scripts/browser_env.sh
# It installs what is missing, each step only when missing:
#   - Debian's `chromium` and `chromium-driver`, and `python3-minimal` (the page's static server),
#     with apt-get (through sudo when not root);
#   - the wasm32-unknown-unknown target (rustup);
#   - wasm-bindgen-cli (`wasm-bindgen`, `wasm-bindgen-test-runner`) at exactly the version of the
#     `wasm-bindgen` crate in Cargo.lock (cargo install; reinstalled when the version differs);
# then exports:
#   CHROMIUM_BIN      the browser binary (the real one, not Debian's /usr/bin/chromium wrapper)
#   CHROMEDRIVER      the WebDriver server wasm-bindgen-test-runner drives it with
#   EGGROLL_CHROMIUM_ARGS
#                     the browser's flags: headless, and --enable-unsafe-webgpu, without which
#                     Chromium gives no WebGPU adapter (its SwiftShader one on a machine without a GPU)
#   WASM_BINDGEN_TEST_WEBDRIVER_JSON
#                     the capabilities file (binary and flags in goog:chromeOptions), written
#                     under target/browser/
#   CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER
#                     wasm-bindgen-test-runner: `cargo test --target wasm32-unknown-unknown` runs
#                     the tests in the browser
#   WASM_BINDGEN_TEST_TIMEOUT
#                     the runner's limit for one test binary in seconds (its default, 20, is
#                     shorter than the GPU tests take on a software adapter); kept when set
# and puts cargo's bin folder on PATH. It returns non-zero (and says why) when a step fails.

_eggroll_browser_env() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"

  local need=()
  [ -x /usr/lib/chromium/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  command -v python3 >/dev/null 2>&1 || need+=(python3-minimal)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    $sudo apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" || return 1
  fi

  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "== adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown || return 1
  fi

  # The version of the `wasm-bindgen` crate the workspace builds with: the CLI must match it.
  local want
  want="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")"
  if [ -z "$want" ]; then
    echo "browser_env.sh: no wasm-bindgen crate in $root/Cargo.lock" >&2
    return 1
  fi
  local have=""
  if command -v wasm-bindgen-test-runner >/dev/null 2>&1; then
    have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')"
  fi
  if [ "$have" != "$want" ]; then
    echo "== installing wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want" --force || return 1
  fi

  export CHROMIUM_BIN=/usr/lib/chromium/chromium
  export CHROMEDRIVER=/usr/bin/chromedriver
  export EGGROLL_CHROMIUM_ARGS="--headless=new --no-sandbox --disable-dev-shm-usage --enable-unsafe-webgpu"

  local dir="${CARGO_TARGET_DIR:-$root/target}/browser"
  mkdir -p "$dir" || return 1
  export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$dir/webdriver.json"
  python3 - "$CHROMIUM_BIN" "$EGGROLL_CHROMIUM_ARGS" >"$WASM_BINDGEN_TEST_WEBDRIVER_JSON" <<'EOF' || return 1
import json, sys
binary, args = sys.argv[1], sys.argv[2].split()
print(json.dumps({"goog:chromeOptions": {"binary": binary, "args": args}}, indent=2))
EOF

  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
  export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-1800}"
}

# Called as an `if` condition so that a caller's `set -e` does not end the shell before the
# message; every step above returns on failure itself.
if ! _eggroll_browser_env; then
  unset -f _eggroll_browser_env
  echo "browser_env.sh: the browser test environment is incomplete (above)" >&2
  return 1
fi
unset -f _eggroll_browser_env
