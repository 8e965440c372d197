#!/usr/bin/env bash
# The cost of one `charlm` epoch as the population grows, at the task's default width and window.
# Usage:
#   bash scripts/charlm_scaling.sh [OUT_FILE.md]       # default: print the table only
# Environment:
#   EGGROLL_BIN        a prebuilt `eggroll` binary (default: cargo build --release)
#   BACKEND            cpu or wgpu (default cpu; WGPU_BACKEND / WGPU_ADAPTER_NAME pick the adapter)
#   POPULATIONS        the population sizes (default "256 512 1024 2048 4096 8192 16384")
#   EPOCHS             timed epochs per size (default 5; the first epoch's set-up is included)
# Each size runs `eggroll train --task charlm --population N --epochs EPOCHS --json` and reports
# its ms_per_epoch and tokens_per_second (bytes the whole population evaluates per second of
# training, evaluations excluded). A size the backend refuses (an adapter's buffer limits, say)
# is reported with the first line of its error and the next one runs.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-}"
backend="${BACKEND:-cpu}"
epochs="${EPOCHS:-5}"
bin="${EGGROLL_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --bin eggroll) || exit 1
  bin="$repo/target/release/eggroll"
fi

err="$(mktemp)"
table="| population | ms / epoch | tokens / s | adapter |
| ---: | ---: | ---: | --- |"
for n in ${POPULATIONS:-256 512 1024 2048 4096 8192 16384}; do
  echo "== population $n ($(date -u +%H:%M:%S))" >&2
  if json="$("$bin" train --task charlm --backend "$backend" --population "$n" --epochs "$epochs" \
    --eval-every "$epochs" --json --quiet 2>"$err")"; then
    # A JSON field's value: a string's text, or a number.
    field() { grep -oE "\"$1\":(\"[^\"]*\"|[^,}]*)" <<<"$json" | head -n 1 | cut -d: -f2- | tr -d '"'; }
    row="$(printf '| %d | %.1f | %.0f | %s (%s) |' "$n" "$(field ms_per_epoch)" "$(field tokens_per_second)" "$(field adapter)" "$(field api)")"
  else
    row="| $n | - | - | refused: $(head -n 1 "$err") |"
  fi
  echo "$row" >&2
  table+=$'\n'"$row"
done
echo "$table"
[ -n "$out" ] && echo "$table" >"$out"
exit 0
