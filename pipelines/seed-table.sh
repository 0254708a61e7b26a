#!/bin/bash
# seed-table.sh RUN_DIR - the article's closing table from a run's table.tsv
# (make seed-table): the base model and the four fine-tuned models (MNR and
# softmax, each with sentence-transformers' recipe and with the article's
# hand-written loop's settings), STS-B dev (and test) Spearman x100, and in a
# column of its own the article's published STS-B dev Spearman, with the
# original SBERT model the article also quotes as a published-only row.
# Writes RUN_DIR/seed-table.tsv and seed-table.txt (printed).
. "$(dirname "$0")/common.sh"
[ $# -eq 1 ] || die "usage: seed-table.sh RUN_DIR"
run=$1
[ -f "$run/table.tsv" ] || die "$run/table.tsv: no such file (make table first)"
# model in the run, what it is, the article's number (x100; - for none)
published="mnr	MNR, sentence-transformers' recipe	84
-	bert-base-nli-mean-tokens (original SBERT; not trained here)	81
softmax	softmax, sentence-transformers' recipe	80
mnr-loop	MNR, the article's PyTorch loop settings	79
softmax-loop	softmax, the article's PyTorch loop settings	67"
awk -F"\t" -v tsv="$run/seed-table.tsv.tmp" -v published="$published" -v run="$(basename "$run")" '
function x100(v) { return v == "-" || v == "" ? "-" : sprintf("%.2f", 100 * v) }
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
    if ($col["loss"] == "none") { base = $1; start = $1 }
    row[$1] = $0
}
END {
    n = split(published, pub, "\n")
    test = ("sts_test_spearman" in col)
    print "model\twhat\tstart\trows\tsteps\tsts_dev_spearman\tsts_test_spearman\tpublished_sts_dev_spearman" >tsv
    split(row[base], b, "\t")
    line(base, "the base model untouched", b, "-")
    for (i = 1; i <= n; i++) {
        split(pub[i], p, "\t")
        if (p[1] == "-") { delete r; line("-", p[2], r, p[3]); continue }
        if (!(p[1] in row)) { delete r; line(p[1], p[2] " (not in this run)", r, p[3]); continue }
        split(row[p[1]], r, "\t")
        line(p[1], p[2], r, p[3])
    }
    printf "run %s: STS-B Spearman of cosine x100; published: the article'"'"'s numbers (bert-base-uncased,\nall of SNLI + MultiNLI), not measured here\n", run
    w1 = w2 = w3 = 0
    for (k = 0; k <= nl; k++) {
        if (length(L[k, 1]) > w1) w1 = length(L[k, 1])
        if (length(L[k, 2]) > w2) w2 = length(L[k, 2])
        if (length(L[k, 3]) > w3) w3 = length(L[k, 3])
    }
    for (k = 0; k <= nl; k++)
        printf "%-*s  %-*s  %-*s  %6s  %6s  %7s  %8s  %9s\n", w1, L[k, 1], w2, L[k, 2], w3, L[k, 3],
            L[k, 4], L[k, 5], L[k, 6], L[k, 7], L[k, 8]
}
BEGIN {
    L[0, 1] = "model"; L[0, 2] = "what"; L[0, 3] = "start"; L[0, 4] = "rows"; L[0, 5] = "steps"
    L[0, 6] = "dev"; L[0, 7] = "test"; L[0, 8] = "published"

}
function line(model, what, r, pubv,    dev, tst) {
    dev = ("sts_dev_spearman" in col) && (col["sts_dev_spearman"] in r) ? r[col["sts_dev_spearman"]] : "-"
    tst = ("sts_test_spearman" in col) && (col["sts_test_spearman"] in r) ? r[col["sts_test_spearman"]] : "-"
    nl++
    L[nl, 1] = model; L[nl, 2] = what
    L[nl, 3] = (2 in r) ? r[2] : "-"; L[nl, 4] = (4 in r) ? r[4] : "-"; L[nl, 5] = (5 in r) ? r[5] : "-"
    L[nl, 6] = x100(dev); L[nl, 7] = x100(tst); L[nl, 8] = pubv == "-" ? "-" : sprintf("%.2f", pubv)
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", model, what, L[nl, 3], L[nl, 4], L[nl, 5], dev, tst,
        pubv == "-" ? "-" : pubv / 100 >tsv
}' "$run/table.tsv" | tee "$run/seed-table.txt.tmp"
publish "$run/seed-table.tsv.tmp" "$run/seed-table.tsv"
publish "$run/seed-table.txt.tmp" "$run/seed-table.txt"
