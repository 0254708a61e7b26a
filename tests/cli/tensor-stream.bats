#!/usr/bin/env bats
# tensor-stream(5): numpy reads the streams our tools write, frame by frame;
# concatenated streams are streams; GNU parallel splits text or streams as the
# page says; the page's code and examples run as shown.
load helper
bats_require_minimum_version 1.5.0

MAN_PAGE=$BATS_TEST_DIRNAME/../../man/man5/tensor-stream.5
STS=$DATA/stsbenchmark

# The code between the page's '.\" NAME begins' and '.\" NAME ends' comments,
# roff escapes undone.
man_code() {
    BEGIN=".\\\" $1 begins" END=".\\\" $1 ends" awk '
        index($0, ENVIRON["BEGIN"]) == 1 { on = 1; next }
        index($0, ENVIRON["END"]) == 1 { on = 0 }
        on && !/^\.(EX|EE)$/' "$MAN_PAGE" |
        sed -e "s/\\\\(aq/'/g" -e 's/\\-/-/g' -e 's/\\e/\\/g'
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    python3 -c 'import numpy' 2>/dev/null || skip "python3 with numpy is not installed"
    man_code frames.py > frames.py
    man_code load.py > load.py
    ln -s "$DATA/vocab/bert-base-uncased-vocab.txt" vocab.txt
    ln -s "$STS/sts-dev.csv" sts-dev.csv
}

need_tokenizer() {
    [ -x "$BINDIR/wp-tokenize" ] || skip "wp-tokenize is not built yet"
}

need_parallel() {
    command -v parallel >/dev/null || skip "GNU parallel is not installed"
}

# Each sequence of the token streams given, without its padding, one per line
# ("row column: ids"), after checking every frame against tensor-stream(5).
# Frames are read from a pipe, as frames.py reads them.
sequences() {
    cat "$@" | python3 -c '
import sys, types
import numpy as np

stdin = sys.stdin.buffer
reader = types.SimpleNamespace(read=stdin.read)
row = 0
while stdin.peek(1):
    a = np.lib.format.read_array(reader)
    assert a.dtype.str == "<i4" and a.ndim == 3, (a.dtype.str, a.shape)
    lens = (a >= 0).sum(axis=2)
    assert a.shape[2] == lens.max(), "padded to the longest sequence"
    for r in range(a.shape[0]):
        for c in range(a.shape[1]):
            s = a[r, c]
            n = lens[r, c]
            assert (s[n:] == -1).all() and (s[:n] >= 0).all(), "ids, then -1"
            assert s[0] == 101 and s[n - 1] == 102, "[CLS] ... [SEP]"
            assert (s[:n] < 30522).all()
            print(row, c, *s[:n])
        row += 1
'
}

@test "numpy reads a wp-tokenize stream frame by frame, from a file and a pipe" {
    need_tokenizer
    cut -f6,7 sts-dev.csv > dev.tsv
    wp-tokenize -v vocab.txt dev.tsv > dev.npy
    run python3 frames.py < dev.npy
    [ "$status" -eq 0 ]
    [ "$output" = $'<i4 (1024, 2, 53)\n<i4 (476, 2, 48)' ]
    run bash -c 'cat dev.npy | python3 frames.py'
    [ "$output" = $'<i4 (1024, 2, 53)\n<i4 (476, 2, 48)' ]
    run python3 load.py
    [ "$output" = $'(1024, 2, 53)\n(476, 2, 48)' ]
    sequences dev.npy > got.txt
    [ "$(wc -l < got.txt)" -eq 3000 ]
    # the ids are those of the Hugging Face tokenizer, in row-major order
    python3 -c 'import tokenizers' 2>/dev/null || skip "python tokenizers is not installed"
    python3 - > want.txt <<'EOF'
from tokenizers import BertWordPieceTokenizer
tok = BertWordPieceTokenizer("vocab.txt", lowercase=True)
for r, line in enumerate(open("dev.tsv", encoding="utf-8")):
    for c, text in enumerate(line.rstrip("\n").split("\t")):
        print(r, c, *tok.encode(text).ids)
EOF
    cmp got.txt want.txt
}

@test "cat of two streams (and an empty one) reads as their rows concatenated" {
    need_tokenizer
    cut -f6,7 sts-dev.csv > dev.tsv
    head -n 1000 dev.tsv | wp-tokenize -v vocab.txt > a.npy
    tail -n +1001 dev.tsv | wp-tokenize -v vocab.txt > b.npy
    wp-tokenize -v vocab.txt < dev.tsv > all.npy
    : > empty.npy
    run bash -c 'cat a.npy empty.npy b.npy | python3 frames.py'
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 2 ]
    [[ "${lines[0]}" == "<i4 (1000, 2, "* ]]
    [[ "${lines[1]}" == "<i4 (500, 2, "* ]]
    sequences a.npy empty.npy b.npy > cat.txt
    sequences all.npy > all.txt
    [ "$(wc -l < cat.txt)" -eq 3000 ]
    cmp cat.txt all.txt
    run python3 frames.py < empty.npy
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "EXAMPLES of tensor-stream(5)" {
    need_tokenizer
    run bash -c "printf 'hello world\none more sentence\n' | wp-tokenize -v vocab.txt | python3 frames.py"
    [ "$status" -eq 0 ]
    [ "$output" = '<i4 (2, 1, 5)' ]

    cut -f6,7 sts-dev.csv | wp-tokenize -v vocab.txt > dev.npy
    run python3 frames.py < dev.npy
    [ "$output" = $'<i4 (1024, 2, 53)\n<i4 (476, 2, 48)' ]
    printf 'hello world\t!\n' | wp-tokenize -v vocab.txt > one.npy
    run bash -c 'cat dev.npy one.npy | python3 frames.py'
    [ "$status" -eq 0 ]
    [ "$output" = $'<i4 (1024, 2, 53)\n<i4 (476, 2, 48)\n<i4 (1, 2, 4)' ]
    run python3 load.py
    [ "$status" -eq 0 ]
    [ "$output" = $'(1024, 2, 53)\n(476, 2, 48)' ]
}

@test "the truncated frame of the page's Checks section is reported as shown" {
    [ -x "$BINDIR/spearman" ] || skip "spearman is not built yet"
    python3 -c '
import numpy as np
rng = np.random.default_rng(1)
with open("emb.npy", "wb") as f:
    for _ in range(2):
        np.save(f, rng.normal(size=(1024, 2, 8)).astype("<f4"))
'
    [ "$(stat -c %s emb.npy)" -eq $((2 * 65664)) ]
    head -c $((65664 + 128 + 1000)) emb.npy > cut.npy
    mv cut.npy emb.npy
    seq 2048 > gold.txt
    run spearman -g gold.txt emb.npy
    [ "$status" -eq 1 ]
    [ "$output" = 'spearman: emb.npy: frame 2 at byte 65664: truncated frame: 1000 of 65536 data bytes' ]
}

@test "parallel --pipe -k on text gives the stream of the whole text" {
    need_tokenizer
    need_parallel
    cut -f6 "$STS/sts-train.csv" > sentences.txt
    wp-tokenize -v vocab.txt < sentences.txt > direct.npy
    # the page's command, then with small blocks so that several jobs run
    parallel --pipe -k wp-tokenize -v vocab.txt < sentences.txt > tokens.npy
    parallel --pipe -k --block 20k wp-tokenize -v vocab.txt < sentences.txt > split.npy
    [ "$(python3 frames.py < split.npy | wc -l)" -gt "$(python3 frames.py < direct.npy | wc -l)" ]
    sequences direct.npy > direct.txt
    sequences tokens.npy > tokens.txt
    sequences split.npy > split.txt
    [ "$(wc -l < direct.txt)" -eq 5749 ]
    cmp direct.txt tokens.txt
    cmp direct.txt split.txt
}

@test "parallel --pipe --recstart on the NPY magic hands each job whole frames" {
    need_parallel
    # an embedding stream in frames of many sizes, one of them empty
    python3 -c '
import numpy as np
rng = np.random.default_rng(3)
with open("emb.npy", "wb") as f:
    for rows in list(rng.integers(1, 300, size=60)) + [0, 5]:
        np.save(f, (rng.normal(size=(rows, 2, 16)) * 1e3).astype("<f4"))
'
    python3 frames.py < emb.npy > want.txt
    [ "$(wc -l < want.txt)" -eq 62 ]
    magic=$(printf '\223NUMPY')
    # every job reads its frames with frames.py; more than one job ran
    parallel --pipe -k --block 64k --recstart "$magic" 'python3 frames.py; echo job' \
        < emb.npy > got.txt
    [ "$(grep -c '^job$' got.txt)" -gt 3 ]
    grep -v '^job$' got.txt | cmp - want.txt
    # the jobs' outputs, in order, make the same stream
    parallel --pipe -k --block 64k --recstart "$magic" cat < emb.npy > copy.npy
    cmp emb.npy copy.npy
    # the page's command line
    parallel --pipe -k --block 10M --recstart "$(printf '\223NUMPY')" python3 frames.py \
        < emb.npy > page.txt
    cmp page.txt want.txt
}

@test "parallel --recstart splits a wp-tokenize stream into whole frames" {
    need_tokenizer
    need_parallel
    nli-filter "$DATA/nli/snli_1.0_devtest.jsonl" 2>/dev/null | wp-tokenize -v vocab.txt > pairs.npy
    python3 frames.py < pairs.npy > want.txt
    [ "$(wc -l < want.txt)" -eq 7 ]
    parallel --pipe -k --block 100k --recstart "$(printf '\223NUMPY')" 'python3 frames.py; echo job' \
        < pairs.npy > got.txt
    [ "$(grep -c '^job$' got.txt)" -gt 1 ]
    grep -v '^job$' got.txt | cmp - want.txt
}
