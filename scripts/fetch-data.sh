#!/bin/bash
# fetch-data.sh - get the experiment's data: SNLI 1.0 and MultiNLI 1.0 (training
# pairs), the STS benchmark (evaluation), the rest of the STS suite (the STS
# 2012-2016 test sets and SICK, for `make eval-suite`) and bert-base-uncased (a
# starting model).
#
#   scripts/fetch-data.sh                      download from the official sources
#   scripts/fetch-data.sh --no-model           the data only, not bert-base-uncased
#   scripts/fetch-data.sh --model-only         bert-base-uncased only
#   scripts/fetch-data.sh --suite-only         the STS suite (sts-suite/ below) only,
#                                              leaving the rest of DATA_DIR as it is
#   DATA_MIRROR=DIR scripts/fetch-data.sh      offline: copy the data from DIR instead
#
# DATA_MIRROR names a directory laid out as the result below (nli/*.jsonl,
# stsbenchmark/sts-*.csv, vocab/bert-base-uncased-vocab.txt, and for
# --suite-only sts-suite/); this is the mode the demo and the tests use.  The
# result, in DATA_DIR (default data/):
#
#   nli/snli_1.0_train.jsonl, nli/multinli_1.0_train.jsonl   (or the mirror's *.jsonl)
#   stsbenchmark/sts-train.csv, sts-dev.csv, sts-test.csv, readme.txt, LICENSE.txt
#   vocab/bert-base-uncased-vocab.txt
#
# and with --suite-only (`make eval-suite` runs it when sts-suite/.complete is
# missing; a data run without it removes that file, so that the suite is
# prepared again from the new stsbenchmark/sts-test.csv):
#
#   sts-suite/STS12-en-test/ ... STS16-en-test/   each year's test archive as it
#                        unpacks (its top directory renamed, as SentEval does)
#   sts-suite/SICK.txt   SICK (Marelli et al.): header, 12 columns, all splits
#   sts-suite/pairs/     what `make eval-suite` reads: per set, NAME.tsv (the
#                        two sentences, tab-separated) and NAME.gold (the gold
#                        score or an empty line for an unscored pair), line k =
#                        pair k: STS12/ ... STS16/ one pair of files per subset,
#                        STSb-test.* (sts-test.csv), SICK-R-test.* (TEST rows);
#                        sts-suite/.complete when it is done
#
# A subset of a year is every STS*.input.NAME.txt with a STS*.gs.NAME.txt
# beside it at the archive's top level, used as distributed (its first two
# columns; STS 2016's inputs have four); STS.gs.ALL.txt, gold files without an
# input (STS 2013's SMT), nested directories and archives are left out, as
# SentEval does.  Each subset's pairs and scored pairs are checked against the
# official counts.  A mirror may hold only some of the sets (the shared one has
# STS12, STS15 and a SICK sample without TEST rows): the others are reported
# missing and `make eval-suite` leaves them out.
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
# The STS 2012-2016 test archives (the ixa2 STS wiki, as SentEval downloads
# them) and SICK (Marelli et al. 2014, as its authors deposited it).
STS_WIKI=${STS_WIKI:-http://ixa2.si.ehu.eus/stswiki/images}
STS12_URL=${STS12_URL:-$STS_WIKI/4/40/STS2012-en-test.zip}
STS13_URL=${STS13_URL:-$STS_WIKI/2/2f/STS2013-en-test.zip}
STS14_URL=${STS14_URL:-$STS_WIKI/8/8c/STS2014-en-test.zip}
STS15_URL=${STS15_URL:-$STS_WIKI/d/da/STS2015-en-test.zip}
STS16_URL=${STS16_URL:-$STS_WIKI/9/98/STS2016-en-test.zip}
SICK_URL=${SICK_URL:-https://zenodo.org/records/2787612/files/SICK.zip}

prog=fetch-data
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

want_data=yes want_model=yes
case ${1:-} in
"") ;;
--no-model) want_model=no ;;
--model-only) want_data=no ;;
--suite-only) want_data=suite want_model=no ;;
-h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
*) echo "$prog: unknown option '$1' (--no-model, --model-only, --suite-only or --help)" >&2; exit 2 ;;
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

# The STS years: each archive's top directory, the prefix of its file names,
# and every subset with its number of scored pairs (the official counts, as
# the task papers and SentEval give them).
STS_YEARS="STS12 STS13 STS14 STS15 STS16"
sts_top() {
    case $1 in
    STS12) echo test-gold ;;
    STS13) echo test-gs ;;
    STS14) echo sts-en-test-gs-2014 ;;
    STS15) echo test_evaluation_task2a ;;
    STS16) echo sts2016-english-with-gs-v1.0 ;;
    esac
}
sts_prefix() { if [ "$1" = STS16 ]; then echo STS2016; else echo STS; fi; }
sts_subsets() {
    case $1 in
    STS12) echo MSRpar:750 MSRvid:750 SMTeuroparl:459 surprise.OnWN:750 surprise.SMTnews:399 ;;
    STS13) echo FNWN:189 headlines:750 OnWN:561 ;;
    STS14) echo deft-forum:450 deft-news:300 headlines:750 images:750 OnWN:750 tweet-news:750 ;;
    STS15) echo answers-forums:375 answers-students:750 belief:375 headlines:750 images:750 ;;
    STS16) echo answer-answer:254 headlines:249 plagiarism:230 postediting:244 question-question:209 ;;
    esac
}
SICK_HEADER="pair_ID	sentence_A	sentence_B	entailment_label	relatedness_score	entailment_AB	entailment_BA	sentence_A_original	sentence_B_original	sentence_A_dataset	sentence_B_dataset	SemEval_set"

# prepare_year YEAR: the subsets of DATA_DIR/sts-suite/YEAR-en-test as
# pairs/YEAR/NAME.tsv and NAME.gold, each checked against the official counts.
prepare_year() {
    local year=$1 dir=$DATA_DIR/sts-suite/$1-en-test out=$DATA_DIR/sts-suite/pairs/$1
    local in base prefix name gs lines gold_lines scored want entry found=" "
    mkdir -p "$out"
    for in in "$dir"/STS*.input.*.txt; do
        [ -e "$in" ] || break
        base=${in##*/} prefix=${base%%.input.*}
        name=${base#"$prefix".input.} && name=${name%.txt}
        gs=$dir/$prefix.gs.$name.txt
        [ -f "$gs" ] || { say "sts-suite/$year: $base has no gold file: left out"; continue; }
        want=
        for entry in $(sts_subsets "$year"); do
            [ "${entry%:*}" = "$name" ] && want=${entry#*:}
        done
        [ -n "$want" ] || die "$in: '$name' is not a subset of the official $year test set"
        lines=$(wc -l <"$in") gold_lines=$(wc -l <"$gs")
        [ "$lines" = "$gold_lines" ] || die "$gs: $gold_lines lines, but $in has $lines"
        awk -F'\t' 'NF < 2 { printf "%s:%d: expected two tab-separated sentences\n", FILENAME, FNR; exit 1 }' \
            "$in" >&2 || die "$in: not an STS input file"
        awk '{ sub(/\r$/, "") } NF > 1 || (NF == 1 && !($1 ~ /^[0-9]+(\.[0-9]*)?$/ && $1 <= 5)) {
                 printf "%s:%d: expected a gold score from 0 to 5 or an empty line\n", FILENAME, FNR; exit 1 }' \
            "$gs" >&2 || die "$gs: not an STS gold file"
        sed 's/\r$//' "$in" | cut -f1,2 >"$out/$name.tsv"
        sed 's/\r$//' "$gs" >"$out/$name.gold"
        scored=$(grep -c '[^[:space:]]' "$out/$name.gold" || true)
        [ "$scored" = "$want" ] || die "$gs: $scored scored pairs, expected $want"
        say "sts-suite/$year/$name: $lines pairs, $scored scored (as expected)$(
            [ "$scored" = "$lines" ] || echo ", $((lines - scored)) unscored left out")"
        found+="$name "
    done
    for entry in $(sts_subsets "$year"); do
        [[ $found == *" ${entry%:*} "* ]] ||
            die "$dir: no subset ${entry%:*} ($(sts_prefix "$year").input/.gs.${entry%:*}.txt)"
    done
    for gs in "$dir"/STS*.gs.*.txt; do
        base=${gs##*/} prefix=${base%%.gs.*}
        name=${base#"$prefix".gs.} && name=${name%.txt}
        [ -f "$dir/$prefix.input.$name.txt" ] || say "sts-suite/$year: $base has no input: left out"
    done
}

# prepare_sick: SICK.txt checked, its TEST rows as pairs/SICK-R-test.*.  A
# mirror may hold a sample (no TEST rows: SICK-R is then missing).
prepare_sick() {
    local f=$DATA_DIR/sts-suite/SICK.txt out=$DATA_DIR/sts-suite/pairs counts
    [ "$(head -n 1 "$f" | tr -d '\r')" = "$SICK_HEADER" ] || die "$f:1: not SICK's header"
    counts=$(awk -F'\t' 'NR > 1 { sub(/\r$/, "")
        if (NF != 12 || !($5 ~ /^[0-9]+(\.[0-9]*)?$/ && $5 >= 1 && $5 <= 5) || $12 !~ /^(TRAIN|TRIAL|TEST)$/) {
            printf "%s:%d: expected 12 tab-separated fields, a score from 1 to 5 in the 5th, TRAIN, TRIAL or TEST in the 12th\n", FILENAME, NR > "/dev/stderr"
            exit 1 }
        n[$12]++ } END { printf "%d %d %d %d", NR - 1, n["TRAIN"], n["TRIAL"], n["TEST"] }' "$f") ||
        die "$f: not the SICK layout"
    # shellcheck disable=SC2086 # four numbers
    set -- $counts
    if [ "$*" = "9840 4439 495 4906" ]; then
        say "sts-suite/SICK.txt: $1 pairs: TRAIN $2, TRIAL $3, TEST $4 (as expected)"
    elif [ -n "$DATA_MIRROR" ] && [ "$4" = 0 ]; then
        say "sts-suite/SICK.txt: a sample, $1 pairs (TRAIN $2, TRIAL $3), no TEST rows: SICK-R missing"
        return 0
    else
        die "$f: $1 pairs (TRAIN $2, TRIAL $3, TEST $4), expected 9840 (4439, 495, 4906)"
    fi
    awk -F'\t' -v tsv="$out/SICK-R-test.tsv" -v gold="$out/SICK-R-test.gold" '
        NR > 1 { sub(/\r$/, "") }
        NR > 1 && $12 == "TEST" { print $2 "\t" $3 >tsv; print $5 >gold }' "$f"
}

# prepare_suite: the suite's pairs from what DATA_DIR/sts-suite and
# stsbenchmark hold; the sets not there are named.
prepare_suite() {
    local year missing=()
    mkdir -p "$DATA_DIR/sts-suite/pairs"
    for year in $STS_YEARS; do
        if [ -d "$DATA_DIR/sts-suite/$year-en-test" ]; then
            prepare_year "$year"
        else
            missing+=("$year")
        fi
    done
    if [ -f "$DATA_DIR/stsbenchmark/sts-test.csv" ]; then
        cut -f6,7 "$DATA_DIR/stsbenchmark/sts-test.csv" >"$DATA_DIR/sts-suite/pairs/STSb-test.tsv"
        cut -f5 "$DATA_DIR/stsbenchmark/sts-test.csv" >"$DATA_DIR/sts-suite/pairs/STSb-test.gold"
        say "sts-suite/STSb-test: $(wc -l <"$DATA_DIR/sts-suite/pairs/STSb-test.gold") pairs (stsbenchmark/sts-test.csv)"
    else
        missing+=(STSb-test)
    fi
    if [ -f "$DATA_DIR/sts-suite/SICK.txt" ]; then
        prepare_sick
    fi
    [ -f "$DATA_DIR/sts-suite/pairs/SICK-R-test.gold" ] || missing+=(SICK-R-test)
    if [ ${#missing[@]} -gt 0 ]; then
        say "sts-suite: not here: ${missing[*]} (make eval-suite leaves them out)"
    else
        say "sts-suite: all seven sets ready"
    fi
    touch "$DATA_DIR/sts-suite/.complete"
}

# suite_from_mirror: the years and SICK that the mirror has, copied.
suite_from_mirror() {
    local m=$DATA_MIRROR/sts-suite year
    [ -d "$DATA_MIRROR" ] || die "DATA_MIRROR=$DATA_MIRROR: no such directory"
    [ -d "$m" ] || { say "$DATA_MIRROR: no sts-suite/ (the STS suite is left out)"; return 0; }
    mkdir -p "$DATA_DIR/sts-suite"
    for year in $STS_YEARS; do
        [ -d "$m/$year-en-test" ] || continue
        cp -R "$m/$year-en-test" "$DATA_DIR/sts-suite/"
    done
    [ ! -f "$m/SICK.txt" ] || install -m 644 "$m/SICK.txt" "$DATA_DIR/sts-suite/SICK.txt"
    chmod -R u+w "$DATA_DIR/sts-suite"
}

# suite_download: each year's archive and SICK's, listings checked, unpacked.
suite_download() {
    local dl=$DATA_DIR/download year top prefix url zip listing entry members tmp sick
    mkdir -p "$DATA_DIR/sts-suite"
    for year in $STS_YEARS; do
        top=$(sts_top "$year") prefix=$(sts_prefix "$year") url=${year}_URL
        zip=$dl/$year-en-test.zip
        fetch "${!url}" "$zip"
        listing=$(unzip -Z1 "$zip") || die "$zip: not a zip archive"
        members=()
        for entry in $(sts_subsets "$year"); do
            members+=("$top/$prefix.input.${entry%:*}.txt" "$top/$prefix.gs.${entry%:*}.txt")
        done
        need_members "$listing" "$zip" "${members[@]}"
        tmp=$(mktemp -d "$DATA_DIR/sts-suite/.unzip.XXXXXX")
        unzip -o -q -d "$tmp" "$zip" "$top/*"
        mv "$tmp/$top" "$DATA_DIR/sts-suite/$year-en-test"
        rmdir "$tmp"
    done
    fetch "$SICK_URL" "$dl/SICK.zip"
    listing=$(unzip -Z1 "$dl/SICK.zip") || die "$dl/SICK.zip: not a zip archive"
    sick=$(grep -E '(^|/)SICK\.txt$' <<<"$listing" | head -n 1) ||
        die "$dl/SICK.zip: no member SICK.txt (damaged download? remove it and retry)"
    unzip -o -q -p "$dl/SICK.zip" "$sick" >"$DATA_DIR/sts-suite/SICK.txt"
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
# and DATA_DIR/.complete says that the last run passed every check (as
# sts-suite/.complete does for the suite).
if [ $want_data = yes ]; then
    rm -f "$DATA_DIR"/.complete "$DATA_DIR"/nli/*.jsonl "$DATA_DIR"/stsbenchmark/sts-*.csv \
        "$DATA_DIR"/sts-suite/.complete
    if [ -n "$DATA_MIRROR" ]; then
        from_mirror
    else
        download
    fi
    touch "$DATA_DIR/.complete"
    say "data ready in $DATA_DIR"
fi
if [ $want_data = suite ]; then
    rm -rf "$DATA_DIR"/sts-suite
    if [ -n "$DATA_MIRROR" ]; then
        suite_from_mirror
    else
        suite_download
    fi
    prepare_suite
    say "STS suite ready in $DATA_DIR/sts-suite"
fi
if [ $want_model = yes ]; then
    get_model
fi
