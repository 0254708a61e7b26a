#!/bin/bash
# train.sh RUN_DIR LOSS BASE TOKENS [MNR-TRAIN OPTION]... - one model of a run.
#
# LOSS is one of
#   none            the starting model itself, to evaluate it before fine-tuning:
#                   a link to BASE when it is a model directory; for a config.json,
#                   its random initialisation (mnr-train --max-steps 1 --lr 0, which
#                   changes no weight)
#   mnr             MultipleNegativesRankingLoss on (anchor, positive) pairs
#   mnr-triplets    the same with a hard negative per row (3-column TOKENS)
#   mnr-symmetric   MultipleNegativesSymmetricRankingLoss on pairs
#   mnr-cached      MNR on pairs in batches of CACHED_BATCH (default 512) rows,
#                   cached (mnr-train --mini-batch MINI_BATCH, default 32): more
#                   in-batch negatives at the memory of a small batch
# BASE is a model directory or a config.json (random weights, mnr-train
# --init-from-config).  TOKENS.tok is the token stream of the text TOKENS.tsv
# beside it (whose lines are the training rows counted in the table).  The model goes to RUN_DIR/models/NAME, where NAME is
# LOSS, or for `none` the starting model's name (BASE's directory name, or
# random-init); mnr-train's log to RUN_DIR/train/NAME.log, and what the table
# needs to RUN_DIR/train/NAME.json.  Further options go to mnr-train.
# LAUNCH in the environment (e.g. "mpirun -np 4") is put before mnr-train
# when it fine-tunes: several processes train the model (mnr-train(1)).
. "$(dirname "$0")/common.sh"
[ $# -ge 4 ] || die "usage: train.sh RUN_DIR LOSS BASE TOKENS [MNR-TRAIN OPTION]..."
run=$1 loss=$2 base=$3 tokens=$4
shift 4

case $base in
*.json) [ -f "$base" ] || die "$base: no such config file"
        from=(--init-from-config "$base")
        base_name=random-init
        start="random init ($(basename "$(dirname "$base")")/$(basename "$base"))" ;;
*)      [ -f "$base/config.json" ] || die "$base: not a model directory (no config.json)"
        from=(-m "$base")
        base_name=$(basename "$base")
        start=$base_name ;;
esac
case $loss in
none) name=$base_name ;;
mnr) name=mnr loss_text="MNR" opts=() ;;
mnr-triplets) name=mnr-triplets loss_text="MNR + hard negatives" opts=() ;;
mnr-symmetric) name=mnr-symmetric loss_text="MNR symmetric" opts=(--symmetric) ;;
mnr-cached) name=mnr-cached loss_text="MNR batch ${CACHED_BATCH:=512} cached" opts=() ;;
*) die "$loss: unknown loss (none, mnr, mnr-triplets, mnr-symmetric or mnr-cached)" ;;
esac
# The cached model's batch comes after the run's options, which may set
# another --batch-size for the others.
last=()
[ "$loss" = mnr-cached ] && last=(--batch-size "$CACHED_BATCH" --mini-batch "${MINI_BATCH:-32}")

if [ "$loss" != none ] || [ "${from[0]}" != -m ]; then
    [ -f "$tokens" ] || die "$tokens: no such file"
    [ -f "${tokens%.tok}.tsv" ] || die "${tokens%.tok}.tsv: no such file (the text of $tokens)"
fi
mkdir -p "$run/models" "$run/train"
model=$run/models/$name
rm -rf "$model" "$run/train/$name".*
t0=$(date +%s.%N)
if [ "$loss" = none ] && [ "${from[0]}" = -m ]; then
    say "$name: the starting model as it is"
    ln -s "$(cd "$base" && pwd)" "$model"
    start=- loss_text=none rows=0 steps=0
elif [ "$loss" = none ]; then
    say "$name: random weights from $base"
    mnr-train "${from[@]}" -o "$model" --max-steps 1 --lr 0 "$@" "$tokens"
    start=- loss_text=none rows=0 steps=0
else
    rows=$(wc -l <"${tokens%.tok}.tsv")
    say "$name: fine-tuning $start with $loss_text"
    read -ra launch <<<"${LAUNCH:-}"
    "${launch[@]}" mnr-train "${from[@]}" -o "$model" --log "$run/train/$name.log" "${opts[@]}" "$@" \
        "${last[@]}" "$tokens"
    # The log's step objects (those with a loss; evaluations add objects of
    # their own), counted by parsing it.
    steps=$(jq -n '[inputs | select(has("loss"))] | length' "$run/train/$name.log") ||
        die "$run/train/$name.log: not a training log (JSON Lines)"
fi
t1=$(date +%s.%N)
jq -n --arg model "$name" --arg start "$start" --arg loss "$loss_text" \
    --argjson steps "$steps" --argjson rows "$rows" \
    --argjson seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
    --arg options "$* ${last[*]}" \
    '{model: $model, start: $start, loss: $loss, rows: $rows, steps: $steps, seconds: $seconds, options: $options}' \
    >"$run/train/$name.json.tmp"
publish "$run/train/$name.json.tmp" "$run/train/$name.json"
