#!/usr/bin/env bash
# The long fuzzing run (issue 7): every libFuzzer target for RUNS executions (default ten
# million) from its seed corpus, at low priority, one log per target in OUT (default
# build-fuzz/long-run). CI runs each target for 15 s instead (.ci/run).
#
# Usage: test/fuzz/long-run.sh [TARGET...]    (default: every target)
# Environment: RUNS, OUT, JOBS (parallel targets, default 2), BUILD_DIR (default build-fuzz).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
build=${BUILD_DIR:-build-fuzz}
runs=${RUNS:-10000000}
out=${OUT:-$build/long-run}
jobs=${JOBS:-2}
targets=("$@")
((${#targets[@]})) || targets=(reference manifest duration vault_response template_render)
[[ -f $build/build.ninja ]] || CXX=clang++ CC=clang meson setup "$build" -Dfuzzers=true -Dtests=false
ninja -C "$build"
mkdir -p "$out"

one() {
  local target=$1 corpus="$out/corpus-$1"
  mkdir -p "$corpus"
  cp -n test/fuzz/corpus/"$target"/* "$corpus/"
  if nice -n 19 "$build/test/fuzz/fuzz-${target//_/-}" -runs="$runs" -print_final_stats=1 \
    -artifact_prefix="$out/$target-" "$corpus" >"$out/$target.log" 2>&1; then
    echo "fuzz-${target//_/-}: $(grep -m1 '^stat::number_of_executed_units' "$out/$target.log" | awk '{print $2}') executions, no finding"
  else
    echo "fuzz-${target//_/-}: FAILED, see $out/$target.log and $out/$target-crash-*"
    return 1
  fi
}

status=0
running=0
for t in "${targets[@]}"; do
  one "$t" &
  ((++running))
  if ((running >= jobs)); then
    wait -n || status=1
    ((running--))
  fi
done
while ((running > 0)); do
  wait -n || status=1
  ((running--))
done
exit $status
