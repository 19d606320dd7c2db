#!/usr/bin/env bash
# The one prepared run for a GPU machine (torch preinstalled as python3, no network, one
# H100/H200): build the extension in place, run the tests (CPU and CUDA), the atrous and CRF
# benchmarks, then compute-sanitizer on a light selection of the CUDA tests: memcheck of the
# im2col/conv and CRF (lattice, mean-field) tests, racecheck and synccheck of the CRF ones (the
# emulated build runs a block's threads as fibers that never interleave between barriers, so
# only a GPU can show a shared-memory race or a barrier misuse).
# Everything is logged to $OUT/gpu_check.log; step statuses go to $OUT/summary.json.
#
#   bash tools/gpu_check.sh            (or: make gpu-check)
#
# Each step runs under a timeout cut from one overall budget (GPU_CHECK_BUDGET_S, default 345 s,
# so the whole run stays under 6 minutes); a failed step is recorded and the next one still runs;
# the exit status is 1 when any required step failed.  The benchmarks leave SANITIZE_RESERVE_S
# (90 s) of the budget to the sanitizer steps.  At most 7 files are written to $OUT.
#
# Environment: OUT (default ./gpu_check_out), PYTHON (python3), CUDA_HOME (/usr/local/cuda),
# MAX_JOBS (16), GPU_CHECK_BUDGET_S, GPU_CHECK_TESTS (pytest targets, default tests),
# GPU_CHECK_BENCH_ARGS (extra bench_atrous.py arguments), GPU_CHECK_ALLOW_CPU=1 (dry run of the
# script's logic without a GPU: no build, CPU quick benchmarks, no sanitizer).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-./gpu_check_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/gpu_check.log"
PYTHON="${PYTHON:-python3}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CPU_ONLY="${GPU_CHECK_ALLOW_CPU:-0}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-345}"
TESTS="${GPU_CHECK_TESTS:-tests}"
export OUT PYTHON CUDA_HOME CPU_ONLY TESTS  # the steps run as functions in child shells
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
rm -f "$LOG" "$OUT"/{summary.json,junit_tests.xml,bench_atrous.json,bench_crf.json,bench_net.json} \
  "$OUT/sanitize.log"

NAMES=()
RESULTS=()
SECS=()
FAILED=0

# step NAME CAP_S RESERVE_S REQUIRED CMD...: runs CMD under a timeout of at most CAP_S seconds
# that leaves RESERVE_S of the overall budget for the steps after it.
step() {
  local name=$1 cap=$2 reserve=$3 required=$4
  shift 4
  local left=$((BUDGET_S - SECONDS - reserve))
  local limit=$((cap < left ? cap : left))
  local status rc=0 t0=$SECONDS
  echo
  echo "==== [$name] $(date -u +%H:%M:%S) (t=${SECONDS}s, timeout ${limit}s): $*"
  if ((limit < 10)); then
    status="skipped: out of time"
    rc=-1
  else
    if declare -F "$1" >/dev/null; then
      # timeout can only exec programs: run the shell function in a child bash that has it.
      timeout -k 5 "$limit" bash -c 'set -euo pipefail; "$@"' step "$@" || rc=$?
    else
      timeout -k 5 "$limit" "$@" || rc=$?
    fi
    case $rc in
      0) status="ok" ;;
      124 | 137) status="timeout after ${limit}s" ;;
      *) status="failed (exit $rc)" ;;
    esac
  fi
  [[ $rc == 0 ]] || echo  # an interrupted step may leave its last line open
  if [[ $rc != 0 && $required == 1 ]]; then
    FAILED=1
  elif [[ $rc != 0 ]]; then
    status="$status (optional)"
  fi
  echo "==== [$name] $status in $((SECONDS - t0)) s"
  record "$name" "$status" $((SECONDS - t0))
}

record() {
  NAMES+=("$1")
  RESULTS+=("$2")
  SECS+=("$3")
}

gpu_info() {
  nvidia-smi
  "$CUDA_HOME/bin/nvcc" --version | tail -n 2
  "$PYTHON" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
p = torch.cuda.get_device_properties(0)
print(p.name, p.multi_processor_count, "SMs", round(p.total_memory / 2**30, 1), "GiB")
EOF
}

build() {
  MAX_JOBS="${MAX_JOBS:-16}" FORCE_CUDA=1 CUDA_HOME="$CUDA_HOME" TORCH_CUDA_ARCH_LIST=9.0 \
    "$PYTHON" setup.py build_ext --inplace
}

build_info() {
  "$PYTHON" - "$CPU_ONLY" <<'EOF'
import sys, torch, deeplab_caffe
info = deeplab_caffe.build_info()
print("deeplab_caffe build:", info)
if sys.argv[1] != "1":
    assert info["with_cuda"], "the extension was built without CUDA"
    assert info["cuda_available"], "torch sees no CUDA GPU"
EOF
}

run_tests() {
  local extra=()
  # Parallel workers when pytest-xdist is there (it is on the GPU image); conftest pins each
  # process to one thread, so 8 workers use half of the 16 cores and leave room for builds of
  # the subprocess tests.
  if "$PYTHON" -c "import xdist" 2>/dev/null; then extra+=(-n 8); fi
  if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then extra+=(--timeout 120); fi
  # shellcheck disable=SC2086  # TESTS is a list of paths
  "$PYTHON" -m pytest -q -rs -p no:cacheprovider "${extra[@]}" \
    --junitxml="$OUT/junit_tests.xml" $TESTS
}

# The CUDA tests the sanitizers run: real-GPU cases only (not the emulated build's), small ones
# (a sanitizer slows every launch 10-100x).  The CRF selection has the lattice build (hash insert
# with atomics, heavy collisions), the split splat, and the mean-field's fused update (shared
# memory, __syncthreads) in graph, fused and plain modes and inside a caller's CUDA graph.
IM2COL_SANITIZE=(tests/test_im2col_cuda.py -k "not emu")
CRF_SANITIZE=(tests/test_crf_cuda.py -k "not emu and (lattice_and_filter or splat_halves or \
stress or inside_a_callers or (modes_match_cpu and 21) or (modes_match_cpu and matrix))")
export IM2COL_SANITIZE_S="${IM2COL_SANITIZE[*]@Q}" CRF_SANITIZE_S="${CRF_SANITIZE[*]@Q}"

# sanitize TOOL SELECTION: compute-sanitizer --tool TOOL over the pytest selection (quoted
# words, IM2COL_SANITIZE_S or CRF_SANITIZE_S); its output is appended to sanitize.log.
sanitize() {
  local tool=$1 selection
  eval "selection=($2)"
  local n
  n=$("$PYTHON" -m pytest -q --collect-only -p no:cacheprovider "${selection[@]}" 2>/dev/null \
    | grep -c "::" || true)
  if [[ $n == 0 ]]; then
    echo "no tests selected by ${selection[*]}: nothing to check"
    return 0
  fi
  echo "$n tests under compute-sanitizer $tool; full output in sanitize.log"
  # Without the caching allocator every tensor is its own allocation, so an out-of-bounds
  # access is caught instead of landing in a neighbour inside a pooled block.
  local rc=0
  echo "==== $tool: ${selection[*]}" >>"$OUT/sanitize.log"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" --error-exitcode 99 \
    "$PYTHON" -m pytest -q -x -p no:cacheprovider "${selection[@]}" \
    >>"$OUT/sanitize.log" 2>&1 || rc=$?
  tail -n 15 "$OUT/sanitize.log"
  return $rc
}

print_targets() {
  [[ -f $OUT/bench_atrous.json ]] && "$PYTHON" - "$OUT/bench_atrous.json" <<'EOF' || true
import json, sys
data = json.load(open(sys.argv[1]))
env = data["env"]
print("bench_atrous on", env.get("gpu", env["device"]), "torch", env["torch"])
for t in data["targets"]:
    print(" ", t["target"] + ":", t["status"].upper(),
          "" if "worst_ratio" not in t else f"(worst {t['worst_ratio']}x at {t['worst_case']})")
EOF
  [[ -f $OUT/bench_crf.json ]] && "$PYTHON" - "$OUT/bench_crf.json" <<'EOF' || true
import json, sys
data = json.load(open(sys.argv[1]))
info = data["info"]
print("bench_crf on", info.get("gpu") or info["device"])
for t in data.get("targets", []):
    print(f"  {t['name']}: {t['value']:.3g} {t['unit']} (wanted {t['want']}):",
          "MET" if t["met"] else "MISSED")
for mode, r in (data.get("cuda_modes") or {}).items():
    print(f"  500x375 mode {mode}: iterations {r['iter_ms']:.3f} ms, total {r['total_ms']:.3f} ms")
EOF
  return 0
}

write_summary() {
  local i sep=""
  {
    printf '{\n "date": "%s",\n "mode": "%s",\n "total_s": %d,\n "failed": %s,\n "steps": [' \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$([[ $CPU_ONLY == 1 ]] && echo cpu-dry-run || echo gpu)" \
      "$SECONDS" "$([[ $FAILED == 1 ]] && echo true || echo false)"
    for i in "${!NAMES[@]}"; do
      printf '%s\n  {"step": "%s", "status": "%s", "seconds": %d}' "$sep" "${NAMES[$i]}" \
        "${RESULTS[$i]}" "${SECS[$i]}"
      sep=","
    done
    printf '\n ]\n}\n'
  } >"$OUT/summary.json"
}

main() {
  echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) in $PWD, OUT=$OUT, budget ${BUDGET_S}s"
  git rev-parse --short HEAD 2>/dev/null && git status --short | head -n 20 || true
  if [[ $CPU_ONLY == 1 ]]; then
    echo "GPU_CHECK_ALLOW_CPU=1: dry run without a GPU (no build, CPU quick benchmarks)"
    record gpu_info "skipped: cpu dry run" 0
    record build "skipped: cpu dry run" 0
  else
    step gpu_info 30 0 1 gpu_info
    step build 210 120 1 build
  fi
  step build_info 40 120 1 build_info
  step tests 150 110 1 run_tests
  local bench_args=(--device cuda)
  [[ $CPU_ONLY == 1 ]] && bench_args=(--device cpu --quick)
  # shellcheck disable=SC2206  # word splitting of the user's extra arguments is intended
  bench_args+=(${GPU_CHECK_BENCH_ARGS:-})
  local reserve="${SANITIZE_RESERVE_S:-90}"
  [[ $CPU_ONLY == 1 ]] && reserve=0
  step bench_atrous 150 "$reserve" 1 "$PYTHON" tools/bench_atrous.py "${bench_args[@]}" \
    --json "$OUT/bench_atrous.json"
  if [[ -f tools/bench_crf.py ]]; then
    step bench_crf 90 "$reserve" 0 "$PYTHON" tools/bench_crf.py "${bench_args[@]:0:2}" \
      $([[ $CPU_ONLY == 1 ]] && echo --quick) --json "$OUT/bench_crf.json"
  else
    record bench_crf "skipped: tools/bench_crf.py absent" 0
  fi
  step bench_net 80 "$reserve" 0 "$PYTHON" tools/bench_net.py "${bench_args[@]:0:2}" \
    $([[ $CPU_ONLY == 1 ]] && echo --quick) --json "$OUT/bench_net.json"
  SANITIZER="$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")"
  export SANITIZER
  if [[ $CPU_ONLY != 1 && -x $SANITIZER ]]; then
    step memcheck_im2col 40 50 0 sanitize memcheck "$IM2COL_SANITIZE_S"
    step memcheck_crf 40 30 0 sanitize memcheck "$CRF_SANITIZE_S"
    step racecheck_crf 30 12 0 sanitize racecheck "$CRF_SANITIZE_S"
    step synccheck_crf 25 0 0 sanitize synccheck "$CRF_SANITIZE_S"
  else
    local tool
    for tool in memcheck_im2col memcheck_crf racecheck_crf synccheck_crf; do
      record "$tool" "skipped: no GPU or no compute-sanitizer" 0
    done
  fi

  echo
  echo "==== summary (t=${SECONDS}s of ${BUDGET_S}s budget)"
  local i
  for i in "${!NAMES[@]}"; do
    printf '  %-15s %-40s %4d s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${SECS[$i]}"
  done
  print_targets
  write_summary
  echo "gpu_check: $([[ $FAILED == 1 ]] && echo FAILED || echo passed); files in $OUT:"
  ls -l "$OUT"
  return $FAILED
}

export -f gpu_info build build_info run_tests sanitize

rc=0
main "$@" 2>&1 | tee "$LOG" || rc=$?
exit $rc
