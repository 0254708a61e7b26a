#!/bin/bash
# fetch-data.sh - get the experiment's data: SNLI 1.0 and MultiNLI 1.0 (training
# pairs), the STS benchmark (evaluation) and bert-base-uncased (a starting model).
#
#   scripts/fetch-data.sh                      download from the official sources
#   scripts/fetch-data.sh --no-model           the data only, not bert-base-uncased
#   scripts/fetch-data.sh --model-only         bert-base-uncased only
#   DATA_MIRROR=DIR scripts/fetch-data.sh      offline: copy the data from DIR instead
#
# DATA_MIRROR names a directory laid out as the result below (nli/*.jsonl,
# stsbenchmark/sts-*.csv, vocab/bert-base-uncased-vocab.txt); this is the mode
# the demo and the tests use.  The result, in DATA_DIR (default data/):
#
#   nli/snli_1.0_train.jsonl, nli/multinli_1.0_train.jsonl   (or the mirror's *.jsonl)
#   stsbenchmark/sts-train.csv, sts-dev.csv, sts-test.csv, readme.txt, LICENSE.txt
#   vocab/bert-base-uncased-vocab.txt
#
# and, unless --no-model, MODELS_DIR/bert-base-uncased/ (default models/):
# config.json, vocab.txt, model.safetensors (from DATA_MIRROR/bert-base-uncased/
# in the offline mode, when the mirror has one; otherwise skipped there).
# Downloads are kept in DATA_DIR/download/ and not fetched again (remove a
# damaged one to fetch it anew).
# Every file is checked (archive listing, row counts) and the counts are printed;
# a failed check stops the script with exit status 1.  DATA_DIR/.complete is
# written last, when everything passed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=${DATA_DIR:-$top/data}
MODELS_DIR=${MODELS_DIR:-$top/models}
DATA_MIRROR=${DATA_MIRROR:-}

# The official sources (the variables let a local mirror or a test stand in).
SNLI_URL=${SNLI_URL:-https://nlp.stanford.edu/projects/snli/snli_1.0.zip}
MNLI_URL=${MNLI_URL:-https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip}
STS_URL=${STS_URL:-http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz}
BERT_URL=${BERT_URL:-https://huggingface.co/google-bert/bert-base-uncased/resolve/main}

prog=fetch-data
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

want_data=yes want_model=yes
case ${1:-} in
"") ;;
--no-model) want_model=no ;;
--model-only) want_data=no ;;
-h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
*) echo "$prog: unknown option '$1' (--no-model, --model-only or --help)" >&2; exit 2 ;;
esac

# Rows of the files we know (official releases and the shared offline copy).
expected_rows() {
    case $1 in
    snli_1.0_train.jsonl) echo 550152 ;;
    multinli_1.0_train.jsonl) echo 392702 ;;
    snli_1.0_devtest.jsonl) echo 19666 ;;
    mnli_matched_sample.jsonl | mnli_mismatched_sample.jsonl) echo 1000 ;;
    sts-train.csv) echo 5749 ;;
    sts-dev.csv) echo 1500 ;;
    sts-test.csv) echo 1379 ;;
    bert-base-uncased-vocab.txt | vocab.txt) echo 30522 ;;
    *) echo "" ;;
    esac
}

# check_rows FILE: print its row count, compare it with the known one.
check_rows() {
    local f=$1 rows want
    [ -s "$f" ] || die "$f: missing or empty"
    rows=$(wc -l <"$f")
    want=$(expected_rows "$(basename "$f")")
    if [ -n "$want" ] && [ "$rows" != "$want" ]; then
        die "$f: $rows rows, expected $want"
    fi
    say "${f#"$DATA_DIR"/}: $rows rows${want:+ (as expected)}"
}

# Every NLI line is a JSON object with a label and two sentences; every STS
# line has at least the 7 tab-separated fields (score in the 5th).
check_nli() {
    check_rows "$1"
    awk '!/^[ \t]*\{/ { printf "%s:%d: not a JSON object\n", FILENAME, FNR; exit 1 }' "$1" >&2 ||
        die "$1: not JSON Lines"
}
check_sts() {
    check_rows "$1"
    awk -F'\t' 'NF < 7 || $5 !~ /^[0-9.]+$/ {
        printf "%s:%d: expected 7 tab-separated fields with a score in the 5th\n", FILENAME, FNR
        exit 1 }' "$1" >&2 || die "$1: not the STS benchmark layout"
}

# fetch URL FILE: download once (kept while it exists), complete or not at all.
fetch() {
    local url=$1 out=$2
    [ -s "$out" ] && return 0
    command -v curl >/dev/null || die "curl is needed to download (or set DATA_MIRROR)"
    say "downloading $url"
    mkdir -p "$(dirname "$out")"
    curl -fL --retry 3 -o "$out.part" "$url" || die "$url: download failed"
    mv "$out.part" "$out"
}

# need_members LISTING ARCHIVE MEMBER...: the archive lists every member.
need_members() {
    local listing=$1 archive=$2 m
    shift 2
    for m in "$@"; do
        grep -qx "$m" <<<"$listing" || die "$archive: no member $m (damaged download? remove it and retry)"
    done
}

from_mirror() {
    local m=$DATA_MIRROR f n=0
    [ -d "$m" ] || die "DATA_MIRROR=$m: no such directory"
    say "copying from $m (offline)"
    mkdir -p "$DATA_DIR"/nli "$DATA_DIR"/stsbenchmark "$DATA_DIR"/vocab
    install -m 644 -t "$DATA_DIR/nli" "$m"/nli/*
    for f in "$DATA_DIR"/nli/*.jsonl; do
        [ -e "$f" ] || die "$m/nli: no *.jsonl files"
        check_nli "$f"
    done
    install -m 644 -t "$DATA_DIR/stsbenchmark" "$m"/stsbenchmark/*
    for f in "$DATA_DIR"/stsbenchmark/sts-*.csv; do
        [ -e "$f" ] || die "$m/stsbenchmark: no sts-*.csv files"
        check_sts "$f"
        n=$((n + 1))
    done
    [ -e "$DATA_DIR/stsbenchmark/sts-dev.csv" ] || die "$m/stsbenchmark/sts-dev.csv: missing"
    install -m 644 -t "$DATA_DIR/vocab" "$m/vocab/bert-base-uncased-vocab.txt" ||
        die "$m/vocab/bert-base-uncased-vocab.txt: missing"
    check_rows "$DATA_DIR/vocab/bert-base-uncased-vocab.txt"
}

download() {
    local dl=$DATA_DIR/download listing f
    mkdir -p "$dl" "$DATA_DIR"/nli "$DATA_DIR"/stsbenchmark "$DATA_DIR"/vocab

    fetch "$SNLI_URL" "$dl/snli_1.0.zip"
    listing=$(unzip -Z1 "$dl/snli_1.0.zip") || die "$dl/snli_1.0.zip: not a zip archive"
    need_members "$listing" "$dl/snli_1.0.zip" snli_1.0/snli_1.0_train.jsonl \
        snli_1.0/snli_1.0_dev.jsonl snli_1.0/snli_1.0_test.jsonl
    unzip -o -q -j -d "$DATA_DIR/nli" "$dl/snli_1.0.zip" snli_1.0/snli_1.0_train.jsonl
    check_nli "$DATA_DIR/nli/snli_1.0_train.jsonl"

    fetch "$MNLI_URL" "$dl/multinli_1.0.zip"
    listing=$(unzip -Z1 "$dl/multinli_1.0.zip") || die "$dl/multinli_1.0.zip: not a zip archive"
    need_members "$listing" "$dl/multinli_1.0.zip" multinli_1.0/multinli_1.0_train.jsonl \
        multinli_1.0/multinli_1.0_dev_matched.jsonl multinli_1.0/multinli_1.0_dev_mismatched.jsonl
    unzip -o -q -j -d "$DATA_DIR/nli" "$dl/multinli_1.0.zip" multinli_1.0/multinli_1.0_train.jsonl
    check_nli "$DATA_DIR/nli/multinli_1.0_train.jsonl"

    fetch "$STS_URL" "$dl/Stsbenchmark.tar.gz"
    listing=$(tar -tzf "$dl/Stsbenchmark.tar.gz") || die "$dl/Stsbenchmark.tar.gz: not a gzip tar archive"
    need_members "$listing" "$dl/Stsbenchmark.tar.gz" stsbenchmark/sts-train.csv \
        stsbenchmark/sts-dev.csv stsbenchmark/sts-test.csv stsbenchmark/readme.txt \
        stsbenchmark/LICENSE.txt
    tar -xzf "$dl/Stsbenchmark.tar.gz" -C "$DATA_DIR" stsbenchmark/sts-train.csv \
        stsbenchmark/sts-dev.csv stsbenchmark/sts-test.csv stsbenchmark/readme.txt \
        stsbenchmark/LICENSE.txt
    for f in train dev test; do
        check_sts "$DATA_DIR/stsbenchmark/sts-$f.csv"
    done
    fetch "$BERT_URL/vocab.txt" "$dl/bert-base-uncased-vocab.txt"
    install -m 644 -D "$dl/bert-base-uncased-vocab.txt" "$DATA_DIR/vocab/bert-base-uncased-vocab.txt"
    check_rows "$DATA_DIR/vocab/bert-base-uncased-vocab.txt"
}

# get_model: bert-base-uncased downloaded, or copied from the mirror.
get_model() {
    local bert=$MODELS_DIR/bert-base-uncased f
    for f in config.json vocab.txt model.safetensors; do
        if [ -n "$DATA_MIRROR" ]; then
            if [ ! -d "$DATA_MIRROR/bert-base-uncased" ]; then
                say "no bert-base-uncased in $DATA_MIRROR: skipped (offline)"
                return 0
            fi
            install -m 644 -D "$DATA_MIRROR/bert-base-uncased/$f" "$bert/$f" ||
                die "$DATA_MIRROR/bert-base-uncased/$f: missing"
        else
            fetch "$BERT_URL/$f" "$bert/$f"
        fi
    done
    grep -q '"model_type": *"bert"' "$bert/config.json" || die "$bert/config.json: not a BERT config"
    check_rows "$bert/vocab.txt"
    # A safetensors file starts with the 8-byte length of its JSON header.
    [ "$(head -c 9 "$bert/model.safetensors" | tail -c 1)" = "{" ] ||
        die "$bert/model.safetensors: not a safetensors file"
    say "$bert/model.safetensors: $(wc -c <"$bert/model.safetensors") bytes"
    say "bert-base-uncased ready in $bert"
}

# Start clean: the pipelines read every nli/*.jsonl and stsbenchmark/sts-*.csv,
# and DATA_DIR/.complete says that the last run passed every check.
if [ $want_data = yes ]; then
    rm -f "$DATA_DIR"/.complete "$DATA_DIR"/nli/*.jsonl "$DATA_DIR"/stsbenchmark/sts-*.csv
    if [ -n "$DATA_MIRROR" ]; then
        from_mirror
    else
        download
    fi
    touch "$DATA_DIR/.complete"
    say "data ready in $DATA_DIR"
fi
if [ $want_model = yes ]; then
    get_model
fi
