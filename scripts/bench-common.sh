# bench-common.sh - sourced by the training benchmarks (bench-train.sh,
# bench-ranks.sh): the NLI pairs they train on and the random-weight shapes.
# Needs $SHARED, die() and nli-filter on the PATH.

# The entailment pairs of $SHARED/data/nli (SNLI dev+test, the MultiNLI
# samples) as nli-filter gives them, to standard output.
nli_pairs() {
    local nli=$SHARED/data/nli f
    for f in snli_1.0_devtest.jsonl mnli_matched_sample.jsonl mnli_mismatched_sample.jsonl; do
        [ -f "$nli/$f" ] || die "$nli/$f: no such file"
    done
    nli-filter "$nli/snli_1.0_devtest.jsonl" "$nli/mnli_matched_sample.jsonl" \
        "$nli/mnli_mismatched_sample.jsonl" 2>/dev/null
}

# DIR/config.json: FROM's config.json with another shape (vocabulary 30522,
# 512 positions, and any further jq assignments), FROM's vocab.txt beside
# it, as mnr-train --init-from-config wants it.
shape_config() { # DIR FROM LAYERS HIDDEN HEADS FFN [JQ]
    mkdir -p "$1"
    cp "$2/vocab.txt" "$1/"
    jq --argjson l "$3" --argjson h "$4" --argjson a "$5" --argjson f "$6" \
        ".num_hidden_layers = \$l | .hidden_size = \$h | .num_attention_heads = \$a |
         .intermediate_size = \$f | .vocab_size = 30522 | .max_position_embeddings = 512 ${7:+| $7}" \
        "$2/config.json" >"$1/config.json"
}
