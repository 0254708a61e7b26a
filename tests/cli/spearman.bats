#!/usr/bin/env bats
# spearman: correlations against scipy, cosines against numpy, errors, man page.
load helper

META=$FIXTURES/meta.json
STS_DEV=$DATA/stsbenchmark/sts-dev.csv
COSINES=$FIXTURES/tiny/sts-dev.cosine.txt
MAN_PAGE=$BATS_TEST_DIRNAME/../../man/man1/spearman.1

# Streams built once with numpy, with scipy's answers beside them.
setup_file() {
    python3 -c 'import numpy, scipy' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    python3 - <<'EOF'
import numpy as np
from scipy import stats

rng = np.random.default_rng(7)
dim = 48
emb = rng.normal(size=(300, 2, dim)).astype(np.float32)
emb[5, 0] = 0                   # a zero vector: cosine 0
emb[11] = emb[10]               # two equal cosines: a tie
emb[20, 1] = 3 * emb[20, 0]     # cosine 1
emb[30] *= 1e-3                 # small and large magnitudes
emb[31] *= 1e3
gold = rng.integers(0, 11, size=300) / 2   # heavy ties, as in STS
e = emb.astype(np.float64)
norms = np.maximum(np.linalg.norm(e, axis=2), 1e-12)
cos = (e[:, 0] * e[:, 1]).sum(axis=1) / (norms[:, 0] * norms[:, 1])

offsets = []
with open("stream.npy", "wb") as f:
    start = 0
    for rows in (100, 7, 1, 0, 192):   # frames of several sizes, one empty
        offsets.append(f.tell())
        np.save(f, emb[start:start + rows])
        start += rows
np.savetxt("gold.txt", gold, fmt="%.1f")
np.savetxt("cos.txt", cos, fmt="%.17g")
with open("expect.txt", "w") as f:
    f.write("%.17g %.17g\n" % (stats.spearmanr(cos, gold)[0], stats.pearsonr(cos, gold)[0]))
with open("offsets.txt", "w") as f:
    f.write(" ".join(map(str, offsets)) + "\n")

# Ties by identity: 40 pairs whose two sentences embed alike (cosine exactly
# 1 with a.b / sqrt(|a|^2 |b|^2)), gold scores spread over them; every fifth
# gold line empty (an unscored pair, as in STS 2015).
tie = emb[:120].copy()
tie[::3, 1] = tie[::3, 0]
tg = rng.integers(0, 11, size=120) / 2
t = tie.astype(np.float64)
dot = (t[:, 0] * t[:, 1]).sum(axis=1)
sq = (t * t).sum(axis=2)
exact = dot / np.sqrt(np.maximum(sq[:, 0], 1e-24) * np.maximum(sq[:, 1], 1e-24))
noisy = dot / (np.sqrt(sq[:, 0]) * np.sqrt(sq[:, 1]))
keep = np.arange(120) % 5 != 4
assert (exact[::3] == 1).all()
with open("ties.npy", "wb") as f:
    np.save(f, tie)
with open("ties-gold.txt", "w") as f:
    for k in range(120):
        f.write("%.1f\n" % tg[k] if keep[k] else ("\n" if k % 2 else "  \r\n"))
with open("ties-expect.txt", "w") as f:
    f.write("%.17g %.17g %.17g\n" % (stats.spearmanr(exact[keep], tg[keep])[0],
                                     stats.pearsonr(exact[keep], tg[keep])[0],
                                     stats.spearmanr(noisy[keep], tg[keep])[0]))

data = open("stream.npy", "rb").read()
open("trunc.npy", "wb").write(data[:-5])
with open("cols3.npy", "wb") as f:
    np.save(f, emb[:4])
    np.save(f, rng.normal(size=(4, 3, 8)).astype(np.float32))
bad = emb[:10].copy()
bad[3, 1, 7] = np.nan
with open("nan.npy", "wb") as f:
    np.save(f, bad)
bad[3, 1, 7] = np.inf
with open("inf.npy", "wb") as f:
    np.save(f, bad)
EOF
}

need_stream() {
    [ -f "$BATS_FILE_TMPDIR/stream.npy" ] || skip "python3 with numpy and scipy is not installed"
    S=$BATS_FILE_TMPDIR
}

# |a - b| <= tol
near() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}

@test "scipy's values on meta.json spearman_ties, to 1e-9" {
    command -v jq >/dev/null || skip "jq is not installed"
    jq -r '.spearman_ties.x[]' "$META" >"$BATS_TEST_TMPDIR/x"
    jq -r '.spearman_ties.y[]' "$META" >"$BATS_TEST_TMPDIR/y"
    run spearman -s "$BATS_TEST_TMPDIR/x" -g "$BATS_TEST_TMPDIR/y" --digits 12
    [ "$status" -eq 0 ]
    read -r w1 rho w2 r w3 n <<<"$output"
    [ "$w1 $w2 $w3 $n" = "spearman pearson n 200" ]
    near "$rho" "$(jq .spearman_ties.spearman "$META")" 1e-9
    near "$r" "$(jq .spearman_ties.pearson "$META")" 1e-9
}

@test "tiny model's STS-B dev cosines: meta.json's values to 1e-6" {
    run spearman -s "$COSINES" -g <(cut -f5 "$STS_DEV")
    [ "$status" -eq 0 ]
    [ "$output" = "spearman 0.494386 pearson 0.466754 n 1500" ]
    run spearman -s "$COSINES" -g <(cut -f5 "$STS_DEV") --digits 12
    read -r _ rho _ r _ n <<<"$output"
    [ "$n" = 1500 ]
    near "$rho" "$(jq .tiny_sts.dev.spearman_cosine "$META")" 1e-6
    near "$r" "$(jq .tiny_sts.dev.pearson_cosine "$META")" 1e-6
}

@test "stream of frames: Spearman and Pearson as scipy on numpy cosines, to 1e-9" {
    need_stream
    run spearman -g "$S/gold.txt" --digits 12 "$S/stream.npy"
    [ "$status" -eq 0 ]
    read -r w1 rho w2 r w3 n <<<"$output"
    [ "$w1 $w2 $w3 $n" = "spearman pearson n 300" ]
    read -r want_rho want_r <"$S/expect.txt"
    near "$rho" "$want_rho" 1e-9
    near "$r" "$want_r" 1e-9
    # the same from standard input
    run spearman -g "$S/gold.txt" --digits 12 <"$S/stream.npy"
    [ "$output" = "spearman $rho pearson $r n 300" ]
}

@test "--scores: one cosine per row with 9 decimals, as numpy's to 1e-7" {
    need_stream
    spearman -g "$S/gold.txt" --scores "$S/stream.npy" >"$BATS_TEST_TMPDIR/out"
    [ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 301 ]
    [ "$(sed -n 6p "$BATS_TEST_TMPDIR/out")" = "0.000000000" ]   # zero vector
    [ "$(sed -n 21p "$BATS_TEST_TMPDIR/out")" = "1.000000000" ]
    [ -z "$(head -n 300 "$BATS_TEST_TMPDIR/out" | grep -Ev '^-?[0-9]\.[0-9]{9}$')" ]
    head -n 300 "$BATS_TEST_TMPDIR/out" | paste - "$S/cos.txt" |
        awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-7) { print NR ": " $0; bad = 1 } }
             END { exit bad }'
    tail -n 1 "$BATS_TEST_TMPDIR/out" | grep -Eq '^spearman -?[0-9.]+ pearson -?[0-9.]+ n 300$'
}

@test "-s with --scores prints the values read" {
    printf '1\n2.5\n3\n' >"$BATS_TEST_TMPDIR/s"
    printf '3\n1\n2\n' >"$BATS_TEST_TMPDIR/g"
    run spearman -s "$BATS_TEST_TMPDIR/s" -g "$BATS_TEST_TMPDIR/g" --scores --digits 3
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '1.000000000\n2.500000000\n3.000000000\nspearman -0.500 pearson -0.721 n 3')" ]
}

@test "number files: CRLF and blanks allowed; empty line, NaN, inf, non-numeric rejected" {
    cd "$BATS_TEST_TMPDIR"
    printf '1\n2\n3\n4\n' >g
    printf '1 \r\n 3\r\n2\r\n4\r\n' >crlf
    run spearman -g g -s crlf
    [ "$status" -eq 0 ]
    [ "$output" = "spearman 0.800000 pearson 0.800000 n 4" ]
    printf '1\n2\n\n4\n' >empty
    run spearman -g g -s empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: empty:3: empty line, expected a number" ]
    printf '1\nnan\n3\n4\n' >nan
    run spearman -g g -s nan
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: nan:2: 'nan' is not a finite number" ]
    printf '1\n2\n3\n-inf\n' >inf
    run spearman -g inf -s g
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: inf:4: '-inf' is not a finite number" ]
    printf '1\n2\n3 x\n4\n' >word
    run spearman -g g -s word
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: word:3: '3 x' is not a finite number" ]
}

@test "a number must fill its line: a NUL byte or trailing junk is an error naming file:line" {
    cd "$BATS_TEST_TMPDIR"
    printf '1\n2\n3\n4\n' >g
    printf '1\n1.5\0junk\n3\n4\n' >nul
    run spearman -g nul -s g
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: nul:2: NUL byte at column 4, expected one number" ]
    run spearman -g g -s nul
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: nul:2: NUL byte at column 4, expected one number" ]
    printf '1\n2\n3\n\0\n' >nul2
    run spearman -g nul2 -s g --skip-empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: nul2:4: NUL byte at column 1, expected one number" ]
    printf '1\n2.5junk\n3\n4\n' >junk
    run spearman -g junk -s g
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: junk:2: '2.5junk' is not a finite number" ]
    printf '1\n2\n3\n4,5\n' >comma
    run spearman -g comma -s g --skip-empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: comma:4: '4,5' is not a finite number" ]
}

@test "--skip-empty: pairs with an empty gold line are left out and counted" {
    cd "$BATS_TEST_TMPDIR"
    printf '1\n\n2\n \r\n3\n' >g
    printf '0.1\n0.9\n0.3\n0.2\n0.2\n' >s
    # pairs 1, 3, 5: scores 0.1 0.3 0.2 against 1 2 3: ranks 1 3 2 against 1 2 3
    run spearman -g g -s s --skip-empty
    [ "$status" -eq 0 ]
    [ "$output" = "spearman 0.500000 pearson 0.500000 n 3 skipped 2" ]
    # --scores: one line per pair, the skipped ones too (line k is pair k)
    run spearman -g g -s s --skip-empty --scores --digits 2
    [ "$output" = "$(printf '0.100000000\n0.900000000\n0.300000000\n0.200000000\n0.200000000\nspearman 0.50 pearson 0.50 n 3 skipped 2')" ]
    # nothing to skip: the count is still printed
    printf '1\n2\n3\n4\n5\n' >full
    run spearman -g full -s s --skip-empty
    # by hand: ranks 1 5 4 2.5 2.5 vs 1..5: 0.5/sqrt(95); Pearson -0.5/sqrt(4.12)
    [ "$output" = "spearman 0.051299 pearson -0.246332 n 5 skipped 0" ]
    # without the option an empty line is an error, as before
    run spearman -g g -s s
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: g:2: empty line, expected a number" ]
    # the scores may not have empty lines
    printf '0.1\n\n0.3\n0.2\n0.2\n' >s-empty
    run spearman -g g -s s-empty --skip-empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: s-empty:2: empty line, expected a number" ]
    # fewer than 2 scored pairs; counts still compare lines
    printf '\n1\n\n' >one
    printf '1\n2\n3\n' >three
    run spearman -g one -s three --skip-empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: one: 1 values: a correlation needs at least 2" ]
    run spearman -g one -s full --skip-empty
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: full:4: no matching gold value: one has 3 lines" ]
}

@test "identical vectors tie exactly (cosine 1); --skip-empty on a stream: scipy on the scored pairs, to 1e-12" {
    need_stream
    read -r want_rho want_r noisy_rho <"$S/ties-expect.txt"
    # the data can tell: ranking the ties by rounding noise moves Spearman
    ! near "$want_rho" "$noisy_rho" 1e-7
    run spearman -g "$S/ties-gold.txt" --skip-empty --digits 15 "$S/ties.npy"
    [ "$status" -eq 0 ]
    read -r w1 rho w2 r w3 n w4 skipped <<<"$output"
    [ "$w1 $w2 $w3 $n $w4 $skipped" = "spearman pearson n 96 skipped 24" ]
    near "$rho" "$want_rho" 1e-12
    near "$r" "$want_r" 1e-12
    spearman -g "$S/ties-gold.txt" --skip-empty --scores "$S/ties.npy" >"$BATS_TEST_TMPDIR/out"
    [ "$(awk 'NR <= 120 && (NR - 1) % 3 == 0' "$BATS_TEST_TMPDIR/out" | sort -u)" = "1.000000000" ]
}

@test "count mismatch names the first unmatched line" {
    cd "$BATS_TEST_TMPDIR"
    printf '1\n2\n3\n' >three
    printf '1\n2\n3\n4\n' >four
    run spearman -g three -s four
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: four:4: no matching gold value: three has 3 values" ]
    run spearman -g four -s three
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: four:4: no matching score: three has 3 values" ]
}

@test "count mismatch with a stream" {
    need_stream
    head -n 299 "$S/gold.txt" >"$BATS_TEST_TMPDIR/short"
    run spearman -g "$BATS_TEST_TMPDIR/short" "$S/stream.npy"
    [ "$status" -eq 1 ]
    read -r _ _ _ _ last <"$S/offsets.txt"
    [ "$output" = "spearman: $S/stream.npy: frame 5 at byte $last: row 191 has no gold value: $BATS_TEST_TMPDIR/short has 299 values" ]
    { cat "$S/gold.txt"; echo 2; } >"$BATS_TEST_TMPDIR/long"
    run spearman -g "$BATS_TEST_TMPDIR/long" <"$S/stream.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: $BATS_TEST_TMPDIR/long:301: no matching score: stdin has 300 rows" ]
}

@test "stream errors: truncated, 3 columns, NaN and inf name frame and byte" {
    need_stream
    read -r _ _ _ _ last <"$S/offsets.txt"
    run spearman -g "$S/gold.txt" "$S/trunc.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == "spearman: $S/trunc.npy: frame 5 at byte $last: truncated frame"* ]]
    run spearman -g "$S/gold.txt" "$S/cols3.npy"
    [ "$status" -eq 1 ]
    [[ "$output" =~ ^"spearman: $S/cols3.npy: frame 2 at byte "[1-9][0-9]*": 3 columns, expected 2" ]]
    run spearman -g "$S/gold.txt" <"$S/nan.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: stdin: frame 1 at byte 0: row 3: NaN or infinite value in the embeddings" ]
    run spearman -g "$S/gold.txt" "$S/inf.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"frame 1 at byte 0: row 3: NaN or infinite value"* ]]
    run spearman -g "$S/gold.txt" "$S/gold.txt"
    [ "$status" -eq 1 ]
    [[ "$output" == *"frame 1 at byte 0: not an NPY frame"* ]]
}

@test "undefined correlation: fewer than 2 rows, constant gold, constant scores" {
    cd "$BATS_TEST_TMPDIR"
    echo 1 >one
    run spearman -g one -s one
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: one: 1 values: a correlation needs at least 2" ]
    : >none
    run spearman -g none -s none
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: none: 0 values: a correlation needs at least 2" ]
    printf '2\n2\n2\n' >same
    printf '1\n2\n3\n' >diff
    run spearman -g same -s diff
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: same: all 3 values are equal: the correlation is undefined" ]
    run spearman -g diff -s same
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: same: all 3 scores are equal: the correlation is undefined" ]
}

@test "missing gold or scores file" {
    run spearman -g "$BATS_TEST_TMPDIR/absent" -s "$COSINES"
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: $BATS_TEST_TMPDIR/absent: No such file or directory" ]
    run spearman -g "$COSINES" -s "$BATS_TEST_TMPDIR/absent"
    [ "$status" -eq 1 ]
    run spearman -g "$COSINES" "$BATS_TEST_TMPDIR/absent.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: $BATS_TEST_TMPDIR/absent.npy: No such file or directory" ]
}

@test "usage errors exit 2" {
    run spearman -s "$COSINES"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == "spearman: no gold scores: -g GOLD is required" ]]
    [ "${#lines[@]}" -eq 1 ]  # one line, as every diagnostic
    run spearman -g "$COSINES" -s "$COSINES" stream.npy
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == "spearman: both -s SCORES and STREAM given"* ]]
    run spearman -g - -s -
    [ "$status" -eq 2 ]
    run spearman -g - </dev/null
    [ "$status" -eq 2 ]
    run spearman -g "$COSINES" a.npy b.npy
    [ "$status" -eq 2 ]
    run spearman -g "$COSINES" -s "$COSINES" --digits 18
    [ "$status" -eq 2 ]
    run spearman -g "$COSINES" -s "$COSINES" --digits x
    [ "$status" -eq 2 ]
    run spearman --bogus
    [ "$status" -eq 2 ]
    run spearman -g
    [ "$status" -eq 2 ]
}

@test "write error on /dev/full: one line, exit 1" {
    run spearman -g <(cut -f5 "$STS_DEV") -s "$COSINES" --scores
    [ "$status" -eq 0 ]
    run bash -c 'spearman -g <(cut -f5 "$1") -s "$2" >/dev/full' _ "$STS_DEV" "$COSINES"
    [ "$status" -eq 1 ]
    [ "$output" = "spearman: stdout: write error: No space left on device" ]
}

@test "--help and --version" {
    run spearman --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "Usage: spearman -g GOLD"* ]]
    run spearman --version
    [ "$status" -eq 0 ]
    [[ "$output" == "spearman (bertpipe) "* ]]
}

# The man page's EXAMPLES run in a directory holding sts-dev.csv,
# sts-dev.cosine.txt, model/ and STS 2015's answers-forums input and gold; each command's standard output must be the
# lines shown after it.
@test "man page examples" {
    cd "$BATS_TEST_TMPDIR"
    ln -s "$STS_DEV" sts-dev.csv
    ln -s "$COSINES" sts-dev.cosine.txt
    ln -s "$FIXTURES/tiny/model" model
    ln -s "$DATA"/sts-suite/STS15-en-test/STS.{input,gs}.answers-forums.txt .
    run run_man_examples "$MAN_PAGE" stdout
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ran 9 examples" ]
}
