#!/usr/bin/env bash
# Runs scripts/gpu_bench.sh on a GPU machine without Rust or network, from the kit that
# scripts/device_kit.sh built elsewhere. Usage, from a copy of the repository holding the kit:
#   bash scripts/device_run.sh OUT_DIR [KIT_DIR]      # default KIT_DIR: .device-kit
# It checks the kit, installs the Vulkan/EGL loaders from the kit when the machine has none (as
# root: the packages are unpacked into /), points Vulkan and EGL at NVIDIA's driver files when no
# other driver is registered, runs gpu_bench.sh on Vulkan (WGPU_BACKEND, unless set) with a time
# limit per stage (sized to end inside a ten-minute command; override with
# EGGROLL_STAGE_TIMEOUTS), and leaves in OUT_DIR:
#   gpu-bench.tar.gz   every file gpu_bench.sh wrote
#   *.md, tests.log    the tables and the test log, to read without unpacking
set -uo pipefail
# ldconfig lives in sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: bash scripts/device_run.sh OUT_DIR [KIT_DIR]" >&2; exit 2; }
mkdir -p "$1" && out="$(cd "$1" && pwd)" || exit 1
kit="$(cd "${2:-$repo/.device-kit}" 2>/dev/null && pwd)" || {
  echo "device_run: no kit at ${2:-$repo/.device-kit}: run 'bash scripts/device_kit.sh' on a machine with Rust first" >&2
  exit 1
}
(cd "$kit" && sha256sum --check --quiet SHA256SUMS) || { echo "device_run: the kit in $kit is damaged (SHA256SUMS)" >&2; exit 1; }

if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "device_run: no Vulkan loader (libvulkan.so.1) here, and only root may unpack the kit's" >&2
    exit 1
  fi
  echo "== installing the loaders from the kit: $(cd "$kit/debs" && echo *.deb)"
  for deb in "$kit"/debs/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi

nvidia=/usr/local/nvidia/share
registered() { compgen -G "/usr/share/$1/*.json" >/dev/null || compgen -G "/etc/$1/*.json" >/dev/null; }
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! registered vulkan/icd.d \
  && [ -f "$nvidia/vulkan/icd.d/nvidia_icd.json" ]; then
  export VK_DRIVER_FILES="$nvidia/vulkan/icd.d/nvidia_icd.json"
  echo "== VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && ! registered glvnd/egl_vendor.d \
  && [ -f "$nvidia/glvnd/egl_vendor.d/10_nvidia.json" ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES="$nvidia/glvnd/egl_vendor.d/10_nvidia.json"
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)" && chmod 700 "$XDG_RUNTIME_DIR" && export XDG_RUNTIME_DIR
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

# The benchmark on the same API as the tests (wgpu would also find the GPU through EGL/GL).
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"

work="$(mktemp -d)"
EGGROLL_BIN="$kit/bin/eggroll" EGGROLL_TEST_BINS="$kit/tests" \
  EGGROLL_STAGE_TIMEOUTS="${EGGROLL_STAGE_TIMEOUTS:-80,90,40,100,70,90,60}" \
  bash "$repo/scripts/gpu_bench.sh" "$work"
rc=$?
tar -czf "$out/gpu-bench.tar.gz" -C "$work" .
cp "$work"/*.md "$out"/ 2>/dev/null
cp "$work/tests.log" "$out"/ 2>/dev/null
echo "== gpu_bench.sh exited $rc; results in $out: $(cd "$out" && echo *)"
exit "$rc"
