#!/usr/bin/env bash
# The whole test suite, with its own set-up on a fresh Debian machine:
#   0. checks that no two source files of a crate import each other (scripts/import_circles.py);
#   1. installs Mesa's software Vulkan/GL drivers when missing (the GPU-path tests need an adapter:
#      lavapipe on Vulkan and llvmpipe on GL, both "llvmpipe" software rasterisers);
#   2. installs what the browser tests need when missing (scripts/browser_env.sh: Debian's
#      chromium and chromium-driver, the wasm32 target, wasm-bindgen-cli at the version of the
#      wasm-bindgen crate) and builds the web page (scripts/web.sh build), which the end-to-end
#      test cli/tests/web_page.rs drives in headless Chromium;
#   3. runs every test of the workspace once, each wgpu test on both adapters, then checks the
#      library for wasm32, runs the doc tests, and runs the wasm32 tests in headless Chromium on
#      its WebGPU adapter (scripts/test_browser.sh: the kernel contract, a lost device, the
#      trainer's cpu-vs-wgpu trajectories, the page's runs).
# It also builds the Python package (python/, scripts/test_python.sh: maturin into target/py-venv)
# and runs its tests and examples under pytest.
# It also installs OpenMPI and libclang when missing, and runs the `mpi` feature's tests
# (cli/tests/mpi.rs: `mpirun -np K eggroll train` on 1, 2 and 4 ranks, `eggroll finetune` on 1 and 2).
# EGGROLL_TEST_WGPU_BACKEND is the comma list of the wgpu adapters the tests run on (see
# eggroll_backend::testing): every wgpu test, `test_device!`'s included, runs on each listed
# adapter in turn, and fails (never skips) when one is missing. EGGROLL_TEST_EXPECT_F16 lists the
# adapters that must have shader-f16; every other one must refuse f16 uploads.
set -euo pipefail
cd "$(dirname "$0")/.."

# First, since it is quick: no two source files of a crate import each other, directly or through
# a cycle (the script lists each circle with the imports that close it, and fails).
echo "== import circles between the source files of each crate"
python3 scripts/import_circles.py .

need_pkgs=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need_pkgs+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || need_pkgs+=(libvulkan1)
dpkg -s libegl1 >/dev/null 2>&1 || need_pkgs+=(libegl1)
dpkg -s libegl-mesa0 >/dev/null 2>&1 || need_pkgs+=(libegl-mesa0)
dpkg -s libgl1-mesa-dri >/dev/null 2>&1 || need_pkgs+=(libgl1-mesa-dri)
# The `mpi` feature: rsmpi builds against OpenMPI (its bindings need libclang); mpirun runs the ranks.
for p in libopenmpi-dev openmpi-bin libclang-dev; do dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p"); done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
# Mesa complains when XDG_RUNTIME_DIR is unset; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
  chmod 700 "$XDG_RUNTIME_DIR"
fi
export CARGO_TERM_COLOR=never

echo "== the browser tools (installed when missing) and the web page"
source scripts/browser_env.sh
bash scripts/web.sh build

# The Gymnasium oracle test (optimizer/tests/gymnasium.rs) replays episodes Gymnasium itself
# wrote: scripts/gym_cases.sh installs the pinned gymnasium and numpy into target/gym-venv when
# missing, writes the cases and prints their path.
echo "== Gymnasium's episodes for the control environments' oracle test"
export EGGROLL_GYM_CASES="$(bash scripts/gym_cases.sh)"

# The transformers oracle tests (llm/tests/oracle.rs) compare with what Hugging Face transformers
# computes on tiny checkpoints it writes: scripts/llm_cases.sh installs the pinned torch and
# transformers into target/llm-venv when missing, writes the checkpoints and prints their path.
echo "== transformers' checkpoints and outputs for the language-model oracle tests"
export EGGROLL_LLM_CASES="$(bash scripts/llm_cases.sh)"

echo "== workspace tests (wgpu tests on Vulkan/lavapipe and GL/llvmpipe; lavapipe has shader-f16, so"
echo "   the f16 kernels must run there; GL has not, so f16 uploads must be refused there)"
EGGROLL_TEST_WGPU_BACKEND=vulkan,gl EGGROLL_TEST_EXPECT_F16=vulkan cargo test --workspace --all-targets

echo "== MPI: mpirun -np 1, 2 and 4 against a run without mpirun (train, and finetune on 1 and 2), resumption, a dead or hung rank, bad input"
cargo test -p eggroll-cli --features mpi --test mpi

echo "== the optimiser library and its embedding example as an app builds them, without the CLI's dependencies"
cargo check -p eggroll --lib --examples
if cargo tree -p eggroll -e normal | grep -E 'clap|indicatif|plotters|eggroll-bench'; then
  echo "the eggroll library depends on crates only the eggroll-cli binary needs (above)" >&2
  exit 1
fi

echo "== wasm32 check of the backend and the optimiser library (wgpu, no native-only features)"
cargo check -p eggroll-backend --no-default-features --features wgpu --target wasm32-unknown-unknown
cargo check -p eggroll --no-default-features --features wgpu --lib --target wasm32-unknown-unknown

echo "== the CPU backend alone (no wgpu feature) builds, and builds no wgpu"
cargo check -p eggroll-backend --no-default-features --features native
cargo check -p eggroll --no-default-features --features native --lib
if cargo tree -p eggroll-backend --no-default-features --features native -e normal | grep -E 'wgpu|naga'; then
  echo "eggroll-backend without its wgpu feature still depends on wgpu (above)" >&2
  exit 1
fi

echo "== doc tests"
cargo test --workspace --doc

echo "== the Python package: built by maturin into target/py-venv, its tests and examples under pytest"
bash scripts/test_python.sh

bash scripts/test_browser.sh
