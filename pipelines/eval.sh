#!/bin/bash
# eval.sh [-n ROWS] [-l MAX_LENGTH] RUN_DIR STS_DIR - evaluate every model of
# RUN_DIR/models on STS-B dev, and test where STS_DIR has sts-test.csv: one
# sts-eval.sh per model and split, run side by side by GNU parallel (cores
# shared out between the jobs), each writing RUN_DIR/eval/MODEL.SPLIT.txt.
# An evaluation is redone only when its file is older than the model's
# train/MODEL.json or holds another number of pairs.  -n and -l: as sts-eval.sh.
. "$(dirname "$0")/common.sh"
rows='' max_length=128
while getopts n:l: opt; do
    case $opt in
    n) rows=$OPTARG ;;
    l) max_length=$OPTARG ;;
    *) die "usage: eval.sh [-n ROWS] [-l MAX_LENGTH] RUN_DIR STS_DIR" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || die "usage: eval.sh [-n ROWS] [-l MAX_LENGTH] RUN_DIR STS_DIR"
run=$1 sts=$2
here=$(dirname "$0")
mkdir -p "$run/eval"

jobs=()
for model in "$run"/models/*/; do
    model=${model%/}
    name=$(basename "$model")
    # MODEL.checkpoint: what an interrupted training left, not a model of the run
    case $name in *.checkpoint) continue ;; esac
    [ -f "$run/train/$name.json" ] || die "$model: no $run/train/$name.json (made by train.sh)"
    for split in dev test; do
        csv=$sts/sts-$split.csv
        [ -f "$csv" ] || continue
        out=$run/eval/$name.$split.txt
        want=$(wc -l <"$csv")
        [ -n "$rows" ] && [ "$rows" -lt "$want" ] && want=$rows
        if [ -f "$out" ] && [ "$out" -nt "$run/train/$name.json" ] &&
            [ "$(awk '{ print $6 }' "$out")" = "$want" ]; then
            echo "$name.$split: $(cat "$out") (done before)"
            continue
        fi
        jobs+=("$model"$'\t'"$csv"$'\t'"$out")
    done
done
[ -f "$sts/sts-dev.csv" ] || die "$sts/sts-dev.csv: no such file"
[ ${#jobs[@]} -gt 0 ] || exit 0

cores=$(cores)
n=${#jobs[@]}
[ "$n" -le "$cores" ] || n=$cores
threads=$((cores / n))
say "${#jobs[@]} evaluations, $n at a time, $threads threads each"
printf '%s\n' "${jobs[@]}" |
    parallel -q -j "$n" --colsep '\t' --halt now,fail=1 \
        "$here/sts-eval.sh" ${rows:+-n "$rows"} -l "$max_length" -t "$threads" '{1}' '{2}' '{3}'
