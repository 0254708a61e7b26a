#!/usr/bin/env bats
# A short run of every libFuzzer harness (tests/fuzz/, docs/fuzzing.md): each
# starts from its seeds and must run FUZZ_SMOKE_RUNS inputs (default 20000,
# at most 10 s) without a crash, a sanitizer report or a broken invariant.
# make check builds the harnesses and sets $FUZZ_BINDIR when clang has
# libFuzzer; without it every test skips, saying so.
load helper
bats_require_minimum_version 1.5.0

ROOT=$BATS_TEST_DIRNAME/../..
RUNS=${FUZZ_SMOKE_RUNS:-20000}

setup() {
    cd "$BATS_TEST_TMPDIR"
    [ -n "${FUZZ_BINDIR:-}" ] ||
        skip "fuzz harnesses not built: no ${FUZZ_CC:-clang} with libFuzzer (-fsanitize=fuzzer), or FUZZ=no"
}

# smoke HARNESS [MAX_LEN]: MAX_LEN (default 4096) for inputs that need more
smoke() {
    local h=$1 max_len=${2:-4096}
    [ -x "$FUZZ_BINDIR/$h" ] || { echo "$FUZZ_BINDIR/$h missing"; return 1; }
    mkdir corpus
    run env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
        "$FUZZ_BINDIR/$h" -runs="$RUNS" -max_total_time=10 -max_len="$max_len" -rss_limit_mb=2048 \
        -artifact_prefix="$BATS_TEST_TMPDIR/" corpus "$ROOT/tests/fuzz/seeds/$h"
    [ "$status" -eq 0 ] || { printf '%s\n' "$output" | tail -30; return 1; }
    [[ $output == *"Done "*" runs in "* ]]
    ! ls crash-* timeout-* oom-* 2>/dev/null
}

@test "fuzz smoke: NPY stream reader" { smoke npy; }
@test "fuzz smoke: safetensors" { smoke safetensors; }
@test "fuzz smoke: torch .bin reader" { smoke torchbin; }
@test "fuzz smoke: config.json" { smoke config; }
@test "fuzz smoke: WordPiece tokenizer" { smoke wordpiece; }
@test "fuzz smoke: tokenizer.json" { smoke tokenizer_json; }
@test "fuzz smoke: nli-filter row parser" { smoke nli; }
@test "fuzz smoke: mnr-train --labels reader" { smoke labels; }
@test "fuzz smoke: a model directory's weights (model_load, model_load_bf16)" { smoke weights 16384; }
