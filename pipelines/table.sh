#!/bin/bash
# table.sh RUN_DIR - the comparison table of a run: one row per model of
# RUN_DIR/train/*.json (the starting models first, then the fine-tuned ones by
# name) with its STS-B results from RUN_DIR/eval/MODEL.SPLIT.txt.  Writes
# RUN_DIR/table.tsv (correlations as spearman printed them), RUN_DIR/table.json
# (the same rows as objects; a missing evaluation is null) and prints the table
# for people on standard output, correlations x100.
. "$(dirname "$0")/common.sh"
[ $# -eq 1 ] || die "usage: table.sh RUN_DIR"
run=$1
shopt -s nullglob
infos=("$run"/train/*.json)
[ ${#infos[@]} -gt 0 ] || die "$run/train: no models (run train.sh first)"
splits=(dev)
evals=("$run"/eval/*.test.txt)
[ ${#evals[@]} -eq 0 ] || splits+=(test)

{
    header="model	start	loss	rows	steps	train_seconds"
    for s in "${splits[@]}"; do
        header+="	sts_${s}_spearman	sts_${s}_pearson	sts_${s}_n"
    done
    echo "$header"
    jq -rs 'sort_by(.loss != "none", .model)[] | [.model, .start, .loss, .rows, .steps, .seconds] | @tsv' \
        "${infos[@]}" |
        while IFS=$'\t' read -r model rest; do
            line="$model	$rest"
            for s in "${splits[@]}"; do
                f=$run/eval/$model.$s.txt
                # spearman's line: "spearman R pearson R n N"
                if [ -f "$f" ]; then
                    line+=$(awk '{ printf "\t%s\t%s\t%s", $2, $4, $6 }' "$f")
                else
                    line+="	-	-	-"
                fi
            done
            echo "$line"
        done
} >"$run/table.tsv.tmp"
publish "$run/table.tsv.tmp" "$run/table.tsv"

jq -Rn '[inputs | split("\t")] | .[0] as $head | .[1:]
        | map([$head, .] | transpose
              | map({(.[0]): (if .[1] == "-" then null else (.[1] | tonumber? // .) end)}) | add)' \
    "$run/table.tsv" >"$run/table.json.tmp"
publish "$run/table.json.tmp" "$run/table.json"

# For people: Spearman and Pearson x100 with 2 decimals, columns aligned.
awk -F'\t' -v run="$(basename "$run")" '
function x100(v) { return v == "-" ? "-" : sprintf("%.2f", 100 * v) }
NR == 1 {
    ncol = split("model|start|loss|rows|steps", head, "|")
    for (i = 7; i <= NF; i += 3) {
        split($i, part, "_")
        head[++ncol] = "STS-B " part[2] " Spearman"
        head[++ncol] = "Pearson"
    }
    next
}
{
    row++
    cell[row, 1] = $1; cell[row, 2] = $2; cell[row, 3] = $3; cell[row, 4] = $4; cell[row, 5] = $5
    c = 5
    for (i = 7; i <= NF; i += 3) {
        cell[row, ++c] = x100($i); cell[row, ++c] = x100($(i + 1))
        if ($(i + 2) != "-") pairs[part_name(i)] = $(i + 2)
    }
}
function part_name(i) { return i == 7 ? "dev" : "test" }
END {
    for (j = 1; j <= ncol; j++) width[j] = length(head[j])
    for (r = 1; r <= row; r++)
        for (j = 1; j <= ncol; j++)
            if (length(cell[r, j]) > width[j]) width[j] = length(cell[r, j])
    printf "run %s: STS-B correlations x100", run
    for (p in pairs) printf ", %s %s pairs", p, pairs[p]
    printf "\n"
    for (j = 1; j <= ncol; j++)
        printf (j <= 3 ? "%-*s" : "%*s") (j < ncol ? "  " : "\n"), width[j], head[j]
    for (r = 1; r <= row; r++)
        for (j = 1; j <= ncol; j++)
            printf (j <= 3 ? "%-*s" : "%*s") (j < ncol ? "  " : "\n"), width[j], cell[r, j]
}' "$run/table.tsv" | tee "$run/table.txt.tmp"
publish "$run/table.txt.tmp" "$run/table.txt"
