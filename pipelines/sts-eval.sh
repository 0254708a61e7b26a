#!/bin/bash
# sts-eval.sh [-n ROWS] [-l MAX_LENGTH] [-t THREADS] [-d DIGITS] [-S SCORES] MODEL INPUT OUT.txt
# - evaluate the model directory MODEL on sentence pairs with gold scores.
# INPUT is an STS benchmark file (tab-separated, score in field 5, sentences
# in fields 6 and 7):
#   cut -f6,7 STS.csv | wp-tokenize -m MODEL | embed -m MODEL | spearman -g <(cut -f5 STS.csv)
# or a pairs file NAME.tsv (two sentences a line) with NAME.gold beside it (a
# score a line, empty for an unscored pair: spearman --skip-empty), as
# fetch-data.sh prepares the STS suite.  OUT.txt gets spearman's line
# ("spearman R pearson R n N", then "skipped K" for a pairs file).  -n: only
# the first ROWS pairs (default all); -l: --max-length of wp-tokenize (default
# 128, as the seed); -t: embed's threads (default all cores); -d: spearman's
# --digits (default 6); -S: also write each pair's cosine to SCORES (spearman
# --scores: 9 decimals, line k = pair k).
. "$(dirname "$0")/common.sh"
rows='' max_length=128 threads=0 digits=6 scores=''
usage="usage: sts-eval.sh [-n ROWS] [-l MAX_LENGTH] [-t THREADS] [-d DIGITS] [-S SCORES] MODEL INPUT OUT.txt"
while getopts n:l:t:d:S: opt; do
    case $opt in
    n) rows=$OPTARG ;;
    l) max_length=$OPTARG ;;
    t) threads=$OPTARG ;;
    d) digits=$OPTARG ;;
    S) scores=$OPTARG ;;
    *) die "$usage" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || die "$usage"
model=$1 input=$2 out=$3
[ -f "$input" ] || die "$input: no such file"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sts-eval.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
first() { if [ -n "$rows" ]; then head -n "$rows" "$1"; else cat "$1"; fi; }
spearman_opts=(--digits "$digits")
if [[ $input == *.tsv ]]; then
    gold=${input%.tsv}.gold
    [ -f "$gold" ] || die "$gold: no such file (the gold scores of $input)"
    first "$input" >"$tmp/pairs.tsv"
    first "$gold" >"$tmp/gold.txt"
    spearman_opts+=(--skip-empty)
else
    first "$input" >"$tmp/sts.csv"
    cut -f5 "$tmp/sts.csv" >"$tmp/gold.txt"
    cut -f6,7 "$tmp/sts.csv" >"$tmp/pairs.tsv"
fi
[ -z "$scores" ] || spearman_opts+=(--scores)
thread_opt=()
[ "$threads" -gt 0 ] && thread_opt=(--threads "$threads")
wp-tokenize -m "$model" --max-length "$max_length" <"$tmp/pairs.tsv" |
    embed -m "$model" "${thread_opt[@]}" |
    spearman -g "$tmp/gold.txt" "${spearman_opts[@]}" >"$tmp/out"
if [ -n "$scores" ]; then
    head -n -1 "$tmp/out" >"$scores.tmp"
    publish "$scores.tmp" "$scores"
fi
tail -n 1 "$tmp/out" >"$out.tmp"
publish "$out.tmp" "$out"
echo "$(basename "$out" .txt): $(cat "$out")"
