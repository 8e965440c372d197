#!/usr/bin/env bash
# Builds, on a machine with Rust, everything `scripts/gpu_bench.sh` needs to run on a GPU machine
# that has no Rust toolchain and no network (such as the lent H200): the release `eggroll` binary,
# the GPU-path test executables, and the Vulkan/EGL loader packages. Usage:
#   bash scripts/device_kit.sh [KIT_DIR]          # default KIT_DIR: .device-kit (git-ignored)
# Then, on the GPU machine, from a copy of the repository holding KIT_DIR:
#   bash scripts/device_run.sh OUT_DIR [KIT_DIR]
# The kit holds stripped x86-64 Linux executables (~45 MB); they need the GPU machine's glibc to be
# as new as the build machine's (Debian 12: glibc 2.36).
set -euo pipefail
cd "$(dirname "$0")/.."
kit="${1:-.device-kit}"
rm -rf "$kit"
mkdir -p "$kit/bin" "$kit/tests" "$kit/debs"

# The GPU-path tests, one executable per test target (found in target/release/deps): the kernel
# contract, every GEMM configuration against the CPU reference, f16, the Philox known answers, the
# autotune cache, the integer kernels against their definitions, the transformer kernels, the backend chosen at run time against
# the one inside it, the runner on wgpu, the trainer on every backend and across them, and
# training's steady state without new device objects.
targets=(-p eggroll-backend --test contract --test gpu_vs_cpu --test f16 --test philox_kat --test autotune_cache --test int8 --test noise_cache --test transformer --test selected
  -p eggroll-bench --test wgpu
  -p eggroll-tests --test every_backend --test across_backends --test steady_state)

echo "== building eggroll (release)"
cargo build --release --bin eggroll
echo "== building the GPU-path tests (release)"
mapfile -t executables < <(cargo test --release --no-run --message-format=json "${targets[@]}" \
  | grep -o '"executable":"[^"]*/deps/[^"]*"' | sed 's/^"executable":"//; s/"$//')
if [ "${#executables[@]}" -ne 12 ]; then
  echo "device_kit: expected 12 test executables, cargo reported ${#executables[@]}: ${executables[*]}" >&2
  exit 1
fi

# Stripped copies: the symbols triple the size and the kit travels within a size limit.
copy() {
  if command -v strip >/dev/null; then strip -o "$2" "$1"; else cp "$1" "$2"; fi
}
copy target/release/eggroll "$kit/bin/eggroll"
for exe in "${executables[@]}"; do
  name="$(basename "$exe")"
  copy "$exe" "$kit/tests/${name%-*}"
done

echo "== downloading the Vulkan and EGL loaders (amd64 .deb)"
# The GPU machine's image may lack the loaders; its driver provides the rest. A private package
# list, so the host's apt state is left alone.
lists="$(mktemp -d)"
mkdir -p "$lists/partial"
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$kit/debs" && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
rm -rf "$lists"

(cd "$kit" && sha256sum bin/* tests/* debs/* > SHA256SUMS)
echo "== kit in $kit ($(du -sh "$kit" | cut -f1)):"
ls -l "$kit"/bin "$kit"/tests "$kit"/debs
