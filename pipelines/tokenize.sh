#!/bin/bash
# tokenize.sh TOKENIZER MAX_LENGTH IN.tsv OUT.tok - token frames of every text
# column of IN.tsv: GNU parallel cuts the lines into one block per core, one
# wp-tokenize per block, and concatenates their streams in input order (-k).
# TOKENIZER is a model directory (its vocab.txt or tokenizer.json).
. "$(dirname "$0")/common.sh"
[ $# -eq 4 ] || die "usage: tokenize.sh TOKENIZER MAX_LENGTH IN.tsv OUT.tok"
model=$1 max_length=$2 in=$3 out=$4
jobs=$(cores)
size=$(wc -c <"$in")
block=$((size / jobs + 1))
[ "$block" -le 1048576 ] || block=1048576
say "$(wc -l <"$in") rows of $in, $jobs jobs"
parallel --pipe -k -j "$jobs" --block "$block" --halt now,fail=1 \
    wp-tokenize -m "$model" --max-length "$max_length" <"$in" >"$out.tmp"
publish "$out.tmp" "$out"
