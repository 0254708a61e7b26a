#!/bin/bash
# suite-eval.sh [-l MAX_LENGTH] RUN_DIR PAIRS_DIR - evaluate every model of
# RUN_DIR/models on the STS suite that fetch-data.sh prepared in PAIRS_DIR
# (DATA/sts-suite/pairs: STS12/ ... STS16/ with a NAME.tsv + NAME.gold per
# subset, STSb-test.*, SICK-R-test.*): one sts-eval.sh per model and subset,
# run side by side by GNU parallel (cores shared out between the jobs), each
# writing RUN_DIR/suite/MODEL/SET[/SUBSET].txt (spearman's line) and .scores
# (each pair's cosine, for the pooled score of a year).  The models are only
# read, never trained.  An evaluation is redone only when its file is older
# than the model's train/MODEL.json or than the gold scores.  Then suite.sh
# writes the tables.
. "$(dirname "$0")/common.sh"
max_length=128
usage="usage: suite-eval.sh [-l MAX_LENGTH] RUN_DIR PAIRS_DIR"
while getopts l: opt; do
    case $opt in
    l) max_length=$OPTARG ;;
    *) die "$usage" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || die "$usage"
run=$1 pairs=$2
here=$(dirname "$0")
[ -d "$pairs" ] || die "$pairs: no such directory (scripts/fetch-data.sh prepares it)"
shopt -s nullglob
models=()
for m in "$run"/models/*/; do
    # MODEL.checkpoint: what an interrupted training left, not a model of the run
    case $m in *.checkpoint/) ;; *) models+=("$m") ;; esac
done
[ ${#models[@]} -gt 0 ] || die "$run/models: no models (train them first, e.g. make demo)"
sets=("$pairs"/STS1[2-6]/*.tsv "$pairs"/*.tsv)
[ ${#sets[@]} -gt 0 ] || die "$pairs: no sets (scripts/fetch-data.sh prepares them)"

jobs=()
for model in "${models[@]}"; do
    model=${model%/}
    name=$(basename "$model")
    info=$run/train/$name.json
    [ -f "$info" ] || die "$model: no $info (made by train.sh)"
    for tsv in "${sets[@]}"; do
        rel=${tsv#"$pairs"/} && rel=${rel%.tsv}
        out=$run/suite/$name/$rel.txt
        mkdir -p "$(dirname "$out")"
        if [ -f "$out" ] && [ -f "${out%.txt}.scores" ] && [ "$out" -nt "$info" ] &&
            [ "$out" -nt "${tsv%.tsv}.gold" ]; then
            echo "$name $rel: $(cat "$out") (done before)"
            continue
        fi
        jobs+=("$model"$'\t'"$tsv"$'\t'"$out")
    done
done
if [ ${#jobs[@]} -gt 0 ]; then
    cores=$(cores)
    n=${#jobs[@]}
    [ "$n" -le "$cores" ] || n=$cores
    threads=$((cores / n))
    say "${#jobs[@]} evaluations, $n at a time, $threads threads each"
    printf '%s\n' "${jobs[@]}" |
        parallel -q -j "$n" --colsep '\t' --halt now,fail=1 \
            "$here/sts-eval.sh" -l "$max_length" -t "$threads" -d 9 -S '{3.}.scores' '{1}' '{2}' '{3}'
fi
"$here/suite.sh" "$run" "$pairs"
