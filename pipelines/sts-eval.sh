#!/bin/bash
# sts-eval.sh [-n ROWS] [-l MAX_LENGTH] [-t THREADS] MODEL STS.csv OUT.txt -
# evaluate the model directory MODEL on an STS benchmark file (tab-separated,
# score in field 5, sentences in fields 6 and 7):
#   cut -f6,7 STS.csv | wp-tokenize -m MODEL | embed -m MODEL | spearman -g <(cut -f5 STS.csv)
# OUT.txt gets spearman's line ("spearman R pearson R n N").  -n: only the first
# ROWS pairs (default all); -l: --max-length of wp-tokenize (default 128, as the
# seed); -t: embed's threads (default all cores).
. "$(dirname "$0")/common.sh"
rows='' max_length=128 threads=0
while getopts n:l:t: opt; do
    case $opt in
    n) rows=$OPTARG ;;
    l) max_length=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) die "usage: sts-eval.sh [-n ROWS] [-l MAX_LENGTH] [-t THREADS] MODEL STS.csv OUT.txt" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || die "usage: sts-eval.sh [-n ROWS] [-l MAX_LENGTH] [-t THREADS] MODEL STS.csv OUT.txt"
model=$1 sts=$2 out=$3
[ -f "$sts" ] || die "$sts: no such file"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sts-eval.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ -n "$rows" ]; then head -n "$rows" "$sts"; else cat "$sts"; fi >"$tmp/sts.csv"
cut -f5 "$tmp/sts.csv" >"$tmp/gold.txt"
thread_opt=()
[ "$threads" -gt 0 ] && thread_opt=(--threads "$threads")
cut -f6,7 "$tmp/sts.csv" |
    wp-tokenize -m "$model" --max-length "$max_length" |
    embed -m "$model" "${thread_opt[@]}" |
    spearman -g "$tmp/gold.txt" >"$out.tmp"
publish "$out.tmp" "$out"
echo "$(basename "$out" .txt): $(cat "$out")"
