#!/bin/bash
# nli-data.sh DATA_DIR OUT_DIR - the training text of the experiment: every
# entailment pair (OUT_DIR/nli-pairs.tsv), every hard-negative triplet
# (OUT_DIR/nli-triplets.tsv) and every row with a gold label, the label last
# (OUT_DIR/nli-labelled.tsv, for the softmax loss; its counts per label in
# OUT_DIR/nli-labelled.counts) of the NLI files in DATA_DIR/nli, SNLI files first,
# then MultiNLI ones, each set in name order, as nli-filter(1) writes them.
. "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: nli-data.sh DATA_DIR OUT_DIR"
data=$1 out=$2
shopt -s nullglob
snli=("$data"/nli/snli*.jsonl)
files=("${snli[@]}")
for f in "$data"/nli/*.jsonl; do
    case $(basename "$f") in snli*) ;; *) files+=("$f") ;; esac
done
[ ${#files[@]} -gt 0 ] || die "$data/nli: no *.jsonl files (run scripts/fetch-data.sh)"
mkdir -p "$out"
say "pairs from ${files[*]##*/}"
nli-filter "${files[@]}" >"$out/nli-pairs.tsv.tmp"
publish "$out/nli-pairs.tsv.tmp" "$out/nli-pairs.tsv"
say "triplets from the same files"
nli-filter --triplets "${files[@]}" >"$out/nli-triplets.tsv.tmp"
publish "$out/nli-triplets.tsv.tmp" "$out/nli-triplets.tsv"
say "labelled rows from the same files"
nli-filter --labels "${files[@]}" >"$out/nli-labelled.tsv.tmp" 2>"$out/nli-labelled.counts.tmp"
publish "$out/nli-labelled.counts.tmp" "$out/nli-labelled.counts"
publish "$out/nli-labelled.tsv.tmp" "$out/nli-labelled.tsv"
