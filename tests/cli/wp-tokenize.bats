#!/usr/bin/env bats
# wp-tokenize: the golden token ids of Hugging Face's fast tokenizer for every
# golden line a TSV line can carry, columns and frames, truncation, model
# directories (vocab.txt, tokenizer.json only), errors, and the man page's
# examples.
load helper
bats_require_minimum_version 1.5.0

GOLDEN=$FIXTURES/tokenizer-golden.jsonl
VOCAB=$DATA/vocab/bert-base-uncased-vocab.txt
TINY=$FIXTURES/tiny/model
MAN_PAGE=$BATS_TEST_DIRNAME/../../man/man1/wp-tokenize.1
PY=$BATS_TEST_DIRNAME/../py

setup() {
    cd "$BATS_TEST_TMPDIR"
    # frames.py: print each sequence of a token stream (stdin), padding
    # removed, as "row col: ids", after checking the frame layout.  Plain
    # python3, no numpy.
    cat >frames.py <<'EOF'
import array, ast, struct, sys

data = sys.stdin.buffer.read()
at = row = 0
while at < len(data):
    assert data[at:at + 8] == b"\x93NUMPY\x01\x00", "NPY 1.0 magic"
    hlen = struct.unpack("<H", data[at + 8:at + 10])[0]
    head = ast.literal_eval(data[at + 10:at + 10 + hlen].decode("ascii"))
    assert head["descr"] == "<i4" and not head["fortran_order"]
    rows, cols, length = head["shape"]
    assert rows <= 1024, "at most 1024 rows per frame"
    ids = array.array("i")
    start = at + 10 + hlen
    ids.frombytes(data[start:start + 4 * rows * cols * length])
    assert len(ids) == rows * cols * length, "whole frame"
    at = start + 4 * rows * cols * length
    longest = 0
    for r in range(rows):
        for c in range(cols):
            seq = ids[(r * cols + c) * length:(r * cols + c + 1) * length].tolist()
            n = seq.index(-1) if -1 in seq else length
            assert all(x == -1 for x in seq[n:]) and all(x >= 0 for x in seq[:n])
            longest = max(longest, n)
            print(row, c, *seq[:n])
        row += 1
    assert longest == length, "padded to the longest sequence of the frame"
EOF
}

# The golden lines a TSV line can carry (no tab or newline in the text):
# their texts in golden.txt, their ids in golden.want ("row 0 ids...").
golden_tsv() {
    python3 - "$GOLDEN" <<'EOF'
import json, sys
texts = open("golden.txt", "wb")
want = open("golden.want", "w")
row = 0
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    if "\t" in o["text"] or "\n" in o["text"]:
        continue
    texts.write(o["text"].encode("utf-8") + b"\n")
    print(row, 0, *o["ids"], file=want)
    row += 1
print(row)
EOF
}

@test "every golden line a TSV line can carry gives Hugging Face's ids" {
    run golden_tsv
    [ "$status" -eq 0 ]
    total=$(wc -l <"$GOLDEN")
    echo "$output of $total golden lines can be TSV lines"
    [ "$total" -eq 42830 ]
    [ "$output" -ge 42829 ]
    wp-tokenize -v "$VOCAB" --max-length 4096 golden.txt >golden.npy
    python3 frames.py <golden.npy >golden.got
    differing=$(diff golden.want golden.got | grep -c '^>' || true)
    echo "lines differing: $differing"
    [ "$differing" -eq 0 ]
    [ "$(wc -l <golden.got)" -eq "$output" ]
}

@test "several columns: each text its own sequence, 1024 rows a frame" {
    # Three columns from golden lines 40..; 2500 rows make frames of 1024,
    # 1024 and 452 rows.
    python3 - "$GOLDEN" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")][39:39 + 7500]
with open("cols.tsv", "wb") as t, open("cols.want", "w") as w:
    for r in range(2500):
        row = lines[3 * r:3 * r + 3]
        t.write("\t".join(o["text"] for o in row).encode("utf-8") + b"\n")
        for c, o in enumerate(row):
            print(r, c, *o["ids"], file=w)
EOF
    wp-tokenize -v "$VOCAB" cols.tsv >cols.npy
    python3 frames.py <cols.npy >cols.got
    diff cols.want cols.got
    python3 -c '
import struct, ast
d = open("cols.npy", "rb").read(); at = 0; shapes = []
while at < len(d):
    h = ast.literal_eval(d[at + 10:at + 10 + struct.unpack("<H", d[at + 8:at + 10])[0]].decode())
    r, c, l = h["shape"]; shapes.append((r, c))
    at += 10 + struct.unpack("<H", d[at + 8:at + 10])[0] + 4 * r * c * l
print(shapes)' >shapes
    [ "$(cat shapes)" = "[(1024, 3), (1024, 3), (452, 3)]" ]
}

@test "two files are one input; an empty line is an empty text" {
    printf 'hello\n\nworld\n' >a.txt
    printf 'again\n' >b.txt
    wp-tokenize -v "$VOCAB" a.txt - b.txt </dev/null | python3 frames.py >got
    printf '0 0 101 7592 102\n1 0 101 102\n2 0 101 2088 102\n3 0 101 2153 102\n' >want
    diff want got
}

@test "empty input: an empty stream" {
    wp-tokenize -v "$VOCAB" </dev/null >out.npy
    [ ! -s out.npy ]
}

@test "--max-length truncates to the first N-2 pieces, then [SEP]" {
    text=$(sed -n 14p "$GOLDEN" | python3 -c 'import json, sys; print(json.load(sys.stdin)["text"])')
    [ "$text" = "supercalifragilisticexpialidocious antidisestablishmentarianism" ]
    printf '%s\tshort\n' "$text" | wp-tokenize -v "$VOCAB" --max-length 6 | python3 frames.py >got
    printf '0 0 101 3565 9289 10128 29181 102\n0 1 101 2460 102\n' >want
    diff want got
    printf '%s\n' "$text" | wp-tokenize -v "$VOCAB" -l 2 | python3 frames.py >got
    [ "$(cat got)" = "0 0 101 102" ]
    # Exactly the full length: nothing cut.
    printf '%s\n' "$text" | wp-tokenize -v "$VOCAB" -l 21 | python3 frames.py >got
    [ "$(wc -w <got)" -eq 23 ]
    [ "$(cut -d' ' -f22,23 got)" = "2964 102" ]
}

@test "default lengths: 512 with -v, the model's 128 with -m" {
    long=$(python3 -c 'print(" ".join(["word"] * 1000))')
    printf '%s\n' "$long" | wp-tokenize -v "$VOCAB" | python3 frames.py >got
    [ "$(wc -w <got)" -eq $((512 + 2)) ]
    printf '%s\n' "$long" | wp-tokenize -m "$TINY" | python3 frames.py >got
    [ "$(wc -w <got)" -eq $((128 + 2)) ]
    [ "$(cut -d' ' -f3,130 got)" = "101 102" ]
}

@test "-m reads tokenizer.json when the model directory has no vocab.txt" {
    mkdir only-json
    cp "$TINY/tokenizer.json" only-json/
    cut -f6,7 "$DATA/stsbenchmark/sts-dev.csv" >dev.tsv
    wp-tokenize -m only-json dev.tsv >json.npy
    wp-tokenize -v "$VOCAB" --max-length 128 dev.tsv >vocab.npy
    [ -s json.npy ]
    cmp json.npy vocab.npy
    # sentence-transformers 6 layout, as saved (no vocab.txt either)
    wp-tokenize -m "$FIXTURES/tiny/st-saved" dev.tsv >st.npy
    cmp st.npy vocab.npy
}

@test "do_lower_case false in tokenizer_config.json keeps case and accents" {
    mkdir cased
    cp "$TINY/tokenizer.json" cased/
    printf '{"do_lower_case": false}\n' >cased/tokenizer_config.json
    printf 'Cafe caf\303\251 cafe\n' | wp-tokenize -m cased | python3 frames.py >got
    # Neither "Cafe" nor "café" is in the uncased vocabulary: [UNK] twice.
    printf '0 0 101 100 100 7668 102\n' >want
    diff want got
}

@test "tokenizer.json: framing ids that are not tokens are refused; an empty token is harmless" {
    mkdir pp
    python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
n = max(t["model"]["vocab"].values()) + 1
for name, sep in (("over", n), ("negative", -1)):
    t["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", sep], "cls": ["[CLS]", 101]}
    json.dump(t, open(f"pp/{name}.json", "w"))
t["post_processor"] = None
t["model"]["vocab"][""] = n
json.dump(t, open("pp/empty.json", "w"))
print(n)' "$TINY/tokenizer.json" >n
    n=$(cat n)
    mkdir m
    cp pp/over.json m/tokenizer.json
    run -1 wp-tokenize -m m
    [ "$output" = "wp-tokenize: m/tokenizer.json: post_processor: id $n of [SEP] is not a token (the vocabulary has ids 0 to $((n - 1)))" ]
    cp pp/negative.json m/tokenizer.json
    run -1 wp-tokenize -m m
    [ "$output" = "wp-tokenize: m/tokenizer.json: post_processor: token id -1 out of range" ]
    cp pp/empty.json m/tokenizer.json
    printf 'an empty token matches nothing\n' >t.txt
    wp-tokenize -m m t.txt >empty.npy
    wp-tokenize -v "$VOCAB" t.txt >vocab.npy
    cmp empty.npy vocab.npy
}

@test "rows with different numbers of columns: error naming file and line" {
    printf 'a\tb\nc\td\ne\n' >uneven.tsv
    run -1 wp-tokenize -v "$VOCAB" uneven.tsv
    [ "$output" = "wp-tokenize: uneven.tsv:3: 1 column, expected 2 as on the first line" ]
    printf 'a\tb\n' >two.tsv
    printf 'x\ty\tz\n' >three.tsv
    run -1 wp-tokenize -v "$VOCAB" two.tsv three.tsv
    [ "$output" = "wp-tokenize: three.tsv:1: 3 columns, expected 2 as on the first line" ]
}

@test "invalid UTF-8: error naming file and line" {
    printf 'fine\nalso fine\nbad \377 byte\n' >bad.txt
    run -1 --separate-stderr wp-tokenize -v "$VOCAB" bad.txt
    [ "$stderr" = "wp-tokenize: bad.txt:3: invalid UTF-8" ]
    # Past the truncation point, in a second column, on standard input.
    run -1 --separate-stderr bash -c "printf 'ok\tword word word \355\240\200\n' | wp-tokenize -v '$VOCAB' -l 3"
    [ "$stderr" = "wp-tokenize: stdin:1: invalid UTF-8" ]
}

@test "a missing file or model: one-line error, exit 1" {
    run -1 wp-tokenize -v "$VOCAB" no-such-file.txt
    [ "$output" = "wp-tokenize: no-such-file.txt: No such file or directory" ]
    run -1 wp-tokenize -v no-such-vocab.txt
    [ "$output" = "wp-tokenize: no-such-vocab.txt: No such file or directory" ]
    mkdir empty-model
    run -1 wp-tokenize -m empty-model
    [ "$output" = "wp-tokenize: empty-model: no vocab.txt or tokenizer.json" ]
}

@test "a closed pipe is a write error (EPIPE), exit 1" {
    cut -f6,7 "$DATA/stsbenchmark/sts-train.csv" >train.tsv
    run bash -c "wp-tokenize -v '$VOCAB' train.tsv 2>err | head -c 100 >/dev/null; echo \${PIPESTATUS[0]}"
    [ "$output" = "1" ]
    [ "$(cat err)" = "wp-tokenize: stdout: write error: Broken pipe" ]
}

@test "a full disk is a write error, exit 1" {
    [ -w /dev/full ] || skip "no /dev/full"
    run -1 bash -c "printf 'hello\n' | wp-tokenize -v '$VOCAB' >/dev/full"
    [ "$output" = "wp-tokenize: stdout: write error: No space left on device" ]
}

@test "--help, --version and usage errors" {
    run -0 wp-tokenize --help
    [[ "${lines[0]}" == "Usage: wp-tokenize (-m MODEL_DIR | -v VOCAB)"* ]]
    run -0 wp-tokenize --version
    [[ "$output" == "wp-tokenize (bertpipe) "* ]]
    run -2 wp-tokenize
    [[ "${lines[0]}" == "wp-tokenize: give one of -m MODEL_DIR and -v VOCAB" ]]
    run -2 wp-tokenize -m "$TINY" -v "$VOCAB"
    run -2 wp-tokenize -v "$VOCAB" --max-length 1
    [[ "${lines[0]}" == "wp-tokenize: --max-length: '1' is not a whole number from 2 to 1048576" ]]
    run -2 wp-tokenize -v "$VOCAB" --max-length 12x
    run -2 wp-tokenize -v "$VOCAB" --bogus
    [[ "${lines[0]}" == "wp-tokenize: unrecognized option '--bogus'" ]]
    run -2 wp-tokenize -v
    [[ "${lines[0]}" == "wp-tokenize: option '-v' requires an argument" ]]
}

@test "man page examples" {
    python3 -c 'import numpy' 2>/dev/null || skip "python3 with numpy is not installed"
    command -v parallel >/dev/null || skip "GNU parallel is not installed"
    ln -s "$VOCAB" vocab.txt
    ln -s "$TINY" model
    ln -s "$DATA/stsbenchmark/sts-dev.csv" sts-dev.csv
    run run_man_examples "$MAN_PAGE"
    echo "$output"
    [ "$output" = "ran 10 examples" ]
    # The parallel example's sequences are those of one process.
    cut -f6 sts-dev.csv | wp-tokenize -m model | python3 frames.py >one
    python3 frames.py <sentences.npy >many
    diff one many
}

@test "every code point, in context, tokenizes as Hugging Face tokenizers does" {
    python3 -c 'import tokenizers, numpy' 2>/dev/null ||
        skip "python3 with tokenizers and numpy is not installed"
    # Between letters, each code point below U+20000 (all scripts, symbols and
    # marks) but tab and newline, and every 61st above (ideographs, private
    # use, unassigned): 150 thousand lines.
    PYTHONPATH=$PY python3 - "$VOCAB" <<'EOF'
import sys
from tokenizers import BertWordPieceTokenizer
from wp_ids import wp_tokenize_ids
tok = BertWordPieceTokenizer(sys.argv[1], lowercase=True)
texts = ["a%sb" % chr(cp) for cp in range(0x110000)
         if (cp < 0x20000 or cp % 61 == 0) and not 0xD800 <= cp < 0xE000 and cp not in (9, 10)]
want = [e.ids for e in tok.encode_batch(texts)]
got = wp_tokenize_ids(["-v", sys.argv[1]], texts)
bad = [hex(ord(t[1])) for t, w, g in zip(texts, want, got) if w != g]
print(len(texts), "code points,", len(bad), "differ:", *bad[:20])
sys.exit(len(got) != len(texts) or len(bad) > 0)
EOF
}

# all-mpnet-base-v2 (scripts/fetch-model.sh all-mpnet-base-v2), or MPNET_MODEL.
MPNET=${MPNET_MODEL:-$BATS_TEST_DIRNAME/../../models/all-mpnet-base-v2}

@test "MPNet: every STS-B, SNLI and MultiNLI sentence and the special-token cases give tokenizers' ids" {
    [ -f "$MPNET/tokenizer.json" ] ||
        skip "$MPNET: no all-mpnet-base-v2 (scripts/fetch-model.sh all-mpnet-base-v2 puts it there)"
    python3 -c 'import tokenizers, numpy' 2>/dev/null ||
        skip "python3 with tokenizers and numpy is not installed"
    PYTHONPATH=$PY python3 - "$MPNET" "$DATA" <<'EOF'
import csv, glob, json, sys
from tokenizers import Tokenizer
from wp_ids import wp_tokenize_ids
model, data = sys.argv[1:]
tok = Tokenizer.from_file(f"{model}/tokenizer.json")
tok.no_truncation()  # the file asks for 128 tokens, padded: not what encode() of sentence-transformers is compared with here
tok.no_padding()
texts = ["<s>", "</s> a", "x<mask>y", "a <mask> b", "<pad>", "<unk> <UNK> <Unk>", "[UNK] [unk]",
         "[CLS] [SEP] [PAD] [MASK]", "<s><s>", "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m", "\u4e2d\u6587 \U0001F600",
         "  spaces\u00a0and\u200bzero width  ", ""]
for path in sorted(glob.glob(f"{data}/stsbenchmark/sts-*.csv")):
    for row in csv.reader(open(path, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE):
        texts += row[5:7]
for path in sorted(glob.glob(f"{data}/nli/*.jsonl")):
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        texts += [o["sentence1"], o["sentence2"]] if "sentence1" in o else [o["premise"], o["hypothesis"]]
texts = [t for t in texts if "\t" not in t and "\n" not in t and "\r" not in t]
want = [e.ids for e in tok.encode_batch(texts)]
got = wp_tokenize_ids(["-m", model, "--max-length", "512"], texts)
bad = [(t, w, g) for t, w, g in zip(texts, want, got) if w != g]
print(len(texts), "texts,", len(bad), "differ")
for t, w, g in bad[:5]:
    print(repr(t), w, g)
sys.exit(len(got) != len(texts) or len(bad) > 0 or len(texts) < 40000)
EOF
}

@test "MPNet: <s> ... </s> framing and the model's default length; BPE, Unigram and unknown classes refused" {
    [ -f "$MPNET/tokenizer.json" ] ||
        skip "$MPNET: no all-mpnet-base-v2 (scripts/fetch-model.sh all-mpnet-base-v2 puts it there)"
    printf 'Hello world\n' | wp-tokenize -m "$MPNET" | python3 frames.py >got
    [ "$(cat got)" = "0 0 0 7596 2092 2" ]
    # 384 tokens at most: sentence_bert_config.json's max_seq_length
    python3 -c 'print("word " * 500)' | wp-tokenize -m "$MPNET" | python3 frames.py | awk '{print NF - 2, $3, $NF}' >got
    [ "$(cat got)" = "384 0 2" ]
    # without tokenizer.json: tokenizer_config.json's MPNetTokenizer and its tokens
    mkdir m
    cp "$MPNET"/vocab.txt "$MPNET"/tokenizer_config.json m/
    printf 'Hello world\n' | wp-tokenize -m m | python3 frames.py >got
    [ "$(cat got)" = "0 0 0 7596 2092 2" ]
    for case in 'BPE|model type "BPE" is not supported (WordPiece only)' \
                'Unigram|model type "Unigram" is not supported (WordPiece only)'; do
        cp "$MPNET"/tokenizer.json m/
        sed -i "s/\"type\": *\"WordPiece\", *\"unk_token\"/\"type\": \"${case%%|*}\", \"unk_token\"/" m/tokenizer.json
        run wp-tokenize -m m </dev/null
        echo "$output"
        [ "$status" -eq 1 ]
        [ "$output" = "wp-tokenize: m/tokenizer.json: ${case#*|}" ]
    done
    rm m/tokenizer.json
    sed 's/MPNetTokenizer/XLMRobertaTokenizer/' "$MPNET"/tokenizer_config.json >m/tokenizer_config.json
    run wp-tokenize -m m </dev/null
    [ "$status" -eq 1 ]
    [ "$output" = 'wp-tokenize: m/tokenizer_config.json: tokenizer_class "XLMRobertaTokenizer" is not supported (BertTokenizer, MPNetTokenizer)' ]
    python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
t["post_processor"] = {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}}
json.dump(t, open("m/tokenizer.json", "w"))' "$MPNET/tokenizer.json"
    cp "$MPNET"/tokenizer_config.json m/
    run wp-tokenize -m m </dev/null
    [ "$status" -eq 1 ]
    [ "$output" = "wp-tokenize: m/tokenizer.json: post_processor: only a single-sequence template special, A, special is supported" ]
}
