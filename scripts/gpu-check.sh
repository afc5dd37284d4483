#!/usr/bin/env bash
# The one-command GPU check (issue 15). The GPU machine has CUDA, nvcc, ncu and
# compute-sanitizer but no Rust, so the check has two halves:
#
#   bash scripts/gpu-check.sh build   # here: builds the release binaries into gpu-check/ (git-ignored)
#   bash scripts/gpu-check.sh run     # there: runs them and writes one report
#
# With the workplace's device tool: run `build` here, then the device's `run` with
#   command: bash scripts/gpu-check.sh run      carry: ["gpu-check"]      timeout_s: 540
# The report is $OUT/gpu-report.md when $OUT is set (the device tool brings it back), else
# gpu-check/gpu-report.md. `run` takes under 8 minutes: the GPU tests (cargo's ignored ones),
# compute-sanitizer's memcheck over them and racecheck over the runtime's, then the GPU
# benchmarks (W1 and W3 against the copy bandwidth measured by the same binary, W4 in TFLOP/s
# on tenjit's cuBLAS path, the W8 training step), and torch eager CUDA's W8 step when torch is
# importable there. Every part runs even when one fails; the report says which failed.
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=gpu-check

# The path of the executable cargo builds for the test or bench target NAME (`test NAME` or
# `bench NAME`), in release.
executable() {
  local kind=$1 name=$2 release=()
  [ "$kind" = test ] && release=(--release)
  cargo "$kind" "${release[@]}" --no-run --"$kind" "$name" --message-format=json \
    | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep "/deps/$name-" | tail -1
}

build() {
  set -e
  rm -rf "$DIR" && mkdir -p "$DIR"
  for t in cuda_runtime devices; do
    bin=$(executable test "$t")
    [ -n "$bin" ] || { echo "could not build the $t test binary" >&2; exit 1; }
    cp "$bin" "$DIR/$t"
  done
  bin=$(executable bench gpu)
  [ -n "$bin" ] || { echo "could not build the gpu bench" >&2; exit 1; }
  cp "$bin" "$DIR/gpu_bench"
  cp scripts/gpu_torch_w8.py "$DIR/"
  strip "$DIR"/cuda_runtime "$DIR"/devices "$DIR"/gpu_bench 2>/dev/null || true
  du -sh "$DIR"
  echo "built $DIR/; now, on the GPU machine: bash scripts/gpu-check.sh run (carry $DIR)"
}

run() {
  [ -x "$DIR/gpu_bench" ] || { echo "$DIR/ is missing: run 'bash scripts/gpu-check.sh build' on a machine with Rust first" >&2; exit 2; }
  local out="${OUT:-$DIR}" report
  mkdir -p "$out"
  report="$out/gpu-report.md"
  local failed=()
  section() { printf '\n## %s\n\n```\n' "$1" >>"$report"; }
  endsection() { printf '```\n' >>"$report"; }
  # step NAME TIMEOUT COMMAND...: runs, appends the last lines of its output, records failure.
  step() {
    local name=$1 limit=$2; shift 2
    section "$name"
    local log; log=$(mktemp)
    local rc=0
    timeout "$limit" "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then failed+=("$name"); echo "(exit status $rc)" >>"$log"; fi
    tail -n 60 "$log" >>"$report"
    endsection
  }
  {
    echo "# tenjit GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    nvcc --version 2>&1 | tail -n 1
    echo '```'
  } >"$report"
  step "GPU tests (cargo test --ignored: cuda_runtime)" 150 "./$DIR/cuda_runtime" --ignored --test-threads=1
  step "GPU tests (cargo test --ignored: devices)" 60 "./$DIR/devices" --ignored --test-threads=1
  if command -v compute-sanitizer >/dev/null; then
    step "compute-sanitizer memcheck (cuda_runtime)" 150 \
      compute-sanitizer --tool memcheck --error-exitcode 99 "./$DIR/cuda_runtime" --ignored --test-threads=1
    step "compute-sanitizer racecheck (op corpus, random programs)" 120 \
      compute-sanitizer --tool racecheck --error-exitcode 99 "./$DIR/cuda_runtime" --ignored --test-threads=1 the_op_corpus random_programs
  else
    failed+=("compute-sanitizer (not installed)")
  fi
  step "benchmarks (tenjit on cuda:0)" 150 "./$DIR/gpu_bench" --bench
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    step "torch eager CUDA, W8 step" 90 python3 "$DIR/gpu_torch_w8.py"
  else
    printf '\n## torch eager CUDA\n\nnot run: torch with CUDA is not importable here\n' >>"$report"
  fi
  {
    echo
    if [ ${#failed[@]} -eq 0 ]; then echo "**All parts passed.**"; else printf '**Failed:** %s\n' "${failed[*]}"; fi
  } >>"$report"
  cat "$report"
  [ ${#failed[@]} -eq 0 ]
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: bash scripts/gpu-check.sh build|run" >&2; exit 2 ;;
esac
