#!/usr/bin/env bash
# check.sh - the GPU checks of the CUDA backend, in one run on a machine
# with a CUDA GPU (compute capability 9.0+) and nvcc: builds the project
# and the check programs (tests/gpu/*.c), runs them and prints a table of
# PASS / FAIL lines and a count.  Only PASS passes: a check that skips (no
# usable GPU), crashes, or never ran (the build failed) is a FAIL.  Exit 0
# when every check passed, 1 otherwise.
#
#   tests/gpu/prepare.sh       first, here (where ../shared is): fills
#                              gpu-fixtures/ and prints the device run to use
#   tests/gpu/check.sh         then on the GPU machine, from the project root
#                              (docs/gpu-harness.md: the device run, what was
#                              checked without a GPU)
#
# Options:
#   --sanitize      also run the fixtures fp32 check under compute-sanitizer
#                   memcheck, as one more row (off by default: the tool does
#                   not work on every GPU runtime); SANITIZE=1 does the same
#   --cpu-build     accept a build without the CUDA objects (NVCC= or no
#                   nvcc), to test this harness on a machine without a GPU:
#                   every check that needs the GPU must then FAIL and the
#                   exit status be 1 (tests/cli/gpu-check.bats)
#
# Environment: O (build dir, default build-gpu), J (make jobs, default 16),
# FIX (default gpu-fixtures, laid out as ../shared; ../shared itself will do
# for a run that needs no CPU reference), OUT (logs are written there when
# set, else under $O/gpu-check-logs).
# Checks (issue 6; tolerances in each program):
#   fixtures fp32  hidden states, embeddings, losses, gradients and three
#                  AdamW steps against tiny/head64 at the CPU's tolerances
#   fixtures bf16  embeddings (row error 1e-2) and losses (1e-2 relative)
#   train100       100 steps, GPU vs CPU fp32 (losses within 2% + 0.01 in
#                  fp32, 4% + 0.02 in bf16; step 100 below step 1)
#   sts            tiny on STS-B dev: fp32 cosines within 1e-5, bf16 Spearman
#                  within 2e-3 of 0.494386; through the library, and through
#                  wp-tokenize | embed --device cuda | spearman
#   bertbase       bert-base shape, random weights, 1000 STS-B sentences:
#                  GPU vs CPU fp32 embeddings, row error 1e-2 (fp32), 2e-2 (bf16)
#   mini-batch     mnr-train --device cuda --precision fp32 on 256 STS-B dev
#                  pairs (tiny with dropout 0.1, batch 64, 3 steps): cached
#                  passes of 16 give the uncached run's losses within 1e-6
#                  relative
#   nccl           data parallelism's NCCL path on one GPU, one rank: the
#                  collectives on GPU buffers, and 5 steps of head64 with the
#                  gradients through NCCL equal to 5 steps without (several
#                  ranks need mpirun and GPUs: docs/data-parallel.md)
set -u
cd "$(dirname "$0")/../.."
sanitize=${SANITIZE:-0}
cpu_build=0
for a in "$@"; do
    case $a in
    --sanitize) sanitize=1 ;;
    --cpu-build) cpu_build=1 ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown option '$a' (--sanitize, --cpu-build)" >&2; exit 2 ;;
    esac
done
O=${O:-build-gpu}
J=${J:-16}
FIX=${FIX:-gpu-fixtures}
case $FIX in /*) ;; *) FIX=$PWD/$FIX ;; esac
LOGDIR=${OUT:-$O/gpu-check-logs}
WORK=$O/gpu-check-work
mkdir -p "$O" "$LOGDIR" "$WORK"
LOG=$LOGDIR/check.log
: >"$LOG"
export SHARED=$FIX
T0=$(date +%s)

# Every check, in the order it runs: one that has no row at the end (the
# script stopped before it) is reported as a FAIL.
build_name="build (make -j$J all gpu-checks)"
expected=("$build_name"
    "unit test encoder"
    "fixtures fp32 (tiny, head64)"
    "fixtures bf16 (tiny, head64)"
    "fixtures fp32 (mpnet-tiny, mpnet-head64)"
    "fixtures bf16 (mpnet-tiny, mpnet-head64)"
    "train100 bf16 vs CPU fp32 (head64)"
    "train100 fp32 vs CPU fp32 (head64)"
    "sts fp32, library (tiny)"
    "sts bf16, library (tiny)"
    "bertbase bf16 vs CPU fp32 (1000 sentences)"
    "bertbase fp32 vs CPU fp32 (1000 sentences)"
    "sts fp32, wp-tokenize | embed | spearman"
    "sts bf16, wp-tokenize | embed | spearman"
    "mini-batch fp32: cached = uncached losses (tiny)"
    "nccl one rank (comm_nccl)")
[ "$sanitize" = 1 ] && expected+=("compute-sanitizer memcheck, fixtures fp32")

rows=()
names=()
passed=0
failed=0
row() { # NAME PASS|FAIL DETAIL
    rows+=("$(printf '%-44s %-5s %s' "$1" "$2" "$3")")
    names+=("$1")
    if [ "$2" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    printf '== %-44s %-5s %s\n' "$1" "$2" "$3" | tee -a "$LOG"
}

summary() {
    local e n seen
    for e in "${expected[@]}"; do
        seen=0
        for n in "${names[@]}"; do [ "$n" = "$e" ] && seen=1; done
        [ $seen = 1 ] || row "$e" FAIL "did not run"
    done
    {
        echo
        printf '%-44s %-5s %s\n' check result detail
        for r in "${rows[@]}"; do echo "$r"; done
        [ "$sanitize" = 1 ] || echo "(compute-sanitizer not run: tests/gpu/check.sh --sanitize)"
        echo "$(($(date +%s) - T0)) s"
        # The count, last: anything but PASS failed.
        echo "gpu-check: $passed passed, $failed failed"
    } | tee "$LOGDIR/summary.txt"
}

# "exit N", or "killed by signal S" for a crash (exit status above 128).
status_text() {
    if [ "$1" -gt 128 ]; then echo "killed by signal $(($1 - 128))"; else echo "exit $1"; fi
}

# A TAP program: PASS when it exits 0 with no "not ok" and some "ok"; a
# skip (no usable GPU), a crash or no test at all is a FAIL.
tap() { # NAME COMMAND...
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "--- $name: $*" "$out" >>"$LOG"
    local pass fail
    pass=$(grep -c '^ok ' <<<"$out")
    fail=$(grep -c '^not ok ' <<<"$out")
    local skipped
    skipped=$(grep -c '^ok .*# SKIP' <<<"$out")
    if grep -q '^1\.\.0 # SKIP' <<<"$out"; then
        row "$name" FAIL "skipped: $(sed -n 's/^1\.\.0 # SKIP //p' <<<"$out")"
    elif [ "$skipped" -gt 0 ]; then
        row "$name" FAIL "$skipped skipped: $(grep -m1 '^ok .*# SKIP' <<<"$out" | sed 's/.*# SKIP //')"
    elif [ "$rc" -eq 0 ] && [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]; then
        row "$name" PASS "$pass/$((pass + fail))"
    else
        row "$name" FAIL "$pass/$((pass + fail)) ok, $(status_text "$rc")"
        grep -E '^not ok |^[a-z0-9_-]+: ' <<<"$out" | head -20 | sed 's/^/    /'
    fi
    grep '^# ' <<<"$out" | head -12 | sed 's/^/    /'
    grep '^cuda: matmul plans: ' <<<"$out" | sed 's/^/    /'
}

# ---- the CUDA toolkit ---------------------------------------------------
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
fi
cuda_home=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
export LD_LIBRARY_PATH=$cuda_home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ "$cpu_build" = 0 ] &&
    { [ ! -e "$cuda_home/lib64/libcublasLt.so" ] || [ ! -e "$cuda_home/include/cublasLt.h" ]; }; then
    # cuBLAS from Python's nvidia wheels instead, linked through unversioned names.
    wheel=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
    lt=$(find "${wheel:-/nonexistent}/nvidia" -name 'libcublasLt.so.*' 2>/dev/null | head -1)
    if [ -n "$lt" ]; then
        links=$PWD/$O/cublas-links
        mkdir -p "$links"
        ln -sf "$lt" "$links/libcublasLt.so"
        ln -sf "$(ls "$(dirname "$lt")"/libcublas.so.* | head -1)" "$links/libcublas.so"
        export CFLAGS="-O2 -g -march=x86-64-v2 -L$links"
        export NVCCFLAGS="-O2 -g -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 -I$(dirname "$(dirname "$lt")")/include"
        export LD_LIBRARY_PATH=$(dirname "$lt"):$LD_LIBRARY_PATH
        echo "cuBLAS from $(dirname "$lt")" | tee -a "$LOG"
    fi
fi
echo "device: $(nvidia-smi -L 2>&1 | head -1)" | tee -a "$LOG"
echo "nvcc: $(nvcc --version 2>&1 | tail -1) ($cuda_home)" | tee -a "$LOG"
[ "$cpu_build" = 1 ] && echo "--cpu-build: the CUDA objects are not required" | tee -a "$LOG"

# ---- build --------------------------------------------------------------
# Without the jansson, utf8proc and OpenBLAS development files (the GPU
# machine has none), with the static copies prepare.sh put in $FIX/deps.
if pkg-config --exists jansson libutf8proc openblas 2>/dev/null; then
    pkgconf=pkg-config
else
    pkgconf=$FIX/deps/pkg-config
    echo "jansson/utf8proc/openblas development files missing: building with $FIX/deps" | tee -a "$LOG"
fi
build() {
    make -f Makefile -f tests/gpu/gpu.mk O="$O" PKG_CONFIG="$pkgconf" -j"$J" "$@" \
        >>"$LOGDIR/build.log" 2>&1 || return 1
    [ "$cpu_build" = 1 ] || [ -f "$O/lib/bertpipe/libbertpipe-cuda.so" ] ||
        { echo "no $O/lib/bertpipe/libbertpipe-cuda.so: built without nvcc" >>"$LOGDIR/build.log"; return 1; }
}
: >"$LOGDIR/build.log"
for tool in make cc; do
    command -v $tool >/dev/null || echo "check.sh: no $tool on this machine" | tee -a "$LOGDIR/build.log"
done
if build all gpu-checks; then
    row "$build_name" PASS "$(grep -c 'warning' "$LOGDIR/build.log") warnings"
else
    row "$build_name" FAIL "see build.log"
    tail -30 "$LOGDIR/build.log" | tee -a "$LOG"
    # The library and the check programs alone may still build.
    if ! build gpu-checks; then
        row "build (make gpu-checks)" FAIL "see build.log"
        summary
        exit 1
    fi
    row "build (make gpu-checks)" PASS "library and check programs only"
fi
C=$O/gpu-checks

# ---- the checks ---------------------------------------------------------
tap "unit test encoder" "$O/tests/encoder"
tap "fixtures fp32 (tiny, head64)" "$C/fixtures" fp32
tap "fixtures bf16 (tiny, head64)" "$C/fixtures" bf16
tap "fixtures fp32 (mpnet-tiny, mpnet-head64)" "$C/fixtures" fp32 mpnet-tiny mpnet-head64
tap "fixtures bf16 (mpnet-tiny, mpnet-head64)" "$C/fixtures" bf16 mpnet-tiny mpnet-head64
# With the matrix-product plan cache's counts (lib/cuda/matmul.cu) at exit.
tap "train100 bf16 vs CPU fp32 (head64)" env BP_CUDA_PLAN_STATS=1 "$C/train100" bf16 "$FIX/train100.cpu.txt"
tap "train100 fp32 vs CPU fp32 (head64)" env BP_CUDA_PLAN_STATS=1 "$C/train100" fp32 "$FIX/train100.cpu.txt"
tap "sts fp32, library (tiny)" "$C/sts" fp32
tap "sts bf16, library (tiny)" "$C/sts" bf16
export BERT_BASE_CONFIG=tests/gpu/bert-base-config.json
tap "bertbase bf16 vs CPU fp32 (1000 sentences)" "$C/bertbase" bf16 "$FIX/bertbase.cpu.f32"
tap "bertbase fp32 vs CPU fp32 (1000 sentences)" "$C/bertbase" fp32 "$FIX/bertbase.cpu.f32"

# ---- the pipeline: wp-tokenize | embed --device cuda | spearman -----------
tiny=$FIX/fixtures/tiny/model
csv=$FIX/data/stsbenchmark/sts-dev.csv
cut -f5 "$csv" >"$WORK/sts-gold.txt"
for p in fp32 bf16; do
    name="sts $p, wp-tokenize | embed | spearman"
    cut -f6,7 "$csv" | "$O/bin/wp-tokenize" -m "$tiny" >"$WORK/sts.tok" 2>"$WORK/tool.err"
    rc=${PIPESTATUS[1]}
    if [ "$rc" -ne 0 ]; then
        row "$name" FAIL "wp-tokenize $(status_text "$rc"): $(head -1 "$WORK/tool.err")"
        continue
    fi
    "$O/bin/embed" -m "$tiny" --device cuda --precision $p "$WORK/sts.tok" >"$WORK/sts.$p.emb" \
        2>"$WORK/tool.err"
    rc=$?
    cat "$WORK/tool.err" >>"$LOG"
    if [ "$rc" -ne 0 ]; then
        row "$name" FAIL "embed --device cuda $(status_text "$rc"): $(tail -1 "$WORK/tool.err")"
        continue
    fi
    "$O/bin/spearman" -g "$WORK/sts-gold.txt" --scores "$WORK/sts.$p.emb" >"$WORK/sts.$p.out" \
        2>"$WORK/tool.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        row "$name" FAIL "spearman $(status_text "$rc"): $(tail -1 "$WORK/tool.err")"
        continue
    fi
    rho=$(awk '$1 == "spearman" { print $2 }' "$WORK/sts.$p.out")
    if [ $p = fp32 ]; then
        err=$(grep -v '^spearman' "$WORK/sts.$p.out" | paste - "$FIX/fixtures/tiny/sts-dev.cosine.txt" |
            awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ } END { printf "%.3g %d", m, n }')
        if awk -v e="${err% *}" -v n="${err#* }" 'BEGIN { exit !(n == 1500 && e <= 1e-5) }'; then
            row "$name" PASS "cosines max error ${err% *} (n ${err#* }); spearman $rho"
        else
            row "$name" FAIL "cosines max error ${err% *} (n ${err#* }); spearman $rho"
        fi
    elif awk -v r="$rho" 'BEGIN { d = r - 0.494386; if (d < 0) d = -d; exit !(r != "" && d <= 2e-3) }'; then
        row "$name" PASS "spearman $rho (reference 0.494386)"
    else
        row "$name" FAIL "spearman $rho (reference 0.494386)"
    fi
done

# ---- cached MNR (--mini-batch) on the GPU: the uncached run's losses -------
name="mini-batch fp32: cached = uncached losses (tiny)"
mkdir -p "$WORK/tiny-drop"
cp "$tiny"/* "$WORK/tiny-drop/"
sed -i 's/"attention_probs_dropout_prob": 0.0/"attention_probs_dropout_prob": 0.1/;
        s/"hidden_dropout_prob": 0.0/"hidden_dropout_prob": 0.1/' "$WORK/tiny-drop/config.json"
head -n 256 "$csv" | cut -f6,7 | "$O/bin/wp-tokenize" -m "$tiny" >"$WORK/pairs.tok" 2>"$WORK/tool.err"
mb_status=ok
for mb in 0 16; do
    "$O/bin/mnr-train" -m "$WORK/tiny-drop" -o "$WORK/mb$mb" --device cuda --precision fp32 \
        --batch-size 64 --max-steps 3 --warmup 0 --adam-eps 1e-6 --mini-batch $mb \
        --log "$WORK/mb$mb.jsonl" "$WORK/pairs.tok" 2>>"$WORK/tool.err" ||
        mb_status="mnr-train --mini-batch $mb failed: $(tail -1 "$WORK/tool.err")"
done
cat "$WORK/tool.err" >>"$LOG"
if [ "$mb_status" != ok ]; then
    row "$name" FAIL "$mb_status"
else
    loss_of() { grep -o '"loss":[^,]*' "$1" | cut -d: -f2; }
    diff=$(paste <(loss_of "$WORK/mb0.jsonl") <(loss_of "$WORK/mb16.jsonl") |
        awk '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d; n++ } END { printf "%.3g %d", m, n }')
    if awk -v e="${diff% *}" -v n="${diff#* }" 'BEGIN { exit !(n == 3 && e <= 1e-6) }'; then
        row "$name" PASS "losses of 3 steps within ${diff% *} relative"
    else
        row "$name" FAIL "losses: max relative difference ${diff% *} over ${diff#* } steps"
    fi
fi

# ---- data parallelism: NCCL on one GPU ------------------------------------
tap "nccl one rank (comm_nccl)" "$C/nccl"

# ---- memory errors (--sanitize only) --------------------------------------
if [ "$sanitize" = 1 ]; then
    name="compute-sanitizer memcheck, fixtures fp32"
    if ! command -v compute-sanitizer >/dev/null; then
        row "$name" FAIL "no compute-sanitizer on this machine"
    else
        out=$(compute-sanitizer --tool memcheck "$C/fixtures" fp32 2>&1)
        printf '%s\n' "--- compute-sanitizer memcheck fixtures fp32" "$out" >>"$LOG"
        verdict=$(grep -o 'ERROR SUMMARY: [0-9]* error' <<<"$out" | tail -1)
        if grep -q '^1\.\.0 # SKIP' <<<"$out"; then
            row "$name" FAIL "skipped: $(sed -n 's/^1\.\.0 # SKIP //p' <<<"$out")"
        elif [ "$verdict" = "ERROR SUMMARY: 0 error" ]; then
            row "$name" PASS "no memory errors"
        elif [ -n "$verdict" ]; then
            row "$name" FAIL "${verdict#ERROR SUMMARY: }s, see check.log"
            grep -m 10 -A 6 '^========= Invalid\|^========= Program hit' <<<"$out" | sed 's/^/    /'
        else
            row "$name" FAIL "no verdict: $(tail -1 <<<"$out")"
        fi
    fi
fi

summary
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
