#!/bin/bash
# suite.sh RUN_DIR PAIRS_DIR - the STS suite's tables of a run, from what
# suite-eval.sh left in RUN_DIR/suite/MODEL/ (spearman's line and each pair's
# cosine per subset) and the gold scores in PAIRS_DIR:
#   - per subset (STS12/MSRpar, ...): Spearman of the subset's scored pairs;
#   - per year (STS12 ... STS16): Spearman of all the year's scored pairs
#     pooled into one list, as the SBERT paper reports it (sentence-transformers
#     issue 1165), beside the mean of the year's subsets (suite.txt);
#   - STSb-test (STS benchmark test), SICK-R-test (SICK's TEST rows);
#   - avg: the mean of those seven, when all seven are there.
# Writes RUN_DIR/suite.tsv (model, set, n, spearman; "-" for a set not in the
# data), RUN_DIR/suite.json (a list of {"model", "set", "n", "spearman"}, null
# for "-"), and RUN_DIR/suite.txt, printed too: the seven sets x100 per model,
# the SBERT paper's published SBERT-NLI-base row beside them, then every subset.
. "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: suite.sh RUN_DIR PAIRS_DIR"
run=$1 pairs=$2
shopt -s nullglob
YEARS=(STS12 STS13 STS14 STS15 STS16)
SETS=("${YEARS[@]}" STSb-test SICK-R-test)
# Reimers and Gurevych (2019), Table 1: Spearman x100 of cosine similarity,
# STS12 STS13 STS14 STS15 STS16 STSb SICK-R, then their average.
PUBLISHED_NAME="SBERT-NLI-base (published)"
PUBLISHED=(70.97 76.53 73.19 79.09 74.30 77.03 72.91 74.89)
CITATION="Reimers & Gurevych (2019), Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks, EMNLP-IJCNLP 2019, Table 1 (arXiv:1908.10084)"

# The models: the starting models first, then the fine-tuned ones by name (as table.sh).
infos=("$run"/train/*.json)
[ ${#infos[@]} -gt 0 ] || die "$run/train: no models"
mapfile -t models < <(jq -rs 'sort_by(.loss != "none", .model)[] | .model' "${infos[@]}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# field N of spearman's line in FILE ("spearman R pearson R n N skipped K")
field() { awk -v f="$2" '{ print $f }' "$1"; }

{
    printf 'model\tset\tn\tspearman\n'
    for model in "${models[@]}"; do
        dir=$run/suite/$model
        [ -d "$dir" ] || die "$dir: not evaluated (suite-eval.sh)"
        sum=0 count=0 total=0
        for set in "${SETS[@]}"; do
            if [ -d "$pairs/$set" ]; then
                # a year: its subsets, then all their scored pairs pooled
                : >"$tmp/gold" && : >"$tmp/scores"
                subsets=()
                for tsv in "$pairs/$set"/*.tsv; do
                    sub=$(basename "$tsv" .tsv)
                    res=$dir/$set/$sub.txt
                    { [ -f "$res" ] && [ -f "$dir/$set/$sub.scores" ]; } || die "$res: missing (suite-eval.sh)"
                    subsets+=("$(printf '%s\t%s/%s\t%s\t%s' "$model" "$set" "$sub" "$(field "$res" 6)" "$(field "$res" 2)")")
                    paste "${tsv%.tsv}.gold" "$dir/$set/$sub.scores" |
                        awk -F'\t' -v g="$tmp/gold" -v s="$tmp/scores" \
                            'NF != 2 { exit 1 } $1 ~ /[^ ]/ { print $1 >>g; print $2 >>s }' ||
                        die "$dir/$set/$sub.scores: not one score per pair of ${tsv%.tsv}.gold"
                done
                [ ${#subsets[@]} -gt 0 ] || die "$pairs/$set: no subsets"
                spearman -g "$tmp/gold" -s "$tmp/scores" --digits 9 >"$tmp/pooled"
                n=$(field "$tmp/pooled" 6) rho=$(field "$tmp/pooled" 2)
                printf '%s\t%s\t%s\t%s\n' "$model" "$set" "$n" "$rho"
                printf '%s\n' "${subsets[@]}"
            elif [ -f "$pairs/$set.tsv" ]; then
                res=$dir/$set.txt
                [ -f "$res" ] || die "$res: missing (suite-eval.sh)"
                n=$(field "$res" 6) rho=$(field "$res" 2)
                printf '%s\t%s\t%s\t%s\n' "$model" "$set" "$n" "$rho"
            else
                printf '%s\t%s\t-\t-\n' "$model" "$set"
                continue
            fi
            sum=$(awk -v a="$sum" -v b="$rho" 'BEGIN { printf "%.17g", a + b }')
            count=$((count + 1)) total=$((total + n))
        done
        if [ "$count" -eq ${#SETS[@]} ]; then
            printf '%s\tavg\t%s\t%s\n' "$model" "$total" \
                "$(awk -v s="$sum" -v c="$count" 'BEGIN { printf "%.9f", s / c }')"
        else
            printf '%s\tavg\t-\t-\n' "$model"
        fi
    done
} >"$run/suite.tsv.tmp"
publish "$run/suite.tsv.tmp" "$run/suite.tsv"

jq -Rn '[inputs | split("\t")] | .[1:]
        | map({model: .[0], set: .[1],
               n: (if .[2] == "-" then null else (.[2] | tonumber) end),
               spearman: (if .[3] == "-" then null else (.[3] | tonumber) end)})' \
    "$run/suite.tsv" >"$run/suite.json.tmp"
publish "$run/suite.json.tmp" "$run/suite.json"

# For people: the seven sets and their average x100, a year as "pooled (mean
# of subsets)"; the published row; then every subset.
awk -F'\t' -v run="$(basename "$run")" -v sets="${SETS[*]} avg" -v pub_name="$PUBLISHED_NAME" \
    -v pub="${PUBLISHED[*]}" -v citation="$CITATION" '
function x100(v) { return v == "-" ? "-" : sprintf("%.2f", 100 * v) }
NR == 1 { next }
{
    if (!($1 in seen)) { seen[$1] = 1; models[++nm] = $1 }
    if (index($2, "/")) {
        split($2, part, "/")
        if (!(($2) in subseen)) { subseen[$2] = 1; subs[++ns] = $2 }
        sub_rho[$1, $2] = $4; sub_n[$2] = $3
        msum[$1, part[1]] += $4; mcount[$1, part[1]]++
    } else {
        rho[$1, $2] = $4; n[$2] = $3
    }
}
function pad(s, w, left) { return left ? sprintf("%-*s", w, s) : sprintf("%*s", w, s) }
END {
    ncol = split(sets, col, " ")
    np = split(pub, pubv, " ")
    for (m = 1; m <= nm; m++)
        for (j = 1; j <= ncol; j++) {
            c = x100(rho[models[m], col[j]])
            if (mcount[models[m], col[j]] > 1)
                c = c " (" sprintf("%.2f", 100 * msum[models[m], col[j]] / mcount[models[m], col[j]]) ")"
            cell[m, j] = c
        }
    for (j = 1; j <= ncol; j++) cell[nm + 1, j] = pubv[j]
    models[nm + 1] = pub_name
    w0 = 5
    for (m = 1; m <= nm + 1; m++) if (length(models[m]) > w0) w0 = length(models[m])
    for (j = 1; j <= ncol; j++) {
        width[j] = length(col[j])
        for (m = 1; m <= nm + 1; m++) if (length(cell[m, j]) > width[j]) width[j] = length(cell[m, j])
    }
    printf "run %s: the STS suite, Spearman of cosine similarity x100\n", run
    printf "%s", pad("model", w0, 1)
    for (j = 1; j <= ncol; j++) printf "  %s", pad(col[j], width[j], 0)
    printf "\n"
    for (m = 1; m <= nm + 1; m++) {
        printf "%s", pad(models[m], w0, 1)
        for (j = 1; j <= ncol; j++) printf "  %s", pad(cell[m, j], width[j], 0)
        printf "\n"
    }
    printf "pairs"
    for (j = 1; j <= ncol; j++) if (col[j] != "avg") printf "  %s %s", col[j], (col[j] in n) ? n[col[j]] : "-"
    printf "\n"
    printf "STS12-STS16: all of the year'\''s scored pairs pooled, as the SBERT paper reports them;\n"
    printf "in brackets the mean of the year'\''s subsets. -: the set is not in the data (avg needs all seven).\n"
    printf "published: %s.\n", citation
    if (ns) {
        printf "\nper subset (scored pairs; unscored ones left out):\n"
        ws = length("set")
        for (k = 1; k <= ns; k++) if (length(subs[k]) > ws) ws = length(subs[k])
        printf "%s  %5s", pad("set", ws, 1), "n"
        for (m = 1; m <= nm; m++) {
            wm[m] = length(models[m]) > 6 ? length(models[m]) : 6
            printf "  %s", pad(models[m], wm[m], 0)
        }
        printf "\n"
        for (k = 1; k <= ns; k++) {
            printf "%s  %5s", pad(subs[k], ws, 1), sub_n[subs[k]]
            for (m = 1; m <= nm; m++) printf "  %s", pad(x100(sub_rho[models[m], subs[k]]), wm[m], 0)
            printf "\n"
        }
    }
}' "$run/suite.tsv" | tee "$run/suite.txt.tmp"
publish "$run/suite.txt.tmp" "$run/suite.txt"
