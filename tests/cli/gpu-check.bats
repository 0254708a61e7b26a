#!/usr/bin/env bats
# tests/gpu/check.sh, the GPU correctness run, tested here without a GPU:
# only PASS may pass, so a machine without a GPU (the check programs skip,
# embed --device cuda refuses), a crash or a failed build must end in FAIL
# rows, a count line and exit status 1.  check.sh builds into a copy of the
# tested build, where only the check programs are new (a few seconds).

load helper

ROOT=$BATS_TEST_DIRNAME/../..

setup_file() {
    GPU_O=$BATS_FILE_TMPDIR/build
    cp -a "$(dirname "$BINDIR")" "$GPU_O"
    rm -rf "$GPU_O/gpu-check-work" "$GPU_O/gpu-check-logs"
    export GPU_O
    # A build made without nvcc stays one (check.sh would otherwise find
    # nvcc in /usr/local/cuda and rebuild the library with CUDA).
    [ -f "$GPU_O/lib/cuda/gpu.o" ] || export NVCC=
}

setup() {
    if nvidia-smi -L >/dev/null 2>&1; then
        skip "a GPU is present: run tests/gpu/check.sh itself"
    fi
}

# check.sh against the copy, ../shared standing in for gpu-fixtures/.
gpu_check() {
    O=$GPU_O J=2 FIX=$SHARED OUT=$BATS_TEST_TMPDIR/logs "$ROOT/tests/gpu/check.sh" "$@"
}

@test "gpu check without a GPU: every GPU check a FAIL, a count line, exit 1" {
    run gpu_check --cpu-build
    [ "$status" -eq 1 ]
    [ "${lines[${#lines[@]} - 1]}" = "gpu-check: 1 passed, 15 failed" ]
    s=$BATS_TEST_TMPDIR/logs/summary.txt
    [ "$(tail -1 "$s")" = "gpu-check: 1 passed, 15 failed" ]
    # The build passes; what needs the GPU fails, the encoder test's GPU
    # part (skipped there) included.
    grep -q '^build (make -j2 all gpu-checks) *PASS' "$s"
    grep -q '^unit test encoder *FAIL  1 skipped: no usable GPU here' "$s"
    for c in "fixtures fp32" "fixtures bf16" "train100 bf16" "train100 fp32" "sts fp32, library" \
        "sts bf16, library" "bertbase bf16" "bertbase fp32" "nccl one rank"; do
        grep -q "^$c.* FAIL  skipped: " "$s" || { echo "no skip-as-FAIL row for $c"; cat "$s"; false; }
    done
    [ "$(grep -c '^sts [a-z0-9]*, wp-tokenize | embed | spearman *FAIL  embed --device cuda exit 1: ' "$s")" -eq 2 ]
    ! grep -q ' SKIP ' "$s"
}

@test "gpu check: a check program that crashes is a FAIL; one that passes is a PASS" {
    # A copy of its own, with stand-ins newer than what they are built from.
    cp -a "$GPU_O" "$BATS_TEST_TMPDIR/build"
    GPU_O=$BATS_TEST_TMPDIR/build
    run gpu_check --cpu-build
    printf '#!/bin/sh\necho "ok 1 - stand-in"\necho "1..1"\n' >"$GPU_O/gpu-checks/fixtures"
    printf '#!/bin/sh\necho "ok 1 - before the crash"\nkill -SEGV $$\n' >"$GPU_O/gpu-checks/sts"
    chmod +x "$GPU_O/gpu-checks/fixtures" "$GPU_O/gpu-checks/sts"
    run gpu_check --cpu-build
    [ "$status" -eq 1 ]
    s=$BATS_TEST_TMPDIR/logs/summary.txt
    grep -q '^fixtures fp32 (tiny, head64) *PASS  1/1$' "$s"
    grep -q '^fixtures bf16 (tiny, head64) *PASS  1/1$' "$s"
    grep -q '^fixtures fp32 (mpnet-tiny, mpnet-head64) *PASS  1/1$' "$s"
    grep -q '^sts fp32, library (tiny) *FAIL  1/1 ok, killed by signal 11$' "$s"
    grep -q '^sts bf16, library (tiny) *FAIL  1/1 ok, killed by signal 11$' "$s"
    [ "$(tail -1 "$s")" = "gpu-check: 5 passed, 11 failed" ]
}

@test "gpu check: a failed build leaves every check a FAIL (did not run), exit 1" {
    O=$BATS_TEST_TMPDIR/empty CC=false NVCC= J=2 FIX=$SHARED OUT=$BATS_TEST_TMPDIR/logs \
        run "$ROOT/tests/gpu/check.sh"
    [ "$status" -eq 1 ]
    s=$BATS_TEST_TMPDIR/logs/summary.txt
    grep -q '^build (make -j2 all gpu-checks) *FAIL  see build.log$' "$s"
    [ "$(grep -c ' FAIL  did not run$' "$s")" -eq 15 ]
    [ "$(tail -1 "$s")" = "gpu-check: 0 passed, 17 failed" ]
}

@test "gpu check: --sanitize adds the compute-sanitizer row, which is not in the table by default" {
    run gpu_check --cpu-build
    ! grep -q 'compute-sanitizer memcheck' "$BATS_TEST_TMPDIR/logs/summary.txt"
    grep -q '^(compute-sanitizer not run: tests/gpu/check.sh --sanitize)$' \
        "$BATS_TEST_TMPDIR/logs/summary.txt"
    run gpu_check --cpu-build --sanitize
    [ "$status" -eq 1 ]
    grep -q '^compute-sanitizer memcheck, fixtures fp32 *FAIL' "$BATS_TEST_TMPDIR/logs/summary.txt"
    [ "$(tail -1 "$BATS_TEST_TMPDIR/logs/summary.txt")" = "gpu-check: 1 passed, 16 failed" ]
}

@test "gpu check: an unknown option is a usage error" {
    run "$ROOT/tests/gpu/check.sh" --frobnicate
    [ "$status" -eq 2 ]
    [[ $output == *"unknown option '--frobnicate'"* ]]
}
