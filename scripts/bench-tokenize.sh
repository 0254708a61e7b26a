#!/bin/bash
# Tokenization speed: wp-tokenize against Hugging Face tokenizers on one core,
# then wp-tokenize under GNU parallel on all cores.
#
#   scripts/bench-tokenize.sh     (after make; SHARED, BINDIR, REPEAT and
#                                  HF_REPEAT override the defaults)
#
# Input: every sentence of STS-B train/dev and of the NLI files in
# $SHARED/data, one per line, copied REPEAT times for wp-tokenize and
# HF_REPEAT times for tokenizers: the same mix of sentences, so tokens per
# second compare, and each side gets seconds of work.  Both run pinned to one
# core (taskset), and both are timed best of 3 by wall clock, with the CPU
# time of that run alongside (the fairer figure on a busy machine):
#   - tokenizers: BertWordPieceTokenizer over the same vocabulary, lowercase,
#     one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false), all lines
#     in one call of encode_batch and of encode_batch_fast (no offsets); the
#     faster counts.  Reading the file and making the list are not timed.
#   - wp-tokenize: the whole process, reading the file, writing its stream to
#     /dev/null.
# Then all cores: parallel --pipe -k (text split into 10 MB blocks at line
# ends) and parallel --pipepart -k (the file split into one part per core),
# each checked to give the sequences of one process in the same order.
# Needs python3 with numpy and tokenizers, GNU parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
BINDIR=${BINDIR:-build/bin}
REPEAT=${REPEAT:-40}
HF_REPEAT=${HF_REPEAT:-2}
VOCAB=$SHARED/data/vocab/bert-base-uncased-vocab.txt
WP=$(cd "$BINDIR" && pwd)/wp-tokenize
HELPER=$PWD/scripts/bench_tokenize.py

[ -x "$WP" ] || { echo "bench-tokenize: $WP is not built (run make)" >&2; exit 1; }
python3 -c 'import numpy, tokenizers' 2>/dev/null ||
    { echo "bench-tokenize: needs python3 with numpy and tokenizers" >&2; exit 1; }
command -v parallel >/dev/null || { echo "bench-tokenize: needs GNU parallel" >&2; exit 1; }
ONE_CORE=()
command -v taskset >/dev/null && ONE_CORE=(taskset -c 0)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$HELPER" extract "$SHARED/data" >"$tmp/sentences.txt"
copies() { for ((i = 0; i < $1; i++)); do cat "$tmp/sentences.txt"; done; }
copies "$REPEAT" >"$tmp/wp.txt"
copies "$HF_REPEAT" >"$tmp/hf.txt"
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

echo "input: $(wc -l <"$tmp/sentences.txt") sentences, $(wc -c <"$tmp/sentences.txt") bytes" \
    "(STS-B train+dev, SNLI dev+test, MNLI samples); $(nproc) cores; load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg) at the start"

# The same ids as tokenizers, on one copy.
"$WP" -v "$VOCAB" "$tmp/sentences.txt" >"$tmp/one-copy.npy"
echo "ids identical to tokenizers: $(python3 "$HELPER" same-as-hf "$VOCAB" "$tmp/sentences.txt" "$tmp/one-copy.npy")"

# One core.
"$WP" -v "$VOCAB" "$tmp/wp.txt" >"$tmp/single.npy"
wp_tokens=$(python3 "$HELPER" tokens "$tmp/single.npy")
read -r _ wp_wall _ wp_cpu < <(python3 "$HELPER" time /dev/null /dev/null \
    "${ONE_CORE[@]}" "$WP" -v "$VOCAB" "$tmp/wp.txt")
read -r _ hf_tokens _ hf_wall _ hf_cpu _ hf_method < <(RAYON_NUM_THREADS=1 \
    TOKENIZERS_PARALLELISM=false "${ONE_CORE[@]}" python3 "$HELPER" hf "$VOCAB" "$tmp/hf.txt")
if [ $((wp_tokens * HF_REPEAT)) -ne $((hf_tokens * REPEAT)) ]; then
    echo "bench-tokenize: token counts disagree: $wp_tokens and $hf_tokens" >&2
    exit 1
fi
hf_version=$(python3 -c 'import tokenizers; print(tokenizers.__version__)')
echo "one core:"
printf '  wp-tokenize            %3d copies %9d tokens  wall %7.3f s %9.0f tokens/s  cpu %7.3f s %9.0f tokens/s\n' \
    "$REPEAT" "$wp_tokens" "$wp_wall" "$(calc "$wp_tokens / $wp_wall" 0)" "$wp_cpu" "$(calc "$wp_tokens / $wp_cpu" 0)"
printf '  tokenizers %-11s %3d copies %9d tokens  wall %7.3f s %9.0f tokens/s  cpu %7.3f s %9.0f tokens/s  (%s)\n' \
    "$hf_version" "$HF_REPEAT" "$hf_tokens" "$hf_wall" "$(calc "$hf_tokens / $hf_wall" 0)" "$hf_cpu" \
    "$(calc "$hf_tokens / $hf_cpu" 0)" "$hf_method"
echo "  ratio wp-tokenize / tokenizers: $(calc "($wp_tokens / $wp_wall) / ($hf_tokens / $hf_wall)" 1) by wall clock," \
    "$(calc "($wp_tokens / $wp_cpu) / ($hf_tokens / $hf_cpu)" 1) by cpu time"

# All cores, against one process writing a file as well.
read -r _ one_wall _ one_cpu < <(python3 "$HELPER" time "$tmp/wp.txt" "$tmp/single.npy" \
    "$WP" -v "$VOCAB")
echo "all cores ($(nproc)), $wp_tokens tokens, each writing a file; one process: wall $(calc "$one_wall" 3) s:"
read -r _ pipe_wall _ pipe_cpu < <(python3 "$HELPER" time "$tmp/wp.txt" "$tmp/pipe.npy" \
    parallel --pipe -k --block 10M "$WP" -v "$VOCAB")
echo "  parallel --pipe -k --block 10M:   wall $(calc "$pipe_wall" 3) s" \
    "$(calc "$wp_tokens / $pipe_wall" 0) tokens/s, speed-up $(calc "$one_wall / $pipe_wall")," \
    "same sequences in the same order: $(python3 "$HELPER" same "$tmp/single.npy" "$tmp/pipe.npy")"
read -r _ part_wall _ part_cpu < <(python3 "$HELPER" time /dev/null "$tmp/part.npy" \
    parallel --pipepart -a "$tmp/wp.txt" -k --block -1 "$WP" -v "$VOCAB")
echo "  parallel --pipepart -k --block -1: wall $(calc "$part_wall" 3) s" \
    "$(calc "$wp_tokens / $part_wall" 0) tokens/s, speed-up $(calc "$one_wall / $part_wall")," \
    "same sequences in the same order: $(python3 "$HELPER" same "$tmp/single.npy" "$tmp/part.npy")"
