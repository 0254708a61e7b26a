# Common setup for the command-line tests (bats).
BINDIR=${BINDIR:-$BATS_TEST_DIRNAME/../../build/bin}
SHARED=${SHARED:-$BATS_TEST_DIRNAME/../../../shared}
PATH=$BINDIR:$PATH
DATA=$SHARED/data
FIXTURES=$SHARED/fixtures
# The environment that holds bf16 off AMX tiles on a CPU that has them:
# oneDNN's products on its AVX512_BF16 (vdpbf16ps) kernels, attention in
# fp32, as on a CPU without tiles.
NO_TILES=(ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 BERTPIPE_CPU_AMX=0)

# STS-B dev ($DATA/stsbenchmark/sts-dev.csv) with model directory $1, in the
# current directory: sentence-transformers' encode (tests/py/st_encode.py)
# into st.emb, wp-tokenize | embed | spearman into ours.emb; their Spearman
# correlations in st_rho and our_rho (printed as "# NAME ..." to fd 3, $2
# naming the model).  Fails if a side fails.
sts_dev_both() {
    local model=$1 sts=$DATA/stsbenchmark/sts-dev.csv w1 rest out
    out=$(python3 "$BATS_TEST_DIRNAME/../py/st_encode.py" "$model" "$sts" --stream st.emb --batch-size 32) ||
        return 1
    read -r w1 st_rho rest <<<"$(tail -n 1 <<<"$out")"
    [ "$w1" = spearman ] || return 1
    cut -f5 "$sts" >gold
    cut -f6,7 "$sts" | wp-tokenize -m "$model" | embed -m "$model" --device cpu >ours.emb || return 1
    out=$(spearman -g gold --digits 9 ours.emb) || return 1
    read -r w1 our_rho rest <<<"$out"
    [ "$w1" = spearman ] || return 1
    echo "# $2 STS-B dev Spearman: sentence-transformers $st_rho, embed $our_rho" >&3
}

# The EXAMPLES section of man page $1 as a shell session: "$ command" lines,
# each followed by the lines it prints.
man_examples() {
    sed -n '/^\.SH EXAMPLES/,/^\.SH /{/^\.EX/,/^\.EE/p}' "$1" | grep -v '^\.E[XE]' |
        sed -e "s/\\\\(aq/'/g" -e 's/\\-/-/g' -e 's/\\e/\\/g'
}

# Run every example of man page $1 in the current directory and compare what
# it prints with the page: with $2 = all (the default) both streams as a
# terminal shows them, whatever the exit status (a page may show an error);
# with $2 = stdout, standard output of a command that must succeed.  Prints
# "ran N examples"; stops at the first difference.
run_man_examples() {
    local page=$1 streams=${2:-all} cmd= ran=0 line
    check_example() {
        [ -n "$cmd" ] || return 0
        if [ "$streams" = all ]; then
            bash -c "$cmd" >got 2>&1
        else
            bash -c "$cmd" >got 2>err || { echo "failed: $cmd"; cat err; return 1; }
        fi
        diff -q want got >/dev/null ||
            { diff -u want got; echo "differs: $cmd"; return 1; }
        ran=$((ran + 1))
    }
    man_examples "$page" >examples
    while IFS= read -r line; do
        if [[ $line == '$ '* ]]; then
            check_example || return 1
            cmd=${line#\$ }
            : >want
        else
            printf '%s\n' "$line" >>want
        fi
    done <examples
    check_example || return 1
    echo "ran $ran examples"
}

# A copy of model directory $1 at $2 with dropout 0.1 (attention and hidden)
# in its config.json, for tests that need the masks.
dropout_copy() {
    mkdir "$2"
    cp "$1"/* "$2/"
    sed -i 's/"attention_probs_dropout_prob": 0.0/"attention_probs_dropout_prob": 0.1/;
            s/"hidden_dropout_prob": 0.0/"hidden_dropout_prob": 0.1/' "$2/config.json"
    grep -q '"hidden_dropout_prob": 0.1' "$2/config.json"
}
