#!/bin/bash
# plots.sh RUN_DIR - pictures of a run, drawn with gnuplot into RUN_DIR/plots/
# as SVG and PNG:
#   MODEL.svg/.png   the training curves of each fine-tuned model on one page:
#                    loss and learning rate per step (RUN_DIR/train/MODEL.log),
#                    STS-B dev Spearman at each evaluation (when the run had
#                    --eval-sts; seed-table does)
#   table.svg/.png   STS-B dev Spearman x100 of every model of the run, as bars
#                    (RUN_DIR/table.tsv); with seed-table.tsv, the article's
#                    published numbers beside the measured ones
. "$(dirname "$0")/common.sh"
[ $# -eq 1 ] || die "usage: plots.sh RUN_DIR"
run=$1
command -v gnuplot >/dev/null || die "gnuplot is not installed (apt-get install gnuplot-nox)"
[ -f "$run/table.tsv" ] || die "$run/table.tsv: no such file (make table first)"
out=$run/plots
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# draw NAME SCRIPT: the gnuplot script (which plots to the terminal it is given)
# as NAME.svg and NAME.png, each under a temporary name first.
draw() {
    local name=$1 script=$2
    gnuplot -e "set terminal svg size 900,$3 dynamic font 'sans,11'; set output '$out/$name.svg.tmp'" "$script"
    gnuplot -e "set terminal pngcairo size 900,$3 font 'sans,10'; set output '$out/$name.png.tmp'" "$script"
    publish "$out/$name.svg.tmp" "$out/$name.svg"
    publish "$out/$name.png.tmp" "$out/$name.png"
}

shopt -s nullglob
for log in "$run"/train/*.log; do
    name=$(basename "$log" .log)
    jq -r 'select(has("loss")) | [.step, .loss, .lr] | @tsv' "$log" >"$tmp/steps.tsv"
    jq -r 'select(has("eval_sts_spearman") and .eval_sts_spearman != null)
           | [.step, 100 * .eval_sts_spearman] | @tsv' "$log" >"$tmp/evals.tsv"
    [ -s "$tmp/steps.tsv" ] || continue
    evals=$(wc -l <"$tmp/evals.tsv")
    cat >"$tmp/curves.gp" <<GP
set datafile separator "\t"
set multiplot layout $([ "$evals" -gt 0 ] && echo 3 || echo 2),1 title "$(basename "$run")/$name: training curves"
set grid
set xlabel "step"
set ylabel "loss"
plot "$tmp/steps.tsv" using 1:2 with lines lw 1.5 title "loss (batch)"
set ylabel "learning rate"
set format y "%.1e"
plot "$tmp/steps.tsv" using 1:3 with lines lw 1.5 title "lr"
set format y "%g"
$([ "$evals" -gt 0 ] && echo "set ylabel \"STS-B dev Spearman x100\"
plot \"$tmp/evals.tsv\" using 1:2 with linespoints lw 1.5 pt 7 title \"STS-B dev\"")
unset multiplot
GP
    draw "$name" "$tmp/curves.gp" 900
    say "$out/$name.svg, $out/$name.png"
done

# The table: measured (and published) STS-B dev Spearman x100 per model.
if [ -f "$run/seed-table.tsv" ]; then
    # short names under the bars: the model, or the published-only row's
    awk -F'\t' 'NR > 1 { printf "%s\t%s\t%s\n", ($1 == "-" ? "SBERT-NLI (published)" : $1),
                                   ($6 == "-" ? "NaN" : 100 * $6), ($8 == "-" ? "NaN" : 100 * $8) }' \
        "$run/seed-table.tsv" >"$tmp/bars.tsv"
    title="STS-B dev Spearman x100: measured here and published by the article"
    cols='using 2:xtic(1) title "measured here", "" using 3 title "published (article)"'
else
    awk -F'\t' 'NR > 1 { printf "%s\t%s\n", $1, ($7 == "-" ? "NaN" : 100 * $7) }' "$run/table.tsv" >"$tmp/bars.tsv"
    title="STS-B dev Spearman x100"
    cols='using 2:xtic(1) title "measured here"'
fi
cat >"$tmp/table.gp" <<GP
set datafile separator "\t"
set datafile missing "NaN"
set title "$(basename "$run"): $title"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:110]
set grid ytics
set key top center horizontal
set xtics rotate by -20 scale 0 font ",10"
set bmargin 6
set rmargin 8
plot "$tmp/bars.tsv" $cols
GP
draw table "$tmp/table.gp" 560
say "$out/table.svg, $out/table.png"
