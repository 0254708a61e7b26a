#!/bin/bash
# The cost of data parallelism on one machine: mnr-train as 1 process with
# 2 threads, 1 process with 1 thread, and 2 MPI ranks with 1 thread each
# (mpirun -np 2), on the same batches: pairs/s, the bytes each rank sends
# into collectives per step, the seconds rank 0 spends in them per step
# (coll_s: the transfers) and waiting for the other rank to arrive at them
# (wait_s: its compute took longer).  On 2 cores, 2 ranks of 1 thread
# should match 1 process of 2 threads: the difference is the overhead.
#
#   scripts/bench-ranks.sh     (after make with MPI; SHARED, BINDIR, SHAPES,
#                               WARMUP_STEPS, STEPS override the defaults;
#                               make bench-ranks)
#
# Shapes (SHAPES, default "minilm-l6 bert-base"), random weights
# (--init-from-config), vocabulary 30522, 512 positions:
#   minilm-l6   6 layers, hidden 384, 12 heads, feed-forward 1536
#   bert-base   12 layers, hidden 768, 12 heads, feed-forward 3072
# Data: the entailment pairs of $SHARED/data/nli (SNLI dev+test, MultiNLI
# samples; nli-filter), wp-tokenize --max-length 128 with bert-base-uncased's
# vocabulary (the tiny fixture's), batches of 32 in input order
# (--no-shuffle), dropout 0.1, lr 2e-5; WARMUP_STEPS + STEPS steps (default
# 2 + 8), the first WARMUP_STEPS not timed.  pairs/s: rows of the timed
# steps over their seconds (the log's examples_per_s); bytes/step, coll_s
# and wait_s: mnr-train's closing line (all steps).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
BINDIR=${BINDIR:-build/bin}
WARMUP_STEPS=${WARMUP_STEPS:-2}
STEPS=${STEPS:-8}
SHAPES=${SHAPES:-minilm-l6 bert-base}
prog=bench-ranks
die() { echo "$prog: $*" >&2; exit 1; }

[ -d "$BINDIR" ] || die "$BINDIR: no such directory (run make)"
PATH=$(cd "$BINDIR" && pwd):$PATH
command -v mpirun >/dev/null || die "needs mpirun (scripts/install-deps.sh installs OpenMPI)"
command -v jq >/dev/null || die "needs jq"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
vocab=$SHARED/fixtures/tiny/model
. scripts/bench-common.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nli_pairs >"$tmp/all.tsv"
head -n 2000 "$tmp/all.tsv" >"$tmp/pairs.tsv"
wp-tokenize -m "$vocab" --max-length 128 "$tmp/pairs.tsv" >"$tmp/pairs.npy"
total=$((WARMUP_STEPS + STEPS))

drop='.hidden_dropout_prob = 0.1 | .attention_probs_dropout_prob = 0.1'
shape_config "$tmp/minilm-l6" "$vocab" 6 384 12 1536 "$drop"
shape_config "$tmp/bert-base" "$vocab" 12 768 12 3072 "$drop"

# pairs/s of the timed steps of a log
rate() {
    jq -s --argjson skip "$WARMUP_STEPS" \
        '[.[] | select(has("loss"))][$skip:] | (map(32) | add) / (map(32 / .examples_per_s) | add)' "$1"
}

echo "data parallelism on this machine: $total steps of batch 32, the first $WARMUP_STEPS not timed;" \
    "$(nproc) cores; OMP_WAIT_POLICY=$OMP_WAIT_POLICY; load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "$(mnr-train --version | head -n 1); $(mpirun --version 2>&1 | head -n 1)"
printf '%-10s %-28s %9s %14s %14s %14s\n' shape run pairs/s bytes/step coll_s/step wait_s/step
for shape in $SHAPES; do
    case $shape in minilm-l6 | bert-base) ;; *) die "$shape: unknown shape (minilm-l6, bert-base)" ;; esac
    common=(--init-from-config "$tmp/$shape/config.json" --no-shuffle --batch-size 32 --lr 2e-5
        --max-length 128 --max-steps "$total" --device cpu "$tmp/pairs.npy")
    for run in "1 process, 2 threads" "1 process, 1 thread" "2 ranks, 1 thread each"; do
        rm -rf "$tmp/out"
        case $run in
        "1 process, 2 threads") cmd=(mnr-train --threads 2) ;;
        "1 process, 1 thread") cmd=(mnr-train --threads 1) ;;
        *) cmd=(mpirun -np 2 --bind-to none mnr-train --threads 1) ;;
        esac
        "${cmd[@]}" "${common[@]}" -o "$tmp/out" --log "$tmp/log.jsonl" 2>"$tmp/err" ||
            { cat "$tmp/err" >&2; die "$shape, $run: mnr-train failed"; }
        bytes=- coll=- wait=-
        if line=$(grep 'bytes sent into collectives per step' "$tmp/err"); then
            read -r bytes coll wait < <(sed 's/.*: \([0-9]*\) bytes.*step, \([0-9.]*\) s in them, \([0-9.]*\) s.*/\1 \2 \3/' <<<"$line")
            coll=$(awk -v s="$coll" -v w="$wait" -v n="$total" 'BEGIN { printf "%.3f", (s - w) / n }')
            wait=$(awk -v w="$wait" -v n="$total" 'BEGIN { printf "%.3f", w / n }')
        fi
        printf '%-10s %-28s %9.2f %14s %14s %14s\n' "$shape" "$run" "$(rate "$tmp/log.jsonl")" "$bytes" \
            "$coll" "$wait"
    done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
