#!/usr/bin/env bats
# mnr-train --mini-batch (cached MNR, GradCache): a cached run computes the
# training of the uncached run of the same batch — per-step losses within
# 1e-6 relative, weights after 5 steps within 1e-5 x max(0.01, the tensor's
# largest magnitude) — with dropout 0.1, for pairs, triplets and symmetric
# MNR on both fixture models; the same as sentence-transformers'
# CachedMultipleNegativesRankingLoss; checkpoints and resume keep it.
load helper
bats_require_minimum_version 1.5.0

PY=$BATS_TEST_DIRNAME/../py
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# 320 random pairs and triplets (batch 64: 5 steps) of ids both fixture
# vocabularies hold, and copies of the fixture models with dropout 0.1.
setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        dropout_copy "$FIXTURES/$m/model" "$m-drop"
    done
    python3 - <<'EOF'
import numpy as np

rng = np.random.default_rng(12)


def seq():
    return [101] + list(rng.integers(1000, 4000, size=rng.integers(3, 40))) + [102]


def save(path, columns):
    rows = [[seq() for _ in range(columns)] for _ in range(320)]
    T = max(len(s) for r in rows for s in r)
    a = np.full((len(rows), columns, T), -1, dtype="<i4")
    for i, r in enumerate(rows):
        for c, s in enumerate(r):
            a[i, c, : len(s)] = s
    with open(path, "wb") as f:
        np.save(f, a)


save("pairs.npy", 2)
save("triplets.npy", 3)
EOF
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    S=$BATS_FILE_TMPDIR
    python3 -c 'import numpy, safetensors' 2>/dev/null ||
        skip "numpy and safetensors are not installed (python3 -m pip install numpy safetensors)"
}

# train MODEL DATA OUT [options]: 5 steps of batch 64 at the default lr
# (2e-5) from the first step, one thread.  (At lr 1e-3 AdamW's first steps
# turn the float rounding of gradients near eps into weight differences of
# about lr / (4 eps) times it, above the tolerance; tests/unit/trainer.c
# compares the gradients themselves.)
train() {
    local model=$1 data=$2 out=$3
    shift 3
    mnr-train -m "$S/$model" -o "$out" --batch-size 64 --warmup 0 --adam-eps 1e-6 \
        --threads 1 --log "$out.jsonl" "$@" "$S/$data" 2>"$out.err" || { cat "$out.err"; return 1; }
}

# same MODEL DATA [options]: uncached, then mini-batches of 8 and of 7 (the
# last of each column short), each compared with the uncached run.
same() {
    local model=$1 data=$2
    shift 2
    train "$model" "$data" full "$@"
    for m in 8 7; do
        train "$model" "$data" "mb$m" --mini-batch "$m" "$@"
        echo "--mini-batch $m:"
        python3 "$PY/compare_runs.py" "mb$m.jsonl" full.jsonl "mb$m/model.safetensors" \
            full/model.safetensors
    done
}

@test "pairs, tiny with dropout: cached runs equal the uncached run" {
    same tiny-drop pairs.npy
}

@test "pairs, head64 with dropout: cached runs equal the uncached run" {
    same head64-drop pairs.npy
}

@test "triplets (hard negatives), tiny with dropout: cached runs equal the uncached run" {
    same tiny-drop triplets.npy
}

@test "triplets (hard negatives), head64 with dropout: cached runs equal the uncached run" {
    same head64-drop triplets.npy
}

@test "symmetric MNR, tiny with dropout: cached runs equal the uncached run" {
    same tiny-drop pairs.npy --symmetric
}

@test "symmetric MNR, head64 with dropout: cached runs equal the uncached run" {
    same head64-drop pairs.npy --symmetric
}

@test "the comparison fails on another training: dropout masks of another seed" {
    train tiny-drop pairs.npy other --mini-batch 8 --seed 43 --no-shuffle
    train tiny-drop pairs.npy ref --no-shuffle
    run python3 "$PY/compare_runs.py" other.jsonl ref.jsonl other/model.safetensors \
        ref/model.safetensors
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"weights: largest difference"* ]]
}

@test "a mini-batch as large as the batch is one pass; 0 is no caching" {
    train tiny-drop pairs.npy full --max-steps 2
    train tiny-drop pairs.npy big --max-steps 2 --mini-batch 128
    train tiny-drop pairs.npy zero --max-steps 2 --mini-batch 0
    cmp full/model.safetensors big/model.safetensors
    cmp full/model.safetensors zero/model.safetensors
}

@test "the checkpoint keeps --mini-batch; resume continues the cached run bit for bit" {
    train tiny-drop pairs.npy straight --mini-batch 8
    train tiny-drop pairs.npy part --mini-batch 8 --max-steps 2 --schedule-steps 5 \
        --checkpoint-every 2
    jq -e '.options.mini_batch == 8' part.checkpoint/state.json
    # resumed without the option: the checkpoint's mini-batch
    mnr-train -o rest --resume part.checkpoint --max-steps 5 --threads 1 --log rest.jsonl \
        "$S/pairs.npy" 2>resume.err || { cat resume.err; false; }
    cmp straight/model.safetensors rest/model.safetensors
}

@test "--mini-batch: not a count is a usage error" {
    run --separate-stderr mnr-train -m "$S/tiny-drop" -o out --mini-batch -1 "$S/pairs.npy"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"--mini-batch"* ]]
    [ ! -e out ]
}

@test "sentence-transformers' CachedMultipleNegativesRankingLoss: 3 steps on the tiny fixture" {
    python3 -c 'import sentence_transformers, torch' 2>/dev/null ||
        skip "sentence-transformers is not installed (python3 -m pip install sentence-transformers)"
    python3 "$PY/fixture_stream.py" "$FIXTURES/tiny/reference.safetensors" train.npy train
    # the fixture's three batches of 6 pairs, in mini-batches of 4 sequences
    mnr-train -m "$FIXTURES/tiny/model" -o ours --batch-size 6 --no-shuffle --mini-batch 4 \
        --lr 2e-5 --warmup 2 --schedule-steps 10 --max-steps 3 --weight-decay 0.01 \
        --adam-eps 1e-6 --max-grad-norm 1 --threads 1 --log ours.jsonl train.npy 2>err ||
        { cat err; false; }
    python3 "$PY/st_cached_train.py" "$FIXTURES/tiny/model" "$FIXTURES/tiny/reference.safetensors" \
        4 2e-5 st.jsonl st.safetensors
    python3 "$PY/compare_runs.py" ours.jsonl st.jsonl ours/model.safetensors st.safetensors
}
