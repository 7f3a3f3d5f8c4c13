#!/usr/bin/env bash
# GPU check: the first run of distil-dp on CUDA, in one script of at most ~8 minutes on one GPU
# (see "GPU check" in docs/benchmarks.md).
#
#   1. builds, release, with the `cuda` feature: the GPU bench example, the distil-dp CLI and
#      the causal-lm test binaries (one feature resolution, so burn's CUDA stack compiles once);
#   2. runs causal-lm's backend-generic tests and dp-optim's GPT-2 DP tests on CUDA (`-- cuda::`);
#   3. runs examples/gpu_bench.rs: GPT-2 124M, blocks of 128, batch 8 and 32, non-private step
#      against DP steps (fast/ghost and generic clipping): ms/step, tokens/s, ratio, memory;
#   4. runs the pipeline's teacher stage on the embedded data with `--backend cuda`, 50 DP-SGD
#      steps (teacher.epochs = 1.6 of 1996 records at expected batch 64), timed, with its final ε;
#   5. writes every figure to $OUT/gpu-check.json ($OUT set) or target/gpu-check.json, and
#      prints it. Logs go next to it, in gpu-check-logs/.
#
# Every step runs under `timeout` and the script goes on after a failure, recording it (no GPU,
# no driver, a build that did not finish, ...). The timeouts (seconds) can be changed:
# GPU_CHECK_BUILD_TIMEOUT (default 270), GPU_CHECK_TEST_TIMEOUT (60), GPU_CHECK_BENCH_TIMEOUT
# (90), GPU_CHECK_TEACHER_TIMEOUT (60); the bench with GPU_CHECK_BATCH (8,32),
# GPU_CHECK_STEPS (3 timed steps) and GPU_CHECK_WARMUP (1). Cargo runs --locked, and offline
# unless CARGO_NET_OFFLINE is set (the GPU machine has no network: the crates must already be
# in the cargo home). CARGO_TARGET_DIR is honoured (default: target/ of the repository).
#
# Exit status 0 when every step succeeded, else 1 (the JSON is written in both cases).
#
# Usage: bash scripts/gpu-check.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
RESULT_DIR=${OUT:-$ROOT/target}
mkdir -p "$RESULT_DIR"
JSON=$RESULT_DIR/gpu-check.json
LOGS=$RESULT_DIR/gpu-check-logs
mkdir -p "$LOGS"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_NET_OFFLINE=${CARGO_NET_OFFLINE:-true}
T_BUILD=${GPU_CHECK_BUILD_TIMEOUT:-270}
T_TEST=${GPU_CHECK_TEST_TIMEOUT:-60}
T_BENCH=${GPU_CHECK_BENCH_TIMEOUT:-90}
T_TEACHER=${GPU_CHECK_TEACHER_TIMEOUT:-60}
BATCH=${GPU_CHECK_BATCH:-8,32}
STEPS=${GPU_CHECK_STEPS:-3}
WARMUP=${GPU_CHECK_WARMUP:-1}
STARTED=$(date +%s)

# The crates and features of every cargo command below (see step 1).
BUILD_ARGS=(--release --locked -p distil-dp-examples -p distil-dp --features cuda)
TEST_ARGS=(--release --locked -p causal-lm -p dp-optim --features cuda,burn/cubecl --tests)

# A JSON string of "$1": escaped, control characters dropped, at most the last 2000 bytes.
json_str() {
    local s
    s=$(printf '%s' "$1" | tail -c 2000 | tr -d '\000-\010\013\014\016-\037' |
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r//g' |
        awk 'BEGIN { ORS = "" } NR > 1 { print "\\n" } { print }')
    printf '"%s"' "$s"
}

# A JSON number, or null when "$1" is not one.
json_num() {
    if [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf 'null'; fi
}

# A JSON boolean: true when "$1" is 0.
json_ok() { if [ "$1" -eq 0 ]; then printf 'true'; else printf 'false'; fi; }

# Runs "$@" with a timeout of $1 seconds, output to log $2; sets RC and SECS.
run_step() {
    local limit=$1 log=$2 t0
    shift 2
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    RC=$?
    SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# Records a step that did not run because the build of its binary failed (a binary left by
# an earlier build could be stale): sets RC and SECS, writes the log.
skip_step() {
    echo "not run: the build of $2 failed (see build.log)" >"$1"
    RC=125
    SECS=null
}

# The last lines of a log, as a JSON string (null when the step succeeded).
failure() {
    local rc=$1 log=$2 what
    if [ "$rc" -eq 0 ]; then printf 'null'; return; fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        what="timed out (exit $rc)"
    elif [ "$rc" -eq 125 ] && grep -q '^not run:' "$log"; then
        what="skipped"
    else
        what="exit $rc"
    fi
    json_str "$what; last lines: $(tail -n 15 "$log" 2>/dev/null)"
}

echo "== gpu-check: logs in $LOGS, result in $JSON" >&2

# --- 0. the GPU ----------------------------------------------------------------------------
run_step 30 "$LOGS/nvidia-smi.log" nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
SMI_RC=$RC
GPU_NAME=null
GPU_DRIVER=null
GPU_MEMORY=null
if [ "$SMI_RC" -eq 0 ]; then
    IFS=',' read -r name driver memory <"$LOGS/nvidia-smi.log"
    GPU_NAME=$(json_str "$(echo "$name" | xargs)")
    GPU_DRIVER=$(json_str "$(echo "$driver" | xargs)")
    GPU_MEMORY=$(json_str "$(echo "$memory" | xargs)")
fi
GPU_ERROR=$(failure "$SMI_RC" "$LOGS/nvidia-smi.log")
echo "== nvidia-smi: exit $SMI_RC" >&2

# --- 1. build ------------------------------------------------------------------------------
# The example and the CLI in one command, then the test binaries. The examples' dev-dependencies
# match causal-lm's (root Cargo.toml), so both commands resolve burn's CUDA stack identically.
echo "== build (timeout ${T_BUILD}s)" >&2
BUILD_T0=$(date +%s)
run_step "$T_BUILD" "$LOGS/build.log" \
    cargo build "${BUILD_ARGS[@]}" --example gpu_bench --bin distil-dp
BUILD_RC=$RC
EXE_RC=$RC
BUILD_LOG=$LOGS/build.log
if [ "$BUILD_RC" -eq 0 ]; then
    LEFT=$((T_BUILD - ($(date +%s) - BUILD_T0)))
    [ "$LEFT" -lt 30 ] && LEFT=30
    run_step "$LEFT" "$LOGS/build-tests.log" cargo test "${TEST_ARGS[@]}" --no-run
    BUILD_RC=$RC
    BUILD_LOG=$LOGS/build-tests.log
fi
BUILD_SECS=$(($(date +%s) - BUILD_T0))
BUILD_ERROR=$(failure "$BUILD_RC" "$BUILD_LOG")
echo "== build: exit $BUILD_RC in ${BUILD_SECS}s" >&2
BIN=$CARGO_TARGET_DIR/release/distil-dp
BENCH=$CARGO_TARGET_DIR/release/examples/gpu_bench

# --- 2. backend-generic tests on CUDA ------------------------------------------------------
echo "== tests on cuda (timeout ${T_TEST}s)" >&2
run_step "$T_TEST" "$LOGS/tests.log" cargo test "${TEST_ARGS[@]}" -- cuda::
TEST_RC=$RC
TEST_SECS=$SECS
read -r PASSED FAILED IGNORED BINARIES < <(awk '
    /^test result:/ {
        n++
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) g += $i
        }
    }
    END { printf "%d %d %d %d\n", p, f, g, n }' "$LOGS/tests.log")
FAILED_NAMES=$(grep -E '^test .* \.\.\. FAILED$' "$LOGS/tests.log" | sed -e 's/^test //' -e 's/ \.\.\. FAILED$//' |
    while read -r t; do printf '%s,' "$(json_str "$t")"; done)
FAILED_NAMES="[${FAILED_NAMES%,}]"
TEST_ERROR=$(failure "$TEST_RC" "$LOGS/tests.log")
echo "== tests: exit $TEST_RC, $PASSED passed, $FAILED failed" >&2

# --- 3. GPT-2 training steps ---------------------------------------------------------------
echo "== gpu_bench (timeout ${T_BENCH}s)" >&2
rm -f "$RESULT_DIR/gpu-bench.json"
if [ "$EXE_RC" -eq 0 ]; then
    run_step "$T_BENCH" "$LOGS/bench.log" "$BENCH" --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" \
        --out "$RESULT_DIR/gpu-bench.json"
else
    skip_step "$LOGS/bench.log" gpu_bench
fi
BENCH_RC=$RC
BENCH_SECS=$SECS
if [ -s "$RESULT_DIR/gpu-bench.json" ]; then BENCH_JSON=$(cat "$RESULT_DIR/gpu-bench.json"); else BENCH_JSON=null; fi
BENCH_ERROR=$(failure "$BENCH_RC" "$LOGS/bench.log")
echo "== gpu_bench: exit $BENCH_RC, seconds $BENCH_SECS" >&2

# --- 4. the pipeline's DP-SGD teacher on CUDA ----------------------------------------------
echo "== teacher, 50 DP-SGD steps on cuda (timeout ${T_TEACHER}s)" >&2
RUN_DIR=$RESULT_DIR/gpu-check-run
rm -rf "$RUN_DIR"
if [ "$EXE_RC" -eq 0 ]; then
    run_step "$T_TEACHER" "$LOGS/teacher.jsonl" "$BIN" teacher --backend cuda --output json \
        --set "output_dir=$RUN_DIR" --set teacher.epochs=1.6
else
    skip_step "$LOGS/teacher.jsonl" distil-dp
fi
TEACHER_RC=$RC
TEACHER_SECS=$SECS
# the stage's last line: {"epsilon":…,"event":"done",…,"stage":"teacher","steps":50}
DONE=$(grep '"event":"done"' "$LOGS/teacher.jsonl" | grep '"stage":"teacher"' | tail -n 1)
field() { printf '%s' "$DONE" | grep -o "\"$1\":[^,}]*" | head -n 1 | cut -d: -f2; }
TEACHER_EPS=$(json_num "$(field epsilon)")
TEACHER_SIGMA=$(json_num "$(field noise_multiplier)")
TEACHER_STEPS=$(json_num "$(field steps)")
TEACHER_BACKEND=$(grep -o '"backend":"[^"]*"' "$LOGS/teacher.jsonl" | head -n 1 | cut -d'"' -f4)
if [ -n "$TEACHER_BACKEND" ]; then TEACHER_BACKEND=$(json_str "$TEACHER_BACKEND"); else TEACHER_BACKEND=null; fi
TEACHER_ERROR=$(failure "$TEACHER_RC" "$LOGS/teacher.jsonl")
echo "== teacher: exit $TEACHER_RC, seconds $TEACHER_SECS, epsilon $TEACHER_EPS" >&2

# --- 5. the result -------------------------------------------------------------------------
cat >"$JSON" <<EOF
{
  "script": "scripts/gpu-check.sh",
  "commit": $(json_str "$(git rev-parse HEAD 2>/dev/null || echo unknown)"),
  "uncommitted_changes": $(if [ -n "$(git status --porcelain 2>/dev/null)" ]; then echo true; else echo false; fi),
  "date": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),
  "total_seconds": $(($(date +%s) - STARTED)),
  "gpu": {"ok": $(json_ok "$SMI_RC"), "name": $GPU_NAME, "driver": $GPU_DRIVER, "memory_total": $GPU_MEMORY, "error": $GPU_ERROR},
  "build": {"ok": $(json_ok "$BUILD_RC"), "seconds": $BUILD_SECS, "commands": [$(json_str "cargo build ${BUILD_ARGS[*]} --example gpu_bench --bin distil-dp"), $(json_str "cargo test ${TEST_ARGS[*]} --no-run")], "error": $BUILD_ERROR},
  "tests": {"ok": $(json_ok "$TEST_RC"), "filter": "cuda::", "package": "causal-lm, dp-optim", "seconds": $(json_num "$TEST_SECS"), "test_binaries_run": $BINARIES, "passed": $PASSED, "failed": $FAILED, "ignored": $IGNORED, "failed_tests": $FAILED_NAMES, "error": $TEST_ERROR},
  "bench": {"ok": $(json_ok "$BENCH_RC"), "seconds": $(json_num "$BENCH_SECS"), "args": $(json_str "--batch $BATCH --steps $STEPS --warmup $WARMUP"), "result": $BENCH_JSON, "error": $BENCH_ERROR},
  "teacher": {"ok": $(json_ok "$TEACHER_RC"), "backend": $TEACHER_BACKEND, "settings": "teacher stage, embedded data, --set teacher.epochs=1.6 (50 steps at expected batch 64 of 1996 records)", "seconds": $(json_num "$TEACHER_SECS"), "steps": $TEACHER_STEPS, "epsilon": $TEACHER_EPS, "noise_multiplier": $TEACHER_SIGMA, "run_dir": $(json_str "$RUN_DIR"), "error": $TEACHER_ERROR}
}
EOF
cat "$JSON"
# exit status: 0 only when every step succeeded
for rc in "$SMI_RC" "$BUILD_RC" "$TEST_RC" "$BENCH_RC" "$TEACHER_RC"; do
    [ "$rc" -eq 0 ] || exit 1
done
exit 0
