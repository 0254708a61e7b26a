#!/usr/bin/env bats
# nli-filter(1): counts on the real SNLI/MultiNLI files, the triplet recipe,
# every input format, text cleaning, errors, and the man page's EXAMPLES.
load helper
bats_require_minimum_version 1.5.0

NLI=$DATA/nli
SNLI=$NLI/snli_1.0_devtest.jsonl
MNLI_M=$NLI/mnli_matched_sample.jsonl
MNLI_MM=$NLI/mnli_mismatched_sample.jsonl

setup() {
    cd "$BATS_TEST_TMPDIR"
}

@test "SNLI dev+test: 19666 rows in, 6697 entailment pairs out" {
    run --separate-stderr nli-filter "$SNLI"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 19666 rows\nafter: 6697 rows' ]
    [ "${#lines[@]}" -eq 6697 ]
    [ "${lines[0]}" = $'Two women are embracing while holding to go packages .\tTwo woman are holding packages .' ]
    # every line has exactly two columns
    [ "$(printf '%s\n' "$output" | awk -F'\t' 'NF != 2' | wc -l)" -eq 0 ]
}

@test "pairs equal the entailment rows extracted independently with Python" {
    command -v python3 >/dev/null || skip "python3 is not installed"
    nli-filter "$SNLI" "$MNLI_M" "$MNLI_MM" > got.tsv 2>/dev/null
    python3 - "$SNLI" "$MNLI_M" "$MNLI_MM" > want.tsv <<'EOF'
import json, sys
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        if o.get("gold_label", o.get("label")) in ("entailment", 0):
            p, h = (o["sentence1"], o["sentence2"]) if "gold_label" in o else (o["premise"], o["hypothesis"])
            print(p + "\t" + h)
EOF
    [ "$(wc -l < want.tsv)" -eq $((6697 + 719)) ]
    cmp got.tsv want.tsv
}

@test "MultiNLI samples on standard input: 2000 rows, 719 pairs" {
    run --separate-stderr bash -c 'cat "$0" "$1" | nli-filter' "$MNLI_M" "$MNLI_MM"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 2000 rows\nafter: 719 rows' ]
    [ "${#lines[@]}" -eq 719 ]
}

@test "SNLI triplets: 6339 from 5863 premises" {
    run --separate-stderr nli-filter --triplets "$SNLI"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 19666 rows\nafter: 6339 rows' ]
    [ "${#lines[@]}" -eq 6339 ]
    [ "$(printf '%s\n' "$output" | awk -F'\t' 'NF != 3' | wc -l)" -eq 0 ]
    [ "$(printf '%s\n' "$output" | cut -f1 | sort -u | wc -l)" -eq 5863 ]
}

@test "MultiNLI triplets: 66" {
    run --separate-stderr nli-filter -t "$MNLI_M" - < "$MNLI_MM"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 2000 rows\nafter: 66 rows' ]
    [ "${#lines[@]}" -eq 66 ]
}

@test "triplets: premises in order of first appearance, negatives round-robin" {
    # B appears first (as neutral), A's rows are interleaved with B's, C has
    # no contradiction and D no entailment: neither gives a triplet.
    printf '%s\t%s\t%s\n' \
        B bn neutral  A a1 entailment  C c1 entailment  A ax contradiction \
        B b1 entailment  A a2 entailment  B bx contradiction  A ay contradiction \
        A a3 entailment  A a4 entailment  A az contradiction  D dx contradiction \
        A a5 entailment > in.tsv
    run --separate-stderr nli-filter --triplets in.tsv
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '%s\t%s\t%s\n' B b1 bx  A a1 ax  A a2 ay  A a3 az  A a4 ax  A a5 ay)" ]
    [ "$stderr" = $'before: 13 rows\nafter: 6 rows' ]
}

@test "tabs, newlines and carriage returns inside texts become spaces" {
    printf '%s\n' '{"gold_label": "entailment", "sentence1": "a\tb\nc\rd", "sentence2": "\t x\u00e9 \n"}' \
        '{"premise": "p\r\nq", "hypothesis": "h", "label": 0}' > in.jsonl
    printf 'tab\rbed\tcr\rhere\tentailment\n' > in.tsv
    run --separate-stderr nli-filter in.jsonl in.tsv
    [ "$status" -eq 0 ]
    [ "$output" = $'a b c d\t  x\xc3\xa9  \np  q\th\ntab bed\tcr here' ]
}

@test "each input format, recognised per line" {
    {
        echo '{"gold_label": "entailment", "sentence1": "s1", "sentence2": "s2", "pairID": "x"}'
        echo '{"gold_label": "-", "sentence1": "u1", "sentence2": "u2"}'
        echo '  {"premise": "hf1", "hypothesis": "hf2", "label": 0, "idx": 3}'
        echo '{"premise": "hfn", "hypothesis": "hfn", "label": -1}'
        printf 'w1\tw2\tentailment\n'
        printf 'i1\ti2\t0\n'
        printf 'n1\tn2\t1\nc1\tc2\t2\nm1\tm2\t-1\nd1\td2\t-\nx1\tx2\tneutral\ny1\ty2\tcontradiction\n'
    } > mixed.txt
    run --separate-stderr nli-filter mixed.txt
    [ "$status" -eq 0 ]
    [ "$output" = $'s1\ts2\nhf1\thf2\nw1\tw2\ni1\ti2' ]
    [ "$stderr" = $'before: 12 rows\nafter: 4 rows' ]
}

@test "--format forces one format" {
    printf '{premise}\t{hypothesis}\tentailment\n' > braces.tsv
    run nli-filter braces.tsv
    [ "$status" -eq 1 ]
    [[ "$output" == "nli-filter: braces.tsv:1: invalid JSON: "* ]]
    run --separate-stderr nli-filter --format tsv braces.tsv
    [ "$status" -eq 0 ]
    [ "$output" = $'{premise}\t{hypothesis}' ]

    echo '{"gold_label": "entailment", "sentence1": "a", "sentence2": "b"}' > snli.jsonl
    echo '{"premise": "a", "hypothesis": "b", "label": 0}' > hf.jsonl
    run --separate-stderr nli-filter --format=snli snli.jsonl
    [ "$status" -eq 0 ]
    [ "$output" = $'a\tb' ]
    run --separate-stderr nli-filter -f hf hf.jsonl
    [ "$status" -eq 0 ]
    [ "$output" = $'a\tb' ]
    run nli-filter --format snli hf.jsonl
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: hf.jsonl:1: missing field "gold_label"' ]
    run nli-filter --format hf snli.jsonl
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: snli.jsonl:1: missing field "label"' ]
    run nli-filter --format tsv snli.jsonl
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: snli.jsonl:1: 1 tab-separated columns, expected 3 (premise, hypothesis, label)' ]
    run nli-filter --format hf braces.tsv
    [ "$status" -eq 1 ]
    [[ "$output" == "nli-filter: braces.tsv:1: invalid JSON: "* ]]
    run nli-filter --format auto snli.jsonl
    [ "$status" -eq 0 ]
}

@test "empty lines are skipped, CR LF line ends accepted" {
    printf '\n{"premise": "a", "hypothesis": "b", "label": 0}\r\n\r\nc\td\tentailment\r\n\n' > crlf.txt
    run --separate-stderr nli-filter crlf.txt
    [ "$status" -eq 0 ]
    [ "$output" = $'a\tb\nc\td' ]
    [ "$stderr" = $'before: 2 rows\nafter: 2 rows' ]
}

@test "a malformed JSON line is an error naming file and line" {
    head -n 3 "$SNLI" > bad.jsonl
    echo '{"gold_label": "entailment", "sentence1": "a", ' >> bad.jsonl
    run --separate-stderr nli-filter bad.jsonl
    [ "$status" -eq 1 ]
    [[ "$stderr" == "nli-filter: bad.jsonl:4: invalid JSON: "* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    # standard input is named, and line numbers start again in each file
    run nli-filter "$MNLI_M" - < bad.jsonl
    [ "$status" -eq 1 ]
    [[ "${lines[-1]}" == "nli-filter: stdin:4: invalid JSON: "* ]]
}

@test "missing fields, wrong types, unknown labels and duplicates are errors" {
    check() {
        printf '%s\n' "$1" > one.txt
        run nli-filter one.txt
        [ "$status" -eq 1 ] || return 1
        [ "$output" = "nli-filter: one.txt:1: $2" ]
    }
    check '{"gold_label": "entailment", "sentence2": "b"}' 'missing field "sentence1"'
    check '{"gold_label": "entailment", "sentence1": "a", "sentence2": null}' 'field "sentence2" is not a string'
    check '{"gold_label": 0, "sentence1": "a", "sentence2": "b"}' 'field "gold_label" is not a string'
    check '{"gold_label": "entails", "sentence1": "a", "sentence2": "b"}' 'unknown gold_label "entails"'
    check '{"premise": "a", "hypothesis": "b"}' 'missing field "label"'
    check '{"premise": "a", "hypothesis": "b", "label": "0"}' 'field "label" is not an integer'
    check '{"premise": "a", "hypothesis": "b", "label": 0.0}' 'field "label" is not an integer'
    check '{"premise": "a", "hypothesis": "b", "label": 3}' 'unknown label 3 (expected 0, 1, 2 or -1)'
    check '{"premise": ["a"], "hypothesis": "b", "label": 0}' 'field "premise" is not a string'
    check '{"sentence1": "a", "sentence2": "b"}' 'neither gold_label, sentence1, sentence2 (SNLI/MultiNLI) nor premise, hypothesis, label (datasets export)'
    check '{"premise": "a", "premise": "b", "hypothesis": "c", "label": 0}' "invalid JSON: duplicate object key near '\"premise\"'"
    check $'a\tb\tentails' 'unknown label "entails" (expected entailment, neutral, contradiction, -, or 0, 1, 2, -1)'
    check $'a\tb\t 0' 'unknown label " 0" (expected entailment, neutral, contradiction, -, or 0, 1, 2, -1)'
    check $'a\tb' '2 tab-separated columns, expected 3 (premise, hypothesis, label)'
    check $'a\tb\t0\tx' '4 tab-separated columns, expected 3 (premise, hypothesis, label)'
}

@test "invalid UTF-8 and NUL bytes in TSV are errors naming file and line" {
    printf 'a\tb\t0\nbad \xff byte\tb\t0\n' > bad.tsv
    run --separate-stderr nli-filter bad.tsv
    [ "$status" -eq 1 ]
    [ "$stderr" = 'nli-filter: bad.tsv:2: invalid UTF-8' ]
    printf 'a\xed\xa0\x80\tb\t0\n' > surrogate.tsv
    run nli-filter surrogate.tsv
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: surrogate.tsv:1: invalid UTF-8' ]
    printf 'a\0\tb\t0\n' > nul.tsv
    run nli-filter nul.tsv
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: nul.tsv:1: NUL byte in line' ]
    printf '{"premise": "a\xff", "hypothesis": "b", "label": 0}\n' > bad.jsonl
    run nli-filter bad.jsonl
    [ "$status" -eq 1 ]
    [[ "$output" == "nli-filter: bad.jsonl:1: invalid JSON: "* ]]
}

@test "--skip-bad skips and counts malformed lines" {
    {
        head -n 2 "$SNLI"
        echo '{oops'
        printf 'a\tb\n'
        printf 'bad \xff\tb\t0\n'
        sed -n 3,5p "$SNLI"
    } > some-bad.jsonl
    run --separate-stderr nli-filter --skip-bad some-bad.jsonl
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 5 rows\nafter: 2 rows\nskipped: 3 malformed lines' ]
    [ "${#lines[@]}" -eq 2 ]
    run --separate-stderr nli-filter --skip-bad --triplets some-bad.jsonl
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 5 rows\nafter: 1 rows\nskipped: 3 malformed lines' ]
    run --separate-stderr nli-filter --skip-bad "$MNLI_M"
    [ "$stderr" = $'before: 1000 rows\nafter: 373 rows\nskipped: 0 malformed lines' ]
}

@test "a missing file is an error" {
    run nli-filter "$MNLI_M" no-such-file.jsonl
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = 'nli-filter: no-such-file.jsonl: No such file or directory' ]
}

@test "a full disk is a one-line error" {
    [ -w /dev/full ] || skip "no /dev/full"
    run bash -c 'nli-filter "$1" > /dev/full' _ "$SNLI"
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: stdout: write error: No space left on device' ]
    run bash -c 'nli-filter --triplets "$1" > /dev/full' _ "$SNLI"
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: stdout: write error: No space left on device' ]
}

@test "a closed pipe is a one-line error" {
    # 6697 pairs are about 0.9 MB, far beyond a pipe's buffer: once head has
    # exited, a write must fail with EPIPE.
    [ "$(nli-filter "$SNLI" 2>/dev/null | wc -c)" -gt 500000 ]
    run bash -c 'set -o pipefail; nli-filter "$1" 2>err | head -c1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$SNLI"
    [ "$output" = 1 ]
    [ "$(cat err)" = 'nli-filter: stdout: write error: Broken pipe' ]
}

@test "--help and --version" {
    run --separate-stderr nli-filter --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "Usage: nli-filter "* ]]
    [ -z "$stderr" ]
    run --separate-stderr nli-filter -V
    [ "$status" -eq 0 ]
    [[ "$output" == "nli-filter (bertpipe) "* ]]
    run bash -c 'nli-filter --help > /dev/full'
    [ "$status" -eq 1 ]
    [ "$output" = 'nli-filter: stdout: write error: No space left on device' ]
}

@test "usage errors exit 2" {
    run nli-filter --no-such-option
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "nli-filter: unrecognized option '--no-such-option'" ]
    [ "${#lines[@]}" -eq 1 ]  # one line, as every diagnostic
    run nli-filter -x
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "nli-filter: invalid option -- 'x'" ]
    run nli-filter --format
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "nli-filter: option '--format' requires an argument" ]
    run nli-filter --format csv
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "nli-filter: unknown format 'csv' (auto, snli, hf, tsv)" ]
}

@test "every example of nli-filter(1) prints what the page shows" {
    ln -s "$NLI"/*.jsonl .
    run run_man_examples "$BATS_TEST_DIRNAME/../../man/man1/nli-filter.1"
    echo "$output"
    [ "$output" = "ran 9 examples" ]
}

@test "--labels on SNLI dev+test and the MultiNLI samples: every labelled row, counts per label" {
    run --separate-stderr nli-filter --labels "$SNLI"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 19666 rows\nafter: 19666 rows\nlabel 0: 6697 rows\nlabel 1: 6454 rows\nlabel 2: 6515 rows\nno gold label: 0 rows' ]
    [ "${lines[0]}" = $'Two women are embracing while holding to go packages .\tThe sisters are hugging goodbye while holding to go packages after just eating lunch .\t1' ]
    run --separate-stderr nli-filter -l "$MNLI_M" "$MNLI_MM"
    [ "$status" -eq 0 ]
    [ "$stderr" = $'before: 2000 rows\nafter: 2000 rows\nlabel 0: 719 rows\nlabel 1: 630 rows\nlabel 2: 651 rows\nno gold label: 0 rows' ]
}

@test "--labels equals the labelled rows extracted independently with Python" {
    command -v python3 >/dev/null || skip "python3 is not installed"
    nli-filter --labels "$SNLI" "$MNLI_M" "$MNLI_MM" > got.tsv 2>/dev/null
    python3 - "$SNLI" "$MNLI_M" "$MNLI_MM" > want.tsv <<'EOF'
import json, sys
words = {"entailment": 0, "neutral": 1, "contradiction": 2}
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        if "gold_label" in o:
            label, p, h = words.get(o["gold_label"]), o["sentence1"], o["sentence2"]
        else:
            label, p, h = (o["label"] if o["label"] >= 0 else None), o["premise"], o["hypothesis"]
        if label is not None:
            print(f"{p}\t{h}\t{label}")
EOF
    [ "$(wc -l < want.tsv)" -eq 21666 ]
    cmp got.tsv want.tsv
    # the counts per label, independently
    [ "$(cut -f3 want.tsv | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')" = "0:7416 1:7084 2:7166 " ]
}

@test "--labels drops the rows without a gold label and counts them; --triplets excludes it" {
    printf '%s\n' $'a\tb\tentailment' $'c\td\t-' $'e\tf\t2' $'g\th\t-1' $'i\tj\tneutral' \
        '{"gold_label": "-", "sentence1": "k", "sentence2": "l"}' \
        '{"premise": "m", "hypothesis": "n", "label": -1}' \
        '{"premise": "o", "hypothesis": "p", "label": 1}' >in.txt
    run --separate-stderr nli-filter --labels in.txt
    [ "$status" -eq 0 ]
    [ "$output" = $'a\tb\t0\ne\tf\t2\ni\tj\t1\no\tp\t1' ]
    [ "$stderr" = $'before: 8 rows\nafter: 4 rows\nlabel 0: 1 rows\nlabel 1: 2 rows\nlabel 2: 1 rows\nno gold label: 4 rows' ]
    run --separate-stderr nli-filter --labels --triplets in.txt
    [ "$status" -eq 2 ]
    [ "$stderr" = "nli-filter: --labels and --triplets exclude each other" ]
    [ -z "$output" ]
}
